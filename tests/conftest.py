"""Shared fixtures: tiny models and tokenizers, offline settings, single-threaded torch."""

from __future__ import annotations

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")  # tests never reach the hub

import pytest
import torch

torch.set_num_threads(int(os.environ.get("PARADISTILL_TEST_THREADS", "1")))

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]


@pytest.fixture
def tiny_tokenizer():
    from paradistill.data.tokenizers import WordTokenizer

    return WordTokenizer.from_vocab(WORDS)


def make_model(vocab_size: int, seed: int = 0, **changes):
    from paradistill.models.transformer import ModelConfig, Transformer

    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, max_len=256)
    cfg.update(changes)
    return Transformer(ModelConfig(**cfg)).eval()


@pytest.fixture
def tiny_model(tiny_tokenizer):
    return make_model(tiny_tokenizer.vocab_size)


# A tiny MDLM run trained once per test session through the real CLI (about 5 steps): shared by the run-safety
# and hostile-input tests. Tests must not write into it (copy it first).
TINY_RUN = ["data.seq_len=16", "data.num_tokens=3000", "model.dim=32", "model.n_layers=1", "model.n_heads=2",
            "train.max_steps=5", "train.batch_size=8", "train.eval_every=5", "train.eval_batches=1",
            "train.checkpoint_every=5", "train.log_every=1", "train.warmup_steps=1", "train.ema=0.9"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(root folder, overrides): root/mdlm is a trained run, root/cache its prepared data."""
    from paradistill.cli import main

    root = tmp_path_factory.mktemp("tiny_run")
    mp = pytest.MonkeyPatch()
    mp.setenv("PARADISTILL_CACHE", str(root / "cache"))
    try:
        assert main(["train", "mdlm", "--out", str(root / "mdlm"), "--threads", "1", *TINY_RUN]) == 0
    finally:
        mp.undo()
    return root, list(TINY_RUN)


@torch.no_grad()
def reference_sequential(model, mask_id, x, fixed, gen, banned_ids=()):
    """Independent one-token-per-pass reference (ADJUST with K = 1 must equal it): the lowest-entropy masked
    position (entropy of the MASK-removed marginal), sampled from its marginal with `banned_ids` (e.g. PAD) also
    removed. x, fixed: [B, L]."""
    import math

    from paradistill.diffusion.mdlm import NEG_INF
    from paradistill.sampling.categorical import sample_categorical

    x = x.clone()
    while ((x == mask_id) & ~fixed).any():
        logits = model(x, attn="bidirectional").logits.float()
        logits[..., mask_id] = NEG_INF
        lp = torch.log_softmax(logits, -1)
        ent = -torch.where(lp.exp() > 0, lp.exp() * lp, torch.zeros_like(lp)).sum(-1)
        ent[(x != mask_id) | fixed] = math.inf
        pos = ent.argmin(1)
        rows = torch.arange(len(x))
        picked = lp[rows, pos].clone()
        picked[:, list(banned_ids)] = -math.inf
        x[rows, pos] = sample_categorical(picked, gen)
    return x
