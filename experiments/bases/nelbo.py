r"""Paired validation NELBO of checkpoints of one kind (MDLM or BD3-LM) on the tiny recipe's 8M-token data.

Every model is scored on the first --eval-batches batches of that data's validation split with the training loop's
evaluation masks, so all see the same masked inputs and each difference from the first --model is paired per batch
(mean difference with a 95% t interval over batches; one training run per model, so this is the difference of
these models, not the spread over training seeds). `experiments.bases.compare` does this and more for MDLM runs;
this one serves any diffusion kind, e.g. a continued BD3-LM against the shipped one:

    python -m experiments.bases.nelbo --kind bd3lm --block-size 16 --model 'shipped=builtin:bd3lm-b16' \
        --model 'continued=runs/b16cont/bd3lm-b16' --out results/bases/bd3lm_b16

Writes nelbo.json, nelbo.md and COMMAND.md into --out.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

import torch

from experiments.bases.compare import RECIPE_OVERRIDES, batch_nelbos, fmt_diff, paired, validation_batches
from experiments.common.cli import positive_int
from experiments.common.models import load_run, model_args
from experiments.common.output import write_command, write_json, write_text

KINDS = ("mdlm", "bd3lm")


def score(kind: str, models: list[tuple[str, str]], eval_batches: int, block_size: int | None = None) -> dict:
    """{label: per-batch NELBOs} of each (label, checkpoint reference) on the shared validation batches."""
    objective, val, bsz, mask_seed = validation_batches(kind, eval_batches, block_size)
    out = {}
    for label, ref in models:
        loaded = load_run(ref, f"--model {label}=", expect_kinds=(kind,))
        out[label] = batch_nelbos(loaded.model, objective, val, eval_batches, bsz, mask_seed)
        print(f"{label:24s} NELBO {statistics.fmean(out[label]):.4f}", flush=True)
    return out


def table(nelbos: dict, eval_batches: int) -> str:
    labels = list(nelbos)
    lines = [f"| model | val NELBO ({eval_batches} batches of 32) | vs {labels[0]} (paired, 95% CI) |", "|---|---:|---|"]
    for label in labels:
        vs = fmt_diff(paired(nelbos[label], nelbos[labels[0]])) if label != labels[0] else "-"
        lines.append(f"| {label} | {statistics.fmean(nelbos[label]):.4f} | {vs} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=KINDS, required=True, help="the models' kind")
    ap.add_argument("--block-size", type=positive_int, default=None,
                    help="BD3-LM block size of the models (required with --kind bd3lm)")
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=REF", required=True,
                    help="a checkpoint (run folder, checkpoint or builtin: id); repeatable, the first is the "
                         "reference the others are compared with")
    ap.add_argument("--eval-batches", type=positive_int, default=200,
                    help="validation batches of 32 rows (default 200 of the split's 205)")
    ap.add_argument("--out", required=True, help="output folder (results/bases/NAME)")
    args = ap.parse_args(argv)
    if (args.kind == "bd3lm") != (args.block_size is not None):
        raise SystemExit(f"--block-size {args.block_size}: give it with --kind bd3lm (its models' block size), "
                         "and only then")
    models = model_args(args.model)
    if len({label for label, _ in models}) < len(models):
        raise SystemExit(f"--model labels must differ: {', '.join(label for label, _ in models)}")
    torch.set_num_threads(1)
    nelbos = score(args.kind, models, args.eval_batches, args.block_size)
    rows = [{"model": label, "ref": ref, "val_nelbo": statistics.fmean(nelbos[label]), "batch_nelbos": nelbos[label],
             **({"vs_first": paired(nelbos[label], nelbos[models[0][0]])} if label != models[0][0] else {})}
            for label, ref in models]
    out = Path(args.out)
    write_json(out / "nelbo.json", {"kind": args.kind, "block_size": args.block_size, "eval_batches": args.eval_batches,
                                   "recipe_overrides": RECIPE_OVERRIDES, "rows": rows})
    write_text(out / "nelbo.md", table(nelbos, args.eval_batches))
    write_command(out, "experiments.bases.nelbo", [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    print(f"wrote {out}/nelbo.json, nelbo.md, COMMAND.md")


if __name__ == "__main__":
    main()
