r"""Compare MDLM training runs with a reference MDLM (default `builtin:mdlm`) on what the MDLM targets ask for. Any
MDLM runs of the tiny recipe on the 8M-token data: continued trainings of a base (experiments/bases/growth.sh: more
steps, or more depth via experiments.bases.grow) or new adaptations from `builtin:ar` (experiments/bases/shifted.sh).
For each run and for the reference (--reference, default the shipped model):

- validation NELBO on the first --eval-batches batches of the training's own validation split, with the same mask
  draws for every model, so differences are paired per batch (mean difference with a 95% t interval over batches;
  this is the models' difference, not the spread over training seeds, which one run per arm cannot give);
- exact Gen PPL under the corpus's generator at T = L (first-hitting, one token per pass, random order: the target's
  setting) and left to right, --num samples each, with the ratio to `builtin:ar` and to the reference (95%
  intervals of the difference of independent mean NLLs); each further run is also compared with the first one;
- the validation curves of the runs in one figure.

Writes compare.json, table.md, curves.png and COMMAND.md into --out.

    python -m experiments.bases.compare --run unshifted=runs/shifted/unshifted --run shifted=runs/shifted/shift \
        --out results/bases/shifted
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from experiments.bases.evaluate import ratio, sample_setting, slips_cell
from experiments.common.cli import positive_int
from experiments.common.models import model_args, val_curve
from experiments.common.output import write_command, write_json, write_text
from experiments.common.scoring import exact_score
from experiments.common.seeds import seed_effect

ROOT = Path(__file__).resolve().parents[2]
# the data section every MDLM of the chain was trained with (train.sh stage 2 and growth.sh): its validation split
RECIPE_OVERRIDES = ["data.num_tokens=8000000"]
SETTINGS = [("T=L (first-hitting)", 1, None), ("T=L, left to right", 1, 1)]


def validation_batches(kind: str, eval_batches: int, block_size: int | None = None):
    """(objective of `kind`, validation rows, batch size, the training loop's mask seed) of the tiny recipe on the
    data every base was compared on (RECIPE_OVERRIDES); one-line exit when the split has fewer than `eval_batches`."""
    from paradistill.methods.base import build_objective
    from paradistill.recipes import load_recipe, prepare

    recipe = load_recipe("tiny", RECIPE_OVERRIDES + ([f"bd3lm.block_size={block_size}"] if block_size else []))
    data = prepare(recipe, progress=False)
    objective, _ = build_objective(kind, recipe, data.tokenizer)
    bsz = recipe.train.batch_size
    if len(data.val) < eval_batches * bsz:
        raise SystemExit(f"--eval-batches {eval_batches}: the validation split has {len(data.val) // bsz} "
                         f"batches of {bsz}; pass at most that")
    return objective, data.val, bsz, recipe.train.seed


def batch_nelbos(model, objective, val, batches: int, batch_size: int, seed: int) -> list[float]:
    """NELBO per token of each of the first `batches` validation batches, with the training loop's evaluation
    masks (train.loop.step_generator(seed, i, salt=99)), so every model sees the same masked inputs."""
    from paradistill.train.loop import step_generator

    out = []
    with torch.no_grad():
        for i in range(batches):
            rows = torch.from_numpy(val[i * batch_size:(i + 1) * batch_size].astype("int64"))
            s, n = objective.eval_terms(model, rows, step_generator(seed, i, salt=99))
            out.append(float(s) / int(n))
    return out


def paired(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over batches with its 95% t interval (the same interval the seeded studies use)."""
    effect = seed_effect([x - y for x, y in zip(a, b)])
    return {"diff": effect.mean, "ci95": [effect.lo, effect.hi]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="LABEL=RUN", required=True,
                    help="an MDLM training run to compare with the reference (repeatable)")
    ap.add_argument("--reference", default="shipped builtin:mdlm=builtin:mdlm", metavar="LABEL=REF",
                    help="the model every run is compared with (default: the shipped builtin:mdlm; a checkpoint "
                         "folder pins an earlier one, e.g. one restored from git)")
    ap.add_argument("--eval-batches", type=positive_int, default=200,
                    help="validation batches of 32 rows for the paired NELBO (default 200 of the split's 205; the "
                         "training's own evaluation uses the first 16)")
    ap.add_argument("--num", type=positive_int, default=256, help="samples per Gen PPL setting (default 256)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    ap.add_argument("--out", required=True, help="output folder (results/bases/NAME)")
    args = ap.parse_args(argv)
    runs = model_args(args.run, "--run")
    reference = model_args([args.reference], "--reference")[0]
    labels = [reference[0]] + [label for label, _ in runs]
    if len(set(labels)) < len(labels):
        raise SystemExit(f"--run/--reference labels must differ: {', '.join(labels)}")
    curves = {label: val_curve(path) for label, path in runs}  # a folder without metrics.jsonl: one-line exit
    torch.set_num_threads(1)
    from paradistill import api

    objective, val, bsz, mask_seed = validation_batches("mdlm", args.eval_batches)
    models = [reference] + runs
    ar = exact_score(sample_setting("builtin:ar", "ar", 64, None, args.num, args.seed, 64)[0])
    ar_row = {"nll": ar.nll, "nll_se": ar.nll_se, "gen_ppl": ar.gen_ppl}
    rows, nelbos = [], {}
    for label, ref in models:
        loaded = api.load(ref)
        n_params = sum(p.numel() for p in loaded.model.parameters())
        nelbos[label] = batch_nelbos(loaded.model, objective, val, args.eval_batches, bsz, mask_seed)
        row = {"model": label, "ref": ref, "n_layers": loaded.model.cfg.n_layers, "params": n_params,
               "val_nelbo": statistics.fmean(nelbos[label]), "batch_nelbos": nelbos[label], "settings": {},
               "train_eval_val_loss": (loaded.config.get("base") or {}).get("val_loss")
               or (curves[label][-1][1] if label in curves else None)}
        if label != models[0][0]:
            row["val_nelbo_vs_shipped"] = paired(nelbos[label], nelbos[models[0][0]])
            row["steps"] = curves[label][-1][0]
        for name, steps, block in SETTINGS:
            start = time.perf_counter()
            s = exact_score(sample_setting(ref, "first-hitting", steps, block, args.num, args.seed, 64)[0])
            cell = {"gen_ppl": s.gen_ppl, "nll": s.nll, "nll_se": s.nll_se, "slips_per_sample": s.slips_per_sample,
                    "slips_se": s.slips_se, "entropy": s.entropy, "seconds": time.perf_counter() - start}
            cell["vs_ar"] = ratio(cell, ar_row)
            if label != models[0][0]:
                cell["vs_shipped"] = ratio(cell, rows[0]["settings"][name])
            row["settings"][name] = cell
            print(f"{label:24s} {name:22s} Gen PPL {s.gen_ppl:6.2f} ({cell['vs_ar']['ratio']:.2f}x AR)  slips "
                  f"{s.slips_per_sample:.2f}  {cell['seconds']:.0f}s", flush=True)
        rows.append(row)
    out = Path(args.out)
    write_json(out / "compare.json", {"ar": ar_row, "rows": rows, "curves": curves, "num": args.num,
                                     "seed": args.seed, "eval_batches": args.eval_batches,
                                     "recipe_overrides": RECIPE_OVERRIDES})
    write_text(out / "table.md", table(rows, ar_row, args))
    plot(curves, rows, out / "curves.png")
    write_command(out, "experiments.bases.compare", [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    print(f"wrote {out}/compare.json, table.md, curves.png, COMMAND.md")


def fmt_ratio(c: dict) -> str:
    lo, hi = c["ratio_ci95"]
    return f"{c['ratio']:.2f}x [{lo:.2f}, {hi:.2f}]"


def fmt_diff(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{d['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table(rows: list[dict], ar: dict, args) -> str:
    head = (f"| model | layers | params | its training steps | val NELBO ({args.eval_batches} batches) | vs reference "
            f"(paired, 95% CI) | setting | exact Gen PPL | vs AR [95% CI] | vs reference [95% CI] "
            f"| slips / sample [95% CI] | entropy |\n|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        for i, (name, c) in enumerate(r["settings"].items()):
            first = i == 0
            vs = fmt_diff(r["val_nelbo_vs_shipped"]) if first and "val_nelbo_vs_shipped" in r else "-"
            model = [r["model"], r["n_layers"], f"{r['params'] / 1e6:.2f}M", r.get("steps", 0), f"{r['val_nelbo']:.4f}",
                     vs] if first else [""] * 6
            lines.append(
                "| " + " | ".join(map(str, model)) + f" | {name} | {c['gen_ppl']:.2f} | "
                f"{fmt_ratio(c['vs_ar'])} | {fmt_ratio(c['vs_shipped']) if 'vs_shipped' in c else '-'} | "
                f"{slips_cell(c['slips_per_sample'], c.get('slips_se'))} | {c['entropy']:.3f} |")
    for r in rows[2:]:  # each further run against the first continued one: the effect of its change alone
        d = paired(r["batch_nelbos"], rows[1]["batch_nelbos"])
        lines.append(f"\n{r['model']} vs {rows[1]['model']}: validation NELBO {fmt_diff(d)} nats/token "
                     f"(paired); T=L (first-hitting) Gen PPL "
                     f"{fmt_ratio(ratio(r['settings'][SETTINGS[0][0]], rows[1]['settings'][SETTINGS[0][0]]))}.")
    lines.append(f"\nAR (`builtin:ar`): exact Gen PPL {ar['gen_ppl']:.2f}. {args.num} samples per setting, seed "
                 f"{args.seed}; positions 1..63 scored under the corpus's generator.")
    return "\n".join(lines) + "\n"


def plot(curves: dict, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paradistill.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, curve in curves.items():
        ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", ms=3, label=label)
    if rows[0]["train_eval_val_loss"] is not None:  # a reference without a recorded validation loss has no line
        ax.axhline(rows[0]["train_eval_val_loss"], color="gray", ls="--", lw=1, label=rows[0]["model"])
    ax.set_xlabel("optimizer steps of the run (from its starting checkpoint)")
    ax.set_ylabel("validation NELBO (nats/token, training's eval)")
    ax.set_title(" vs ".join(curves))
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
