"""`paradistill export` writes directories that transformers loads with trust_remote_code in a process where
paradistill cannot be imported, with the same logits; export -> import is exact; diffusion kinds sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from loading_fixtures import LENGTH, bd3lm_hub_config, dit_state, mdlm_hub_config, save_safetensors

CHILD = textwrap.dedent('''
    import json, sys

    class _Block:  # paradistill must not be importable here
        def find_spec(self, name, path=None, target=None):
            if name == "paradistill" or name.startswith("paradistill."):
                raise ImportError("paradistill is blocked in this process")
    sys.meta_path.insert(0, _Block())
    sys.path = [p for p in sys.path if not p.rstrip("/").endswith("src")]
    try:
        import paradistill  # noqa: F401
        sys.exit("paradistill was importable")
    except ImportError:
        pass
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    jobs = json.loads(sys.argv[1])
    for job in jobs:
        auto = AutoModelForCausalLM if job["causal"] else AutoModelForMaskedLM
        model = auto.from_pretrained(job["dir"], trust_remote_code=True).eval()
        inputs = torch.load(job["inputs"])
        with torch.no_grad():
            logits = model(inputs["ids"], sigma=inputs.get("sigma"), noise=inputs.get("noise")).logits
        tok = AutoTokenizer.from_pretrained(job["dir"])
        samples = model.sample(num=2, length=job["length"], steps=4, seed=0)
        text = tok.decode(samples[0].tolist())
        torch.save({"logits": logits, "samples": samples, "text": text}, job["out"])
    print("ok", len(jobs))
''')


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADISTILL_HOME", str(tmp_path / "home"))


def _paradistill_checkpoint(tmp_path, kind, tokenizer):
    from conftest import make_model
    from paradistill.checkpoint import save_checkpoint

    method = {"seq_len": LENGTH, "keep_bos": True}
    changes = {}
    if kind == "bd3lm":
        method["block_size"] = 4
    if kind == "mdlm":
        changes = dict(time_conditioning=True, cond_dim=8)
    model = make_model(tokenizer.vocab_size, seed=3, **changes)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaln" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)  # non-zero adaLN and biases
    return save_checkpoint(tmp_path / f"ck-{kind}", model, kind, tokenizer, method)


def _cases(tmp_path, tiny_tokenizer):
    from paradistill import loading

    cases = [(str(_paradistill_checkpoint(tmp_path, k, tiny_tokenizer)), None) for k in ("ar", "mdlm", "bd3lm")]
    gd = dit_state(21, gumbel=True)
    ckpt = {"state_dict": {f"backbone.{k}": v for k, v in gd.items()},
            "hyper_parameters": {"config": {"model": {"n_heads": 4, "length": LENGTH, "gumbel_inject_mode": "add"},
                                            "algo": {"block_size": 4, "cross_attn": True}}}}
    (tmp_path / "gd").mkdir()
    torch.save(ckpt, tmp_path / "gd" / "bd3lms-gumbel-owt.ckpt")
    from loading_fixtures import write_gpt2_style_tokenizer

    write_gpt2_style_tokenizer(tmp_path / "gd")
    cases.append((str(tmp_path / "gd" / "bd3lms-gumbel-owt.ckpt"), "gd-bd3lm"))
    save_safetensors(dit_state(22), tmp_path / "tc", config=mdlm_hub_config(time_conditioning=True))
    cases.append((str(tmp_path / "tc"), "mdlm"))
    save_safetensors(dit_state(23), tmp_path / "bd3", config=bd3lm_hub_config(4))
    cases.append((str(tmp_path / "bd3"), "bd3lm"))
    return [(ref, loading.load(ref)) for ref, _ in cases]


def _inputs(loaded, seed):
    g = torch.Generator().manual_seed(seed)
    vocab = loaded.model.cfg.vocab_size
    mask = loaded.tokenizer.mask_id
    ids = torch.randint(0, vocab, (2, LENGTH), generator=g)
    ids = torch.where(ids == mask, torch.zeros_like(ids), ids)
    out = {"ids": ids}
    if loaded.kind != "ar":
        out["ids"] = torch.where(torch.rand(2, LENGTH, generator=g) < 0.5, torch.full_like(ids, mask), ids)
    if loaded.model.cfg.time_conditioning:
        out["sigma"] = torch.tensor([0.3, 0.8])
    if loaded.model.cfg.noise_embed != "none":
        out["noise"] = -torch.log(-torch.log(torch.rand(2, LENGTH, vocab, generator=g)))
    return out


def _our_logits(loaded, inputs):
    attn = "causal" if loaded.kind == "ar" else "bidirectional"
    ids = inputs["ids"]
    noise = inputs.get("noise")
    extra_mask = (ids == loaded.tokenizer.mask_id) if noise is not None else None
    with torch.no_grad():
        return loaded.model(ids, attn=attn, sigma=inputs.get("sigma"), noise=noise, extra_mask=extra_mask).logits


def test_standalone_export_every_kind(tmp_path, tiny_tokenizer):
    from paradistill import loading
    from paradistill.cli import main
    from paradistill.loader import load_checkpoint

    jobs, expected = [], []
    for i, (ref, loaded) in enumerate(_cases(tmp_path, tiny_tokenizer)):
        out = tmp_path / f"export-{i}-{loaded.kind}"
        assert main(["export", ref, "--to", str(out)]) == 0
        cfg = json.loads((out / "config.json").read_text())
        task = "AutoModelForCausalLM" if loaded.kind == "ar" else "AutoModelForMaskedLM"
        assert cfg["auto_map"][task] == "modeling_paradistill.ParadistillModel"
        inputs = _inputs(loaded, i)
        torch.save(inputs, tmp_path / f"in-{i}.pt")
        ours = _our_logits(loaded, inputs)
        # round trip: the export re-imports with identical logits, and back to a checkpoint with identical weights
        again = loading.load(out)
        assert again.kind == loaded.kind
        assert torch.equal(_our_logits(again, inputs), ours)
        assert main(["export", str(out), "--from", "hf", "--to", str(tmp_path / f"back-{i}")]) == 0
        back = load_checkpoint(tmp_path / f"back-{i}")
        for k, v in loaded.model.state_dict().items():
            assert torch.equal(back.model.state_dict()[k], v), k
        jobs.append({"dir": str(out), "causal": loaded.kind == "ar", "inputs": str(tmp_path / f"in-{i}.pt"),
                     "out": str(tmp_path / f"out-{i}.pt"), "length": LENGTH})
        expected.append((loaded, ours))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(jobs)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job, (loaded, ours) in zip(jobs, expected):
        got = torch.load(job["out"])
        scale = ours.abs().max()
        assert (got["logits"] - ours).abs().max() <= 1e-6 * scale, job["dir"]
        samples = got["samples"]
        assert samples.shape == (2, LENGTH) and int(samples.max()) < loaded.model.cfg.vocab_size
        if loaded.kind != "ar":
            assert bool((samples != loaded.tokenizer.mask_id).all())
        assert isinstance(got["text"], str)
