"""A tiny MDLM training job for tests/test_scale.py, runnable in-process (1 device) or as a script that
Lightning Fabric relaunches once per rank (DDP / FSDP over gloo on CPU).

    python tests/scale_worker.py OUT --devices 2 --strategy ddp --micro 0 --steps 6

Writes (rank 0) OUT/result.json: the logged train losses of an uninterrupted run (OUT/full), of a run stopped
at step 3 and resumed (OUT/split), the final validation loss (split over ranks), a sharded toy job's output and
samples drawn by `generate_sharded` (batches split over ranks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]


def tiny_data(n=64, length=12, vocab=12, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(4, vocab, size=(n, length)).astype(np.uint16)
    data[:, 0] = 1
    return data


def train_config(steps: int, devices: int, strategy: str, micro: int):
    from paradistill.train.config import TrainConfig

    # constant lr after warm-up, so a run stopped early and resumed sees the same schedule
    return TrainConfig(max_steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, min_lr_ratio=1.0, eval_every=0,
                       eval_batches=4, checkpoint_every=3, log_every=1, ema=0.9, devices=devices, strategy=strategy,
                       micro_batch_size=micro, accelerator="cpu", precision="32-true")


def one_run(out: Path, cfg, fabric, resume: bool = False):
    from paradistill.data.tokenizers import WordTokenizer
    from paradistill.diffusion.objectives import DiffusionConfig, MDLMObjective
    from paradistill.models.transformer import ModelConfig, Transformer
    from paradistill.train.loop import train

    tok = WordTokenizer.from_vocab(WORDS)
    torch.manual_seed(1)
    model = Transformer(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=2, max_len=64))
    objective = MDLMObjective(DiffusionConfig(), tok.mask_id, tok.pad_id, tok.bos_id)
    return train(objective, model, tiny_data(), tiny_data(16, seed=1), cfg, out, tok, {"seq_len": 12},
                 resume=resume, progress=False, fabric=fabric)


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    return [r["loss"] for r in rows if r["kind"] == "train"]


def sharded_job(fabric) -> list[list[int]]:
    from paradistill.train.distributed import shard_batches

    def fn(b, start, size):  # a seeded "generation" batch: depends on the batch index only
        g = torch.Generator().manual_seed(100 + b)
        return torch.randint(0, 1000, (size, 5), generator=g)

    return shard_batches(fabric, 10, 3, fn).tolist()


def run_job(out: str | Path, devices: int, strategy: str, micro: int, steps: int) -> dict:
    from dataclasses import replace

    from paradistill.train.loop import evaluate, make_fabric

    out = Path(out)
    cfg = train_config(steps, devices, strategy, micro)
    fabric = make_fabric(cfg)
    full = one_run(out / "full", cfg, fabric)
    one_run(out / "split", replace(cfg, max_steps=3), fabric)
    one_run(out / "split", cfg, fabric, resume=True)
    result = {"world": fabric.world_size, "full": losses(out / "full"), "split": losses(out / "split"),
              "steps": full.steps, "shard": sharded_job(fabric)}
    from paradistill.diffusion.objectives import DiffusionConfig, MDLMObjective
    from paradistill.loader import load_checkpoint

    loaded = load_checkpoint(out / "full", use_ema=False)
    tok = loaded.tokenizer
    objective = MDLMObjective(DiffusionConfig(), tok.mask_id, tok.pad_id, tok.bos_id)
    result["val"] = evaluate(objective, loaded.model, tiny_data(16, seed=1), cfg, "cpu", fabric)
    from paradistill.sharded import generate_sharded

    samples = generate_sharded(loaded, 5, fabric, seed=3, batch_size=2, sampler="ancestral", steps=4)
    result["samples"], result["sample_nfe"] = samples.tokens.tolist(), samples.nfe
    if fabric.is_global_zero:
        (out / "result.json").write_text(json.dumps(result))
    fabric.barrier()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--strategy", default="ddp")
    p.add_argument("--micro", type=int, default=0)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run_job(args.out, args.devices, args.strategy, args.micro, args.steps)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
