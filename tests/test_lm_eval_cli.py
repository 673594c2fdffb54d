"""lm-eval's own command line (`lm_eval --model paradistill ...`) in a subprocess, the model type found through the
`lm_eval.models` entry point that pyproject.toml declares: a local task (YAML + JSONL written here) on a tiny AR
checkpoint, every logged per-document log-likelihood and is_greedy flag checked against an independent
token-by-token computation.

How the entry point reaches lm-eval here: the declaration is read from pyproject.toml and written as the
`entry_points.txt` of a throw-away distribution on the subprocess's path (what `pip install paradistill` writes).
lm-eval releases with plugin discovery (upstream PR #4013: `lm_eval.api.registry.load_plugins`) find it
themselves; lm-eval <= 0.4.13 reads no entry points, so the subprocess does what that discovery does (each entry
point of the group registered as a lazy placeholder in lm-eval's model registry) before calling lm-eval's CLI entry
`lm_eval.__main__.cli_evaluate` with a plain `--model paradistill` command line. Either way the model type is
resolved and loaded by lm-eval's registry from the declared `module:Class` string.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from paradistill.loader import load_checkpoint
from test_harness import DOCS, reference_ar, tiny_ckpt, write_task

lm_eval = pytest.importorskip("lm_eval")  # installed by `make test` (extra: harness)

ROOT = Path(__file__).resolve().parents[1]
GROUP = "lm_eval.models"

LM_EVAL_MAIN = """
import importlib.metadata as md, sys
from lm_eval.api import registry
if not hasattr(registry, "load_plugins"):  # lm-eval <= 0.4.13: the entry-point discovery of upstream PR #4013
    import lm_eval.models  # the built-in model names first, as lm-eval does
    for ep in md.entry_points(group=%r):
        if ep.name not in registry.model_registry:
            registry.model_registry.register(ep.name, target=ep)
from lm_eval.__main__ import cli_evaluate
sys.argv = ["lm_eval", *sys.argv[1:]]
cli_evaluate()
""" % GROUP


def installed_entry_points(site: Path) -> dict[str, str]:
    """The `lm_eval.models` entry points of pyproject.toml, written as an installed distribution's metadata."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    info = site / "paradistill_entry_points-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: paradistill-entry-points\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
    return declared


def greedy_word(loaded, context: str) -> str:
    """The most likely next word after BOS + context (MASK / PAD / BOS / EOS excluded), for an is_greedy = True doc."""
    import torch

    tok = loaded.tokenizer
    with torch.no_grad():
        logits = loaded.model(torch.tensor([[tok.bos_id] + tok.encode(context)]), attn="causal").logits[0, -1]
    words = {tok.encode(w)[0]: w for w in ("a", "b", "c", "d", "e", "f", "g", "h")}
    best = int(logits.argmax())
    return words[best] if best in words else ""


def test_plain_lm_eval_cli_finds_the_model_type_and_scores_exactly(tmp_path):
    ckpt = tiny_ckpt(tmp_path, "ar", seed=2)
    loaded = load_checkpoint(ckpt)
    docs = list(DOCS)
    for context in ("a b", "g"):  # documents whose target is the greedy word, so is_greedy must be True there
        word = greedy_word(loaded, context)
        if word:
            docs.append((context, word))
    folder = write_task(tmp_path / "tasks", docs=docs)
    declared = installed_entry_points(tmp_path / "site")
    assert declared == {"paradistill": "paradistill.eval.harness:ParadistillLM"}

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path / "site")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    out = tmp_path / "out"
    # no --device: lm-eval passes its default cuda:0, which the model type moves to cpu when there is no CUDA
    cmd = [sys.executable, "-c", LM_EVAL_MAIN, "--model", "paradistill", "--model_args", f"pretrained={ckpt}",
           "--tasks", "pd_tiny", "--include_path", str(folder), "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|pd_tiny|" in proc.stdout.replace(" ", "")  # lm-eval's own results table

    samples = [json.loads(line) for f in out.rglob("samples_pd_tiny_*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(s["doc_id"] for s in samples) == list(range(len(docs)))
    for s in samples:
        context, target = docs[s["doc_id"]]
        (ll, greedy), = s["filtered_resps"]
        want_ll, want_greedy = reference_ar(loaded, context, target)
        assert float(ll) == pytest.approx(want_ll, rel=1e-5, abs=1e-5)
        assert (greedy == "True") == want_greedy
    assert any(s["filtered_resps"][0][1] == "True" for s in samples)  # the greedy path was exercised
