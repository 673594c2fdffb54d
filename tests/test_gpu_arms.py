"""experiments.bases.gpu_arms: the arms' commands, progress read from a run's metrics, and bad --arms."""

import json

import pytest

from experiments.bases import gpu_arms


def test_every_arm_is_the_tiny_recipe_from_builtin_ar_with_its_own_overrides(tmp_path):
    for name, (_, steps, kind, overrides) in gpu_arms.ARMS.items():
        cmd = gpu_arms.command("pd", tmp_path, name)
        assert f"train.max_steps={steps}" in cmd and "train.max_steps=7" in gpu_arms.command("pd", tmp_path, name, 7)
        assert cmd[:4] == ["pd", "--threads", "1", "train"]
        assert cmd[4:4 + len(kind)] == kind
        assert cmd[cmd.index("--init-from-ar") + 1] == "builtin:ar"
        assert cmd[cmd.index("--out") + 1] == str(tmp_path / name)
        assert cmd[-len(overrides):] == overrides and set(gpu_arms.COMMON) <= set(cmd)
        keys = [o.split("=")[0] for o in ["train.max_steps", *gpu_arms.COMMON, *overrides]]
        assert len(keys) == len(set(keys)), f"{name}: a recipe key is set twice"
    # the b32 arm is longer.sh's training as it stands
    longer = gpu_arms.command("pd", tmp_path, "b32")
    assert {"train.lr=0.001", "data.num_tokens=16000000", "train.max_steps=30000"} <= set(longer)


def test_progress_reads_the_last_train_step_and_validation_loss(tmp_path):
    lines = [{"step": 10, "kind": "train", "loss": 3.0, "elapsed_s": 2.0},
             {"step": 10, "kind": "val", "val_loss": 2.5},
             {"step": 20, "kind": "train", "loss": 2.0, "elapsed_s": 4.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n{\"step\": 3")  # torn line
    assert gpu_arms.progress(tmp_path) == (20, 4.0, 2.5)
    assert gpu_arms.progress(tmp_path / "missing") == (0, None, None)
    assert not gpu_arms.finished(tmp_path)
    (tmp_path / "latest.json").write_text(json.dumps({"path": "checkpoints/step_0000020", "final": True}))
    assert gpu_arms.finished(tmp_path)


def test_an_unknown_arm_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        gpu_arms.main(["--arms", "b64", "--out", "unused"])
    assert "choose from b512,b128,b32,bd3lm-b16" in capsys.readouterr().err
