"""Grow a trained paradistill model deeper without changing what it computes, to continue training it with more
capacity (results/bases/growth tried it on an MDLM whose validation NELBO fell only slowly at 4 layers).

Every old block i becomes block i * factor; the factor - 1 new blocks after it are freshly initialised except their
two residual write-outs (attention `proj` and the MLP's second linear, weight and bias), which start at zero. A
pre-norm block with zero write-outs is the identity on the residual stream, so the grown model's outputs equal the
source's exactly (up to float rounding); training then opens the new blocks from there (net2net-style growth).

    python -m experiments.bases.grow builtin:mdlm runs/grow/mdlm-8l-init --factor 2
    paradistill train mdlm --recipe tiny --init runs/grow/mdlm-8l-init model.n_layers=8 ...
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from paradistill.checkpoint import save_checkpoint
from paradistill.loading import load
from paradistill.models.transformer import Transformer
from experiments.common.cli import positive_int

ZERO_OUT = ("attn.proj.weight", "mlp.2.weight", "mlp.2.bias")


def grow_depth(model: Transformer, factor: int, seed: int = 0) -> Transformer:
    """A model with factor x the blocks computing the same function as `model` (see the module docstring)."""
    if getattr(model.cfg, "adaln", False) or getattr(model.cfg, "time_conditioning", False):
        # their new blocks are identities already through the zero-initialised adaLN gates; zeroing the write-outs
        # as well would leave both factors of each new branch at zero, with no gradient. Not needed here: unsupported
        raise SystemExit("grow: models with adaLN time conditioning are not supported; grow a model without it")
    cfg = dataclasses.replace(model.cfg, n_layers=model.cfg.n_layers * factor)  # validated: factor >= 1
    torch.manual_seed(seed)
    grown = type(model)(cfg)
    src = model.state_dict()
    dst = grown.state_dict()
    for key, value in src.items():
        if not key.startswith("blocks."):
            dst[key] = value.clone()
            continue
        _, idx, rest = key.split(".", 2)
        dst[f"blocks.{int(idx) * factor}.{rest}"] = value.clone()
    for i in range(cfg.n_layers):
        if i % factor:
            for name in ZERO_OUT:
                dst[f"blocks.{i}.{name}"] = torch.zeros_like(dst[f"blocks.{i}.{name}"])
    grown.load_state_dict(dst)
    return grown.eval()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="checkpoint to grow: a run or checkpoint directory, or a builtin:/hf: id (EMA "
                                   "weights are used when it has them)")
    ap.add_argument("out", help="new checkpoint directory to write (must not exist)")
    ap.add_argument("--factor", type=positive_int, default=2, help="depth multiplier (default 2: 4 blocks become 8)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new blocks' initialisation (default 0)")
    args = ap.parse_args(argv)
    if Path(args.out).exists():
        raise SystemExit(f"{args.out} exists: choose a new directory (nothing is overwritten)")
    loaded = load(args.source, use_ema=True)
    grown = grow_depth(loaded.model, args.factor, args.seed)
    method = dict(loaded.config.get("method", {}))
    method["grown_from"] = {"source": args.source, "factor": args.factor, "seed": args.seed,
                            "n_layers": loaded.model.cfg.n_layers}
    save_checkpoint(Path(args.out), grown, loaded.kind, loaded.tokenizer, method=method)
    n = sum(p.numel() for p in grown.parameters())
    print(f"{args.out}: {loaded.kind}, {loaded.model.cfg.n_layers} -> {grown.cfg.n_layers} blocks, {n / 1e6:.2f}M "
          f"parameters")


if __name__ == "__main__":
    main()
