"""experiments/bench/decoding_frontier.py counts each sample's own passes (RowPassCounter): a batched adaptive
sampler runs until its slowest row is done, so the batch's NFE overstates one sample's cost."""

from __future__ import annotations

import pytest
import torch

from experiments.bench.decoding_frontier import make_call


def _loaded(length):
    from paradistill.eval.bench import make_loaded
    from paradistill.eval.bench_cases import bench_tokenizer
    from paradistill.models.transformer import ModelConfig

    tok = bench_tokenizer(24)
    cfg = ModelConfig(vocab_size=24, dim=32, n_layers=1, n_heads=2, max_len=2 * length)
    return make_loaded("mdlm", cfg, tok, {"seq_len": length, "keep_bos": True})


SETTINGS = [dict(kw=dict(sampler="threshold", threshold=0.08)),
            dict(kw=dict(sampler="threshold", threshold=0.08, block_size=4)),
            dict(kw=dict(sampler="threshold", threshold=0.08, block_size=4), cache="prefix"),
            dict(kw=dict(sampler="confidence", steps=2, block_size=4), cache="dual")]


@pytest.mark.parametrize("setting", SETTINGS, ids=["threshold", "blocks", "prefix-cache", "dual-cache"])
def test_row_passes_are_each_samples_own_and_the_slowest_is_the_batch(setting):
    loaded, length = _loaded(16), 16
    with torch.no_grad():
        call, counts = make_call(loaded, setting, 1, length, seed=0, count_rows=True)
        alone = call()
        assert counts["rows"].tolist() == [alone.nfe[0]]  # one row: its passes are the batch's
        call, counts = make_call(loaded, setting, 6, length, seed=1, count_rows=True)
        res = call()
    rows = counts["rows"]
    assert rows.shape == (6,) and int(rows.max()) == res.nfe[0] and int(rows.min()) >= 1
    if setting.get("cache"):
        assert counts["full"] + counts["cached"] == res.nfe[0]  # the cache's own counts come through


def test_without_counting_the_denoiser_is_the_plain_one():
    loaded = _loaded(16)
    call, counts = make_call(loaded, SETTINGS[0], 2, 16, seed=0)
    with torch.no_grad():
        call()
    assert "rows" not in counts
