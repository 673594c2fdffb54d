"""Training loop, checkpoints and resume (issue #3 / #12): exactness and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_model
from paradistill.diffusion.objectives import DiffusionConfig, MDLMObjective
from paradistill.errors import TrainingDiverged, UserError
from paradistill.checkpoint import resolve_checkpoint, save_checkpoint
from paradistill.loader import load_checkpoint
from paradistill.train.config import TrainConfig
from paradistill.train.loop import train


def tiny_data(n=64, length=12, vocab=12, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(4, vocab, size=(n, length)).astype(np.uint16)
    data[:, 0] = 1
    return data


def run(tmp, tok, steps, resume=False, **cfg):
    model = make_model(tok.vocab_size, seed=1)
    objective = MDLMObjective(DiffusionConfig(), tok.mask_id, tok.pad_id, tok.bos_id)
    config = TrainConfig(max_steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=0, checkpoint_every=3,
                         log_every=1, ema=0.9, **cfg)
    result = train(objective, model, tiny_data(), tiny_data(16, seed=1), config, tmp, tok, {"seq_len": 12},
                   resume=resume, progress=False)
    return model, result


def test_checkpoint_round_trip_is_bit_exact(tmp_path, tiny_tokenizer):
    model = make_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "ck", model, "mdlm", tiny_tokenizer, {"seq_len": 12})
    loaded = load_checkpoint(tmp_path / "ck")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.kind == "mdlm" and loaded.tokenizer.fingerprint() == tiny_tokenizer.fingerprint()


def test_resume_equals_uninterrupted(tmp_path, tiny_tokenizer, monkeypatch):
    full, _ = run(tmp_path / "full", tiny_tokenizer, 8)
    original = MDLMObjective.loss
    calls = {"n": 0}

    def interrupted(self, model, batch, gen):
        calls["n"] += 1
        if calls["n"] == 6:  # killed during step 5, after the step-3 checkpoint
            raise KeyboardInterrupt
        return original(self, model, batch, gen)

    monkeypatch.setattr(MDLMObjective, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "split", tiny_tokenizer, 8)
    monkeypatch.setattr(MDLMObjective, "loss", original)
    assert json.loads((tmp_path / "split" / "latest.json").read_text())["step"] == 3
    resumed, result = run(tmp_path / "split", tiny_tokenizer, 8, resume=True)
    assert result.steps == 8
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # the EMA weights written at the end agree too
    ema_full = load_checkpoint(tmp_path / "full").model.state_dict()
    ema_resumed = load_checkpoint(tmp_path / "split").model.state_dict()
    assert all(torch.equal(ema_full[k], ema_resumed[k]) for k in ema_full)


def test_same_seed_same_curve(tmp_path, tiny_tokenizer):
    run(tmp_path / "a", tiny_tokenizer, 5)
    run(tmp_path / "b", tiny_tokenizer, 5)
    curve = lambda p: [json.loads(l)["loss"] for l in open(p / "metrics.jsonl") if '"train"' in l]  # noqa: E731
    assert curve(tmp_path / "a") == curve(tmp_path / "b")


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, tiny_tokenizer, monkeypatch):
    calls = {"n": 0}
    original = MDLMObjective.loss

    def poisoned(self, model, batch, gen):
        calls["n"] += 1
        loss, m = original(self, model, batch, gen)
        return (loss * float("nan"), m) if calls["n"] > 4 else (loss, m)

    monkeypatch.setattr(MDLMObjective, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 4.*step_0000003.*intact"):
        run(tmp_path / "r", tiny_tokenizer, 8)
    assert load_checkpoint(tmp_path / "r").path.name == "step_0000003"


def test_nan_skip_policy_counts_and_continues(tmp_path, tiny_tokenizer, monkeypatch):
    original = MDLMObjective.loss
    calls = {"n": 0}

    def flaky(self, model, batch, gen):
        calls["n"] += 1
        loss, m = original(self, model, batch, gen)
        return (loss * float("inf"), m) if calls["n"] == 2 else (loss, m)

    monkeypatch.setattr(MDLMObjective, "loss", flaky)
    _, result = run(tmp_path / "r", tiny_tokenizer, 5, nan_policy="skip")
    state = torch.load(result.checkpoint / "train_state.pt", weights_only=False)
    assert state["skipped"] == 1 and result.steps == 5


def test_corrupt_and_missing_checkpoints(tmp_path, tiny_tokenizer):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    model = make_model(tiny_tokenizer.vocab_size)
    ck = save_checkpoint(tmp_path / "ck", model, "mdlm", tiny_tokenizer)
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(ck)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a paradistill checkpoint"):
        resolve_checkpoint(tmp_path / "empty")
    ck2 = save_checkpoint(tmp_path / "ck2", model, "mdlm", tiny_tokenizer)
    (ck2 / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(ck2)


def test_wrong_kind_and_vocab_mismatch(tmp_path, tiny_tokenizer):
    from paradistill.data.tokenizers import WordTokenizer

    model = make_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "ck", model, "ar", tiny_tokenizer)
    with pytest.raises(UserError, match="holds a 'ar' model"):
        load_checkpoint(tmp_path / "ck", expect_kinds=("mdlm",))
    other = WordTokenizer.from_vocab(["x", "y"])
    save_checkpoint(tmp_path / "ck3", model, "mdlm", other)
    with pytest.raises(UserError, match="vocab 12 != tokenizer vocab 6"):
        load_checkpoint(tmp_path / "ck3")


def test_failed_write_keeps_previous_checkpoint(tmp_path, tiny_tokenizer, monkeypatch):
    import paradistill.checkpoint as ckmod

    model = make_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "ck", model, "mdlm", tiny_tokenizer, {"v": 1})

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckmod.torch, "save", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ck", model, "mdlm", tiny_tokenizer, {"v": 2}, train_state={"step": 1})
    assert load_checkpoint(tmp_path / "ck").method == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temporary left behind


def test_recipe_errors_name_the_key():
    from paradistill.recipes import load_recipe

    with pytest.raises(UserError, match="unknown key 'max_step'.*did you mean 'max_steps'"):
        load_recipe("tiny", ["train.max_step=3"])
    with pytest.raises(UserError, match="train.batch_size: expected an integer"):
        load_recipe("tiny", ["train.batch_size=lots"])
    with pytest.raises(UserError, match="unknown recipe 'tinny'.*did you mean 'tiny'"):
        load_recipe("tinny")
    with pytest.raises(UserError, match="data.seq_len=1"):
        load_recipe("tiny", ["data.seq_len=1"])
