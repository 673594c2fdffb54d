"""Hugging Face causal LMs (GPT-2 layout) as teachers and judges: by hub id from the offline cache, logits
against an independent GPT-2 forward (REFERENCE-MODELS §9), and the vocabulary check against the student."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from loading_fixtures import add_to_hub_cache, write_gpt2_style_tokenizer
from paradistill.errors import UserError

D, LAYERS, HEADS, CTX = 24, 2, 3, 32


def _gpt2_dir(folder, vocab):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=CTX, n_embd=D, n_layer=LAYERS, n_head=HEADS,
                     bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    return folder


def _reference_gpt2(sd, ids):
    """GPT-2 from its description: learned positions, pre-LN blocks, Conv1D weights [in, out], gelu_new, tied head."""
    h = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][: ids.shape[1]]
    n = ids.shape[1]
    hd = D // HEADS
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    for i in range(LAYERS):
        p = lambda k: sd[f"transformer.h.{i}.{k}"]  # noqa: E731
        a = F.layer_norm(h, (D,), p("ln_1.weight"), p("ln_1.bias"), 1e-5)
        q, k, v = (a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(D, -1)
        q, k, v = (t.view(*t.shape[:2], HEADS, hd).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~causal, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(*ids.shape, D)
        h = h + o @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        a = F.layer_norm(h, (D,), p("ln_2.weight"), p("ln_2.bias"), 1e-5)
        m = F.gelu(a @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"), approximate="tanh")
        h = h + m @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    h = F.layer_norm(h, (D,), sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"], 1e-5)
    return h @ sd["transformer.wte.weight"].t()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PARADISTILL_HOME", str(tmp_path / "home"))
    return tmp_path / "hub"


def test_hf_causal_lm_by_hub_id(tmp_path, hub):
    from safetensors.torch import load_file

    from paradistill import loading

    folder = _gpt2_dir(tmp_path / "gpt2", 257)
    write_gpt2_style_tokenizer(folder)
    add_to_hub_cache(hub, "openai-community/gpt2", {p.name: p for p in folder.iterdir()})
    loaded = loading.load("hf:openai-community/gpt2")
    assert loaded.kind == "hf-causal"
    ids = torch.randint(0, 257, (2, 12))
    sd = load_file(str(folder / "model.safetensors"))
    ref = F.log_softmax(_reference_gpt2(sd, ids), -1)
    ours = loaded.model.next_token_log_probs(ids)
    assert (ours - ref).abs().max() <= 1e-4 * ref.abs().max()
    # greedy continuation through the teacher interface (the only sampler an HF causal LM has here)
    from paradistill.methods.teachers import load_teacher

    teacher = load_teacher("hf:openai-community/gpt2")
    x = ids[:, :4]
    for _ in range(4):
        nxt = teacher.next_token_log_probs(x)[:, -1].argmax(-1, keepdim=True)
        x = torch.cat([x, nxt], 1)
    assert x.shape == (2, 8) and int(x.max()) < 257


def test_teacher_vocabulary_differs_from_student(tmp_path, hub):
    from paradistill.data.tokenizers import BPETokenizer
    from paradistill.methods.teachers import load_teacher

    folder = _gpt2_dir(tmp_path / "big", 300)
    add_to_hub_cache(hub, "someone/gpt2-300", {p.name: p for p in folder.iterdir()})
    write_gpt2_style_tokenizer(tmp_path / "tok")
    student_tok = BPETokenizer(tmp_path / "tok")  # 258 ids
    teacher = load_teacher("hf:someone/gpt2-300")
    with pytest.raises(UserError) as e:
        teacher.check_student(student_tok)
    msg = str(e.value)
    assert "\n" not in msg and "hf:someone/gpt2-300" in msg and "300" in msg and "258" in msg
