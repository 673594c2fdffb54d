r"""Does a Gumbel-distilled student learn the noise -> text map with longer training? A learning curve.

For each run (LABEL=RUN) and each checkpoint kept under RUN/checkpoints/step_*, the noise-map agreement of
experiments/gumbel/noise_map.py (the fraction of tokens equal to the teacher's own x* = f(xi) for the same prior
noise; an MDLM run gives the chance level), beside the validation NELBO logged during training (RUN/metrics.jsonl;
for a GD student it is conditioned on the posterior noise of the validation text). Writes the rows (--json, and
a .md table beside it) and a two-panel figure (--png): validation NELBO over training, agreement per checkpoint.

    python -m experiments.gumbel.learning_curve --run gd-mdlm-long=runs/gumbel/gd-mdlm-long --run mdlm=runs/base/mdlm \
        --steps 16 --first-hitting --num 128 --json results/gumbel_distillation/learning_curve.json \
        --png results/gumbel_distillation/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from experiments.common.models import load_model, model_args, val_curve
from experiments.common.output import save
from experiments.gumbel.noise_map import agreement_rows
from experiments.common.cli import positive_int


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = sorted((int(p.name.split("_")[1]), p) for p in (run / "checkpoints").glob("step_*") if p.is_dir())
    if not found:
        raise SystemExit(f"--run {run}: no checkpoints/step_* directories (train with train.checkpoint_every and "
                         "train.keep_checkpoints large enough to keep them)")
    return found


def plot(curves: dict, rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 5.2))
    for label, pts in curves.items():
        a.plot([s for s, _ in pts], [v for _, v in pts], marker=".", label=label)
    a.set(xlabel="optimizer step", ylabel="validation NELBO (nats/token)", title="validation NELBO")
    a.set_ylim(top=min(3.0, a.get_ylim()[1]))
    a.legend()
    for key in sorted({(r["model"], r["sampler"], str(r["steps"])) for r in rows}):
        pts = [r for r in rows if (r["model"], r["sampler"], str(r["steps"])) == key]
        line, = b.plot([r["train_step"] for r in pts], [100 * r["agreement"] for r in pts], marker="o",
                       label=f"{key[0]}, {key[1]} T={key[2]}: = x*")
        b.plot([r["train_step"] for r in pts], [100 * r["local_agreement"] for r in pts], marker="s", ls="--",
               color=line.get_color(), label=f"{key[0]}, {key[1]} T={key[2]}: local")
        b.plot([r["train_step"] for r in pts], [100 * r["local_chance"] for r in pts], ls=":", lw=2,
               color=line.get_color(), label=f"{key[0]}, {key[1]} T={key[2]}: local, chance")
    b.set(xlabel="optimizer step", ylabel="% of tokens", title="= x* (solid), local (dashed), its chance (dotted)")
    b.set_ylim(bottom=0)
    b.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18))  # below the axes: never on the data
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def measure(args, curves: dict) -> list[dict]:
    """Noise-map agreement of every kept checkpoint of every run, with the validation NELBO logged nearest to it."""
    from paradistill.distill.teachers import GrammarTeacher

    teacher = GrammarTeacher()
    rows = []
    for label, run in model_args(args.run, "--run"):
        for step, ckpt in checkpoints(Path(run)):
            # the validation NELBO logged nearest to the checkpoint (eval_every need not divide checkpoint_every)
            val_step, val = min(curves[label], key=lambda sv: abs(sv[0] - step), default=(None, None))
            for r in agreement_rows(label, load_model(label, ckpt, "--run"), teacher, args.steps, args.first_hitting, args.num,
                                    args.length, args.seed, args.noise_temperature):
                rows.append({**r, "train_step": step, "val_step": val_step, "val_nelbo": val})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=RUN",
                    help="a GD student run or an MDLM run (chance level), with several kept checkpoints")
    ap.add_argument("--steps", type=positive_int, nargs="*", default=[16], help="ancestral step counts")
    ap.add_argument("--first-hitting", action="store_true", help="also first-hitting (T = L)")
    ap.add_argument("--num", type=positive_int, default=128, help="noise draws (samples) per checkpoint and setting")
    ap.add_argument("--length", type=positive_int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-temperature", type=float, default=1.0, help="noise scale the GD students see")
    ap.add_argument("--json", default=None, help="write the rows here (and a .md table beside it)")
    ap.add_argument("--png", default=None, help="write the two-panel figure here")
    ap.add_argument("--render-only", action="store_true",
                    help="do not sample: re-render the table and figure from the rows already in --json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    curves = {label: val_curve(Path(run)) for label, run in model_args(args.run, "--run")}
    if args.render_only:
        if not args.json or not Path(args.json).is_file():
            raise SystemExit("--render-only needs --json naming an earlier output of this script")
        rows = json.loads(Path(args.json).read_text())["rows"]
    else:
        rows = measure(args, curves)
    lines = ["| model | step | val NELBO (at step) | sampler | T | tokens equal to x* = f(xi) | agreeing prefix | "
             "local agreement (teacher's choice after the sample's own prefix) | local agreement if the noise were "
             "ignored |", "|---|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        val = "" if r["val_nelbo"] is None else f"{r['val_nelbo']:.3f} ({r['val_step']})"
        lines.append(f"| {r['model']} | {r['train_step']} | {val} | {r['sampler']} | {r['steps']} | "
                     f"{100 * r['agreement']:.1f}% | {r['prefix']:.2f} | {100 * r['local_agreement']:.1f}% | "
                     f"{100 * r['local_chance']:.1f}% |")
    save(args, rows, "\n".join(lines))
    if args.png:
        plot(curves, rows, args.png)


if __name__ == "__main__":
    main()
