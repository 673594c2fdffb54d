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
