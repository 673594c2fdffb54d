"""LLaDA and Dream (models/dlm.py, models/official.py): tiny random replicas written in each release's layout
(config.json + safetensors with the official tensor names, sharded with an index), loaded by path, compared with an
independent float64 reference forward written here from the published architecture description; Dream's logit
shift, mask ids, chat template, low-confidence remasking, export round trip, ADJUST K = 1, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from paradistill.errors import UserError
from paradistill.loader import load_checkpoint

LLADA_MASK, DREAM_MASK = 126336, 151666


def official_replica(arch: str, tmp_path, shards: int = 1, vocab: int | None = None, seed: int = 0, **extra):
    """A random tiny model in the release's layout; returns (dir, {official name: float64 tensor}, config)."""
    g = torch.Generator().manual_seed(seed)
    d, layers, heads, kv, mlp = 16, 2, 4, (2 if arch == "dream" else 4), 24
    hd = d // heads
    if arch == "llada":
        vocab = vocab or LLADA_MASK + 8
        cfg = {"architectures": ["LLaDAModelLM"], "model_type": "llada", "activation_type": "silu",
               "block_type": "llama", "d_model": d, "n_layers": layers, "n_heads": heads, "n_kv_heads": kv,
               "mlp_hidden_size": mlp, "mlp_ratio": 4, "embedding_size": vocab, "vocab_size": vocab,
               "max_sequence_length": 64, "rope": True, "rope_full_precision": True, "rope_theta": 500000.0,
               "layer_norm_type": "rms", "rms_norm_eps": 1e-5, "include_bias": False, "include_qkv_bias": False,
               "attention_layer_norm": False, "alibi": False, "weight_tying": False, "scale_logits": False,
               "mask_token_id": LLADA_MASK, "eos_token_id": 126081, "pad_token_id": 126081}
        P = "model.transformer."
        names = {P + "wte.weight": (vocab, d), P + "ln_f.weight": (d,), P + "ff_out.weight": (vocab, d)}
        for n in range(layers):
            b = f"{P}blocks.{n}."
            names.update({b + "attn_norm.weight": (d,), b + "q_proj.weight": (d, d), b + "k_proj.weight": (kv * hd, d),
                          b + "v_proj.weight": (kv * hd, d), b + "attn_out.weight": (d, d),
                          b + "ff_norm.weight": (d,), b + "ff_proj.weight": (mlp, d), b + "up_proj.weight": (mlp, d),
                          b + "ff_out.weight": (d, mlp)})
    else:
        vocab = vocab or DREAM_MASK + 10
        cfg = {"architectures": ["DreamModel"], "model_type": "Dream", "hidden_size": d, "intermediate_size": mlp,
               "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
               "vocab_size": vocab, "max_position_embeddings": 64, "rope_theta": 1000000.0, "rope_scaling": None,
               "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": False,
               "mask_token_id": DREAM_MASK, "pad_token_id": 151643, "bos_token_id": 151643, "eos_token_id": 151643}
        names = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,), "lm_head.weight": (vocab, d)}
        for n in range(layers):
            b = f"model.layers.{n}."
            names.update({b + "input_layernorm.weight": (d,), b + "self_attn.q_proj.weight": (d, d),
                          b + "self_attn.q_proj.bias": (d,), b + "self_attn.k_proj.weight": (kv * hd, d),
                          b + "self_attn.k_proj.bias": (kv * hd,), b + "self_attn.v_proj.weight": (kv * hd, d),
                          b + "self_attn.v_proj.bias": (kv * hd,), b + "self_attn.o_proj.weight": (d, d),
                          b + "post_attention_layernorm.weight": (d,), b + "mlp.gate_proj.weight": (mlp, d),
                          b + "mlp.up_proj.weight": (mlp, d), b + "mlp.down_proj.weight": (d, mlp)})
    cfg.update(extra)
    weights = {}
    for name, shape in names.items():
        if name.endswith("norm.weight") or name.endswith("ln_f.weight") or "layernorm" in name:
            weights[name] = 1.0 + 0.3 * torch.randn(shape, generator=g)
        else:
            weights[name] = torch.randn(shape, generator=g) * (1.0 if "embed" in name or "wte" in name else 0.4)
    out = tmp_path / arch
    out.mkdir()
    (out / "config.json").write_text(json.dumps(cfg))
    keys = sorted(weights)
    if shards == 1:
        save_file({k: weights[k].float() for k in keys}, str(out / "model.safetensors"))
    else:
        weight_map = {}
        for i in range(shards):
            part = keys[i::shards]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: weights[k].float() for k in part}, str(out / fname))
            weight_map.update({k: fname for k in part})
        (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out, {k: v.float().double() for k, v in weights.items()}, cfg


def reference_forward(arch: str, w: dict, cfg: dict, x: torch.Tensor) -> torch.Tensor:
    """The published architecture in float64, written independently: RMSNorm, RoPE as a complex rotation of the
    pairs (i, i + d/2), explicit softmax attention without any mask, GQA by head index, SiLU-gated MLP.
    Returns the RAW head outputs (no realignment)."""
    if arch == "llada":
        d, layers, heads, kv = cfg["d_model"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"]
        theta, eps = cfg["rope_theta"], cfg["rms_norm_eps"]
        P = "model.transformer."
        emb, final, head = w[P + "wte.weight"], w[P + "ln_f.weight"], w[P + "ff_out.weight"]
        lay = lambda n, k: w.get(f"{P}blocks.{n}." + {"n1": "attn_norm.weight", "q": "q_proj.weight",  # noqa: E731
                                 "k": "k_proj.weight", "v": "v_proj.weight", "o": "attn_out.weight",
                                 "n2": "ff_norm.weight", "g": "ff_proj.weight", "u": "up_proj.weight",
                                 "dn": "ff_out.weight"}.get(k, k + "-"))
    else:
        d, layers, heads, kv = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                                cfg["num_key_value_heads"])
        theta, eps = cfg["rope_theta"], cfg["rms_norm_eps"]
        emb, final, head = w["model.embed_tokens.weight"], w["model.norm.weight"], w["lm_head.weight"]
        lay = lambda n, k: w.get(f"model.layers.{n}." + {"n1": "input_layernorm.weight",  # noqa: E731
                                 "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
                                 "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight",
                                 "qb": "self_attn.q_proj.bias", "kb": "self_attn.k_proj.bias",
                                 "vb": "self_attn.v_proj.bias", "n2": "post_attention_layernorm.weight",
                                 "g": "mlp.gate_proj.weight", "u": "mlp.up_proj.weight",
                                 "dn": "mlp.down_proj.weight"}[k])
    hd = d // heads
    n_pos = x.shape[1]
    angle = torch.arange(n_pos, dtype=torch.float64)[:, None] * theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rot = torch.polar(torch.ones_like(angle), angle)  # [L, hd/2]

    def rms(v, g):
        return g * v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps)

    def rope(t):  # t: [B, L, heads, hd]
        z = torch.complex(t[..., : hd // 2], t[..., hd // 2:]) * rot[None, :, None, :]
        return torch.cat([z.real, z.imag], -1)

    def lin(v, weight, bias=None):
        return v @ weight.T + (bias if bias is not None else 0.0)

    h = emb[x]
    b = x.shape[0]
    for n in range(layers):
        a = rms(h, lay(n, "n1"))
        bias = (lambda k: lay(n, k)) if arch == "dream" else (lambda k: None)
        q = rope(lin(a, lay(n, "q"), bias("qb")).view(b, n_pos, heads, hd))
        k = rope(lin(a, lay(n, "k"), bias("kb")).view(b, n_pos, kv, hd))
        v = lin(a, lay(n, "v"), bias("vb")).view(b, n_pos, kv, hd)
        out = torch.zeros(b, n_pos, heads, hd, dtype=torch.float64)
        for i in range(heads):
            j = i // (heads // kv)
            scores = torch.einsum("bqd,bkd->bqk", q[:, :, i], k[:, :, j]) / math.sqrt(hd)
            out[:, :, i] = torch.einsum("bqk,bkd->bqd", scores.softmax(-1), v[:, :, j])
        h = h + lin(out.reshape(b, n_pos, d), lay(n, "o"))
        m = rms(h, lay(n, "n2"))
        gate = lin(m, lay(n, "g"))
        h = h + lin(gate * torch.sigmoid(gate) * lin(m, lay(n, "u")), lay(n, "dn"))
    return rms(h, final) @ head.T


@pytest.mark.parametrize("arch,shards", [("llada", 3), ("dream", 1)])
def test_logits_equal_an_independent_reference(tmp_path, arch, shards):
    path, weights, cfg = official_replica(arch, tmp_path, shards=shards)
    if shards > 1:
        assert (path / "model.safetensors.index.json").is_file() and not (path / "model.safetensors").exists()
    loaded = load_checkpoint(path, dtype="fp32")
    assert loaded.kind == arch and loaded.model.cfg.mask_id == (LLADA_MASK if arch == "llada" else DREAM_MASK)
    x = torch.randint(0, cfg["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(1))
    x[:, 3] = loaded.model.cfg.mask_id
    with torch.no_grad():
        out = loaded.model(x, attn="bidirectional")
    raw = reference_forward(arch, weights, cfg, x)
    scale = raw.abs().max().item()
    if arch == "llada":  # unshifted: position i predicts token i
        expect = raw
    else:  # Dream: raw output i predicts token i + 1; position i is read from output i - 1 (0 from 0)
        expect = torch.cat([raw[:, :1], raw[:, :-1]], 1)
        assert (out.logits.double() - raw).abs().max().item() > 1e-2 * scale  # the shift is real, not a no-op
    assert (out.logits.double() - expect).abs().max().item() <= 1e-4 * scale
    # the head applied to the returned hidden states gives the returned logits (what ADJUST relies on)
    assert torch.allclose(loaded.model.head(out.hidden), out.logits, atol=1e-5 * scale)
    # the samplers' masked-only path: logits of the selected positions only, equal to the full ones there
    where = x == loaded.model.cfg.mask_id
    with torch.no_grad():
        rows = loaded.model(x, attn="bidirectional", logits_at=where).logits
    assert rows.shape == (int(where.sum()), cfg["vocab_size"])
    assert torch.allclose(rows, out.logits[where], atol=1e-5 * scale)


def test_dtypes_and_memory_refusal(tmp_path):
    from paradistill.models.official import load_official

    path, _, _ = official_replica("llada", tmp_path)
    for dtype, want in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        loaded = load_official(path, "llada", dtype=dtype)
        assert loaded.model.embed.weight.dtype == want
        assert torch.isfinite(loaded.model(torch.tensor([[1, 2, LLADA_MASK]])).logits).all()
    with pytest.raises(UserError, match="needs about .* but only .* free"):
        load_official(path, "llada", dtype="fp32", available=1024 ** 2)
    with pytest.raises(UserError, match="dtype 'int8'"):
        load_official(path, "llada", dtype="int8")


def tiny_chat_tokenizer(folder, mask_token=None):
    """A word-level HF tokenizer with a Qwen-style chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "user", "assistant", "hello", "world", "the", "cat"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    fast.chat_template = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")
    fast.save_pretrained(str(folder))
    return words


def test_chat_template_mask_ids_and_sampling(tmp_path):
    from paradistill.generation import generate

    path, _, _ = official_replica("llada", tmp_path, vocab=LLADA_MASK + 8)
    words = tiny_chat_tokenizer(path)
    loaded = load_checkpoint(path)
    tok = loaded.tokenizer
    assert tok.mask_id == LLADA_MASK and tok.eos_id == 126081 and tok.vocab_size == LLADA_MASK + 8
    want = [words.index(w) for w in ["<|im_start|>", "user", "hello", "world", "<|im_end|>", "<|im_start|>",
                                      "assistant"]]
    assert tok.chat_ids("hello world") == want
    r = generate(loaded, 2, chat="hello world", gen_length=8, sampler="low-confidence", steps=4, block_size=None,
                 progress=False)
    assert r.tokens.shape == (2, len(want) + 8) and torch.equal(r.tokens[:, : len(want)], torch.tensor([want] * 2))
    assert not (r.tokens == LLADA_MASK).any() and r.nfe == [4]
    with pytest.raises(UserError, match="context of 64"):
        generate(loaded, 1, chat="hello world", gen_length=60, progress=False)


def test_low_confidence_remasking_matches_llada_schedule(tmp_path):
    """Greedy-like (tiny temperature): per block, floor(n/steps) (+1 for the first n mod steps) commits per pass, the
    highest-probability candidates first; equals an independent implementation of the release's loop."""
    from paradistill.sampling.base import Denoiser, SamplingOptions, run_sampler
    from paradistill.sampling.registry import build_sampler

    path, _, _ = official_replica("llada", tmp_path, vocab=LLADA_MASK + 8)
    model = load_checkpoint(path).model
    x = torch.full((2, 13), LLADA_MASK)
    x[:, :3] = torch.tensor([5, 6, 7])
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[:, :3] = True
    out = run_sampler(build_sampler("low-confidence", block_size=None), Denoiser(model, LLADA_MASK), x, fixed,
                      torch.Generator().manual_seed(0), 4, SamplingOptions(temperature=1e-6)).tokens
    ref = x.clone()
    counts = [3, 3, 2, 2]  # 10 masked over 4 steps
    for c in counts:
        with torch.no_grad():
            logits = model(ref).logits.double()
        logits[..., LLADA_MASK] = -1e9
        p = logits.softmax(-1)
        x0 = p.argmax(-1)
        conf = p.max(-1).values.masked_fill(ref != LLADA_MASK, -math.inf)
        for b in range(2):
            top = conf[b].topk(c).indices
            ref[b, top] = x0[b, top]
    assert torch.equal(out, ref)


def test_bad_inputs(tmp_path):
    from paradistill.models.official import detect_format

    causal = tmp_path / "qwen"
    causal.mkdir()
    (causal / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(UserError, match="causal LM.*not a masked diffusion model"):
        load_checkpoint(causal)
    path, _, _ = official_replica("dream", tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    del cfg["mask_token_id"]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match='no mask_token_id: add "mask_token_id": 151666'):
        load_checkpoint(path)
    assert detect_format(tmp_path) is None
    odd, _, _ = official_replica("llada", tmp_path, alibi=True)
    with pytest.raises(UserError, match="alibi=True is not supported"):
        load_checkpoint(odd)


def test_dry_run_plans_of_the_releases(capsys):
    from paradistill.cli import main
    from paradistill.methods.dlm_plans import base_config, plan_sampling

    assert base_config("hf:Dream-org/Dream-v0-Base-7B")[1].num_parameters() == pytest.approx(7.6156e9, rel=1e-3)
    assert base_config("GSAI-ML/LLaDA-8B-Instruct")[1].num_parameters() == pytest.approx(8.02e9, rel=2e-3)
    plan = plan_sampling("hf:GSAI-ML/LLaDA-8B-Instruct", 64, 128, 128)
    assert plan["fits"] and 15 < plan["memory_bytes"] / 2 ** 30 < 20 and plan["ms_per_generated_token"] > 0
    assert main(["distill", "adjust", "--base", "hf:Dream-org/Dream-v0-Base-7B", "--recipe", "adjust-dream7b",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "base_parameters: 7.616 B" in out and "trajectory_hours" in out
    with pytest.raises(UserError, match="exceed the llada context"):
        plan_sampling("hf:GSAI-ML/LLaDA-8B-Base", 4000, 512, 128)
    with pytest.raises(UserError, match="neither a LLaDA / Dream directory"):
        base_config("hf:someone/else")
