"""Hugging Face interop (issue #9): export -> from_pretrained -> identical logits, exact import back, a tiny
random GPT-2 as Gumbel-Distillation teacher and Gen PPL judge, and the MDLM DiT (mdlm-owt layout) loader."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import make_model
from paradistill.errors import UserError
from paradistill.checkpoint import save_checkpoint
from paradistill.loader import load_checkpoint


@pytest.fixture(scope="module")
def hx():
    import paradistill.interop.hf_export as module

    module.register()
    return module


def _checkpoint(tmp_path, tok, kind, **changes):
    model = make_model(tok.vocab_size, seed=3, **changes)
    with torch.no_grad():  # non-trivial biases / norms so a dropped tensor would show
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model, save_checkpoint(tmp_path / f"ck_{kind}", model, kind, tok, {"seq_len": 12})


def test_export_from_pretrained_gives_identical_logits_and_imports_back_exactly(tmp_path, tiny_tokenizer, hx):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from paradistill.cli import main

    x = torch.randint(4, tiny_tokenizer.vocab_size, (3, 12), generator=torch.Generator().manual_seed(0))
    for kind, changes in (("ar", {}), ("mdlm", {"tie_weights": False, "time_conditioning": True})):
        model, ck = _checkpoint(tmp_path, tiny_tokenizer, kind, **changes)
        out = tmp_path / f"hf_{kind}"
        assert main(["export", str(ck), "--to", str(out)]) == 0
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
        auto = AutoModelForCausalLM if kind == "ar" else AutoModel
        hf_model = auto.from_pretrained(str(out)).eval()
        sigma = torch.full((3,), 0.3) if changes.get("time_conditioning") else None
        ours = model(x, attn="causal" if kind == "ar" else "bidirectional", sigma=sigma).logits
        assert torch.equal(hf_model(x, sigma=sigma).logits, ours)
        hf_tok = AutoTokenizer.from_pretrained(str(out))
        text = "a b h c"
        assert hf_tok(text, add_special_tokens=False)["input_ids"] == tiny_tokenizer.encode(text)
        back = tmp_path / f"back_{kind}"
        assert main(["export", str(out), "--from", "hf", "--to", str(back)]) == 0
        loaded = load_checkpoint(back)
        assert loaded.kind == kind and loaded.tokenizer.fingerprint() == tiny_tokenizer.fingerprint()
        ref = model.state_dict()
        assert all(torch.equal(loaded.model.state_dict()[k], ref[k]) for k in ref)


def test_exported_ar_is_a_teacher_diffusion_export_is_refused(tmp_path, tiny_tokenizer, hx):
    from paradistill.models.hf import HFCausalLM

    model, ck = _checkpoint(tmp_path, tiny_tokenizer, "ar")
    hx.export_hf(ck, tmp_path / "ar_hf")
    lm = HFCausalLM(tmp_path / "ar_hf")
    x = torch.randint(4, tiny_tokenizer.vocab_size, (2, 10))
    expected = F.log_softmax(model(x, attn="causal").logits, dim=-1)
    assert torch.allclose(lm.next_token_log_probs(x), expected, atol=1e-6)
    _, ck2 = _checkpoint(tmp_path, tiny_tokenizer, "mdlm")
    hx.export_hf(ck2, tmp_path / "mdlm_hf")
    with pytest.raises(UserError, match="not a causal LM"):
        HFCausalLM(tmp_path / "mdlm_hf")
    with pytest.raises(UserError, match="not empty"):
        hx.export_hf(ck, tmp_path / "ar_hf")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(UserError, match="'gpt2' model, not a paradistill export"):
        hx.import_hf(tmp_path / "gpt2", tmp_path / "x")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    """A random-init GPT-2 saved locally (no hub): vocab 40, 2 layers, BOS id 1."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=40, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=2)
    model = GPT2LMHeadModel(cfg).eval()
    path = tmp_path_factory.mktemp("gpt2") / "tiny-gpt2"
    model.save_pretrained(str(path))
    return path, model


def test_tiny_gpt2_as_gen_ppl_judge(tiny_gpt2):
    from paradistill.eval.metrics import gen_ppl, load_judge

    path, model = tiny_gpt2
    seqs = [[5, 9, 3, 17, 22, 8], [11, 4, 4, 30, 2, 7, 19, 1]]
    result = gen_ppl(load_judge(str(path)), seqs)
    total, count = 0.0, 0
    with torch.no_grad():  # the judge scores every sample token given BOS + the tokens before it
        for s in seqs:
            ids = torch.tensor([[1] + s])
            logp = F.log_softmax(model(ids).logits.double(), dim=-1)[0, :-1]
            total -= float(logp.gather(-1, ids[0, 1:, None]).sum())
            count += len(s)
    assert result["num_tokens"] == count
    assert math.isclose(result["ppl"], math.exp(total / count), rel_tol=1e-5)


def test_tiny_gpt2_as_gumbel_distillation_teacher(tiny_gpt2):
    from paradistill.distill.gumbel_noise import extract_posterior
    from paradistill.methods.teachers import load_teacher

    path, model = tiny_gpt2
    teacher = load_teacher(f"hf:{path}")
    x = torch.randint(3, 40, (3, 16), generator=torch.Generator().manual_seed(1))
    x[:, 0] = 1
    logp = teacher.next_token_log_probs(x)  # [B, L, V]: entry i predicts token i + 1
    with torch.no_grad():
        assert torch.allclose(logp, F.log_softmax(model(x).logits.float(), dim=-1), atol=1e-5)
    xi = extract_posterior(logp, x, torch.arange(3), dtype=torch.float64)
    # the teacher's Gumbel-max with the extracted noise reproduces the data exactly (AR shift: noise i, logits i-1)
    assert torch.equal((logp[:, :-1].double() + xi[:, 1:]).argmax(-1), x[:, 1:])


# ------------------------------------------------------------------------------------- MDLM DiT loader
def _mdlm_state(vocab=24, dim=32, heads=4, blocks=2, cond=16, prefix="backbone."):
    """A random state dict with kuleshov-group/mdlm's DiT key names and shape pattern."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    sd = {"vocab_embed.embedding": r(vocab, dim), "sigma_map.mlp.0.weight": r(cond, 256),
          "sigma_map.mlp.0.bias": r(cond), "sigma_map.mlp.2.weight": r(cond, cond), "sigma_map.mlp.2.bias": r(cond),
          "rotary_emb.inv_freq": 1.0 / 10000 ** (torch.arange(0, dim // heads, 2).float() / (dim // heads)),
          "output_layer.norm_final.weight": 1 + r(dim), "output_layer.linear.weight": r(vocab, dim),
          "output_layer.linear.bias": r(vocab), "output_layer.adaLN_modulation.weight": r(2 * dim, cond),
          "output_layer.adaLN_modulation.bias": r(2 * dim)}
    for i in range(blocks):
        sd.update({f"blocks.{i}.norm1.weight": 1 + r(dim), f"blocks.{i}.attn_qkv.weight": r(3 * dim, dim),
                   f"blocks.{i}.attn_out.weight": r(dim, dim), f"blocks.{i}.norm2.weight": 1 + r(dim),
                   f"blocks.{i}.mlp.0.weight": r(4 * dim, dim), f"blocks.{i}.mlp.0.bias": r(4 * dim),
                   f"blocks.{i}.mlp.2.weight": r(dim, 4 * dim), f"blocks.{i}.mlp.2.bias": r(dim),
                   f"blocks.{i}.adaLN_modulation.weight": r(6 * dim, cond),
                   f"blocks.{i}.adaLN_modulation.bias": r(6 * dim)})
    return {prefix + k: v for k, v in sd.items()}


def _mdlm_reference_logits(sd, x, heads):
    """MDLM's DiT forward at sigma = 0, written from the architecture (rotate-half rotary, bias-free LayerNorm,
    adaLN shift/scale/gate), independent of the converter."""
    sd = {k.removeprefix("backbone."): v.double() for k, v in sd.items()}
    ln = lambda h, w: F.layer_norm(h, h.shape[-1:]) * w  # noqa: E731
    t = torch.cat([torch.ones(128), torch.zeros(128)]).double()
    c = F.silu(sd["sigma_map.mlp.2.weight"] @ F.silu(sd["sigma_map.mlp.0.weight"] @ t + sd["sigma_map.mlp.0.bias"])
               + sd["sigma_map.mlp.2.bias"])
    h = sd["vocab_embed.embedding"][x]
    bsz, length, dim = h.shape
    d = dim // heads
    ang = torch.arange(length).double()[:, None] * sd["rotary_emb.inv_freq"].double()[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    rot = lambda q: q * cos + torch.cat([-q[..., d // 2:], q[..., :d // 2]], -1) * sin  # noqa: E731
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(n_blocks):
        p = lambda k: sd[f"blocks.{i}.{k}"]  # noqa: E731
        s1, sc1, g1, s2, sc2, g2 = (p("adaLN_modulation.weight") @ c + p("adaLN_modulation.bias")).chunk(6)
        a = ln(h, p("norm1.weight")) * (1 + sc1) + s1
        q, k, v = (a @ p("attn_qkv.weight").T).view(bsz, length, 3, heads, d).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(rot(q), rot(k), v).transpose(1, 2).reshape(bsz, length, dim)
        h = h + g1 * (o @ p("attn_out.weight").T)
        m = ln(h, p("norm2.weight")) * (1 + sc2) + s2
        m = F.gelu(m @ p("mlp.0.weight").T + p("mlp.0.bias"), approximate="tanh") @ p("mlp.2.weight").T
        h = h + g2 * (m + p("mlp.2.bias"))
    shift, scale = (sd["output_layer.adaLN_modulation.weight"] @ c + sd["output_layer.adaLN_modulation.bias"]).chunk(2)
    h = ln(h, sd["output_layer.norm_final.weight"]) * (1 + scale) + shift
    return h @ sd["output_layer.linear.weight"].T + sd["output_layer.linear.bias"]


def test_mdlm_dit_loader_matches_the_reference_forward(tmp_path):
    from safetensors.torch import save_file

    from paradistill.interop.mdlm_import import load_mdlm

    sd = _mdlm_state()
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"n_heads": 4, "time_conditioning": false, "model_length": 16}')
    model, _ = load_mdlm(tmp_path)
    x = torch.randint(0, 24, (2, 16), generator=torch.Generator().manual_seed(2))
    ref = _mdlm_reference_logits(sd, x, heads=4)
    got = model.double()(x, attn="bidirectional").logits.double()
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()  # fp32 folding + fp32 rotary angles
    assert model.cfg.head_bias and not model.cfg.tie_weights and not model.cfg.time_conditioning


def test_mdlm_loader_errors_name_the_keys(tmp_path, tiny_tokenizer):
    from paradistill.cli import main
    from paradistill.interop.mdlm_import import convert

    sd = _mdlm_state(prefix="")
    sd.pop("blocks.1.attn_out.weight")
    sd["blocks.1.attn_output.weight"] = torch.zeros(32, 32)
    with pytest.raises(UserError, match=r"missing \['blocks.1.attn_out.weight'\], unexpected "
                                        r"\['blocks.1.attn_output.weight'\]"):
        convert(sd, n_heads=4)
    with pytest.raises(UserError, match="not an MDLM DiT state dict"):
        convert({"transformer.wte.weight": torch.zeros(3, 4)}, n_heads=4)
    torch.save({"state_dict": _mdlm_state(vocab=tiny_tokenizer.vocab_size + 1)}, tmp_path / "last.ckpt")
    with pytest.raises(UserError, match="tokenizer has 12 ids but the MDLM checkpoint 13"):
        from paradistill.interop.mdlm_import import import_mdlm

        import_mdlm(tmp_path / "last.ckpt", tmp_path / "out", tiny_tokenizer, n_heads=4)
    torch.save({"state_dict": _mdlm_state(vocab=tiny_tokenizer.vocab_size)}, tmp_path / "ok.ckpt")
    tiny_tokenizer.save(tmp_path / "tok")
    # a Lightning-style .ckpt through the CLI: prefix stripped, a loadable 'mdlm' checkpoint with its tokenizer
    assert main(["export", str(tmp_path / "ok.ckpt"), "--from", "mdlm", "--to", str(tmp_path / "conv"),
                 "--tokenizer", str(tmp_path / "tok"), "--n-heads", "4"]) == 0
    loaded = load_checkpoint(tmp_path / "conv")
    x = torch.randint(0, tiny_tokenizer.vocab_size, (1, 8))
    ref = _mdlm_reference_logits(_mdlm_state(vocab=tiny_tokenizer.vocab_size), x, heads=4)
    assert loaded.kind == "mdlm" and torch.allclose(loaded.model(x).logits.double(), ref, atol=1e-5)
    assert main(["export", str(tmp_path / "ok.ckpt"), "--from", "mdlm", "--to", str(tmp_path / "c2")]) == 2
