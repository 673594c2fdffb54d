"""AR -> MDLM adaptation: validation NELBO of the AR-initialised MDLM against a from-scratch MDLM of the same recipe,
one figure, and for every evaluation of the from-scratch run the optimizer steps the AR-initialised run needs to
reach that value (first evaluation at or below it). The issue's target: the from-scratch run's final value within
1/4 of its steps.

    python -m experiments.bases.curves --adapted runs/bases/mdlm --scratch runs/bases/mdlm-scratch --ar runs/bases/ar \
        --out results/bases
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.common.models import val_curve
from experiments.common.output import write_json

ROOT = Path(__file__).resolve().parents[2]


def steps_to_reach(curve: list[tuple[int, float]], value: float) -> int | None:
    return next((s for s, v in curve if v <= value), None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapted", default=str(ROOT / "runs/bases/mdlm"), help="the AR-initialised MDLM run")
    ap.add_argument("--scratch", default=str(ROOT / "runs/bases/mdlm-scratch"), help="the from-scratch MDLM run")
    ap.add_argument("--ar", default=str(ROOT / "runs/bases/ar"), help="the AR run (its validation NLL as a line)")
    ap.add_argument("--out", default=str(ROOT / "results/bases"), help="folder for adaptation.json / .png")
    args = ap.parse_args(argv)
    adapted, scratch = val_curve(args.adapted, "--adapted"), val_curve(args.scratch, "--scratch")
    ar = val_curve(Path(args.ar)) if Path(args.ar, "metrics.jsonl").is_file() else []
    pairs = [{"scratch_step": s, "scratch_val": v, "adapted_step": steps_to_reach(adapted, v)} for s, v in scratch]
    for p in pairs:
        p["fraction"] = p["adapted_step"] / p["scratch_step"] if p["adapted_step"] is not None else None
    final = pairs[-1]
    summary = {"scratch_final_step": final["scratch_step"], "scratch_final_val_nelbo": final["scratch_val"],
               "adapted_steps_to_reach_it": final["adapted_step"], "fraction_of_steps": final["fraction"],
               "target_fraction": 0.25, "met": final["fraction"] is not None and final["fraction"] <= 0.25,
               "adapted_final": adapted[-1], "ar_final_val_nll": ar[-1][1] if ar else None,
               "pairs": pairs, "adapted": adapted, "scratch": scratch}
    out = Path(args.out)
    write_json(out / "adaptation.json", summary)
    plot(out / "adaptation.png", adapted, scratch, ar, final)
    for p in pairs[::4] + [final]:
        print(f"scratch step {p['scratch_step']:5d} val {p['scratch_val']:.4f} <- adapted step {p['adapted_step']} "
              f"({p['fraction']:.3f})" if p["fraction"] is not None else f"scratch step {p['scratch_step']}: not reached")


def plot(path: Path, adapted, scratch, ar, final) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paradistill.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(*zip(*scratch), "o-", ms=3, label="MDLM from scratch", color="C0")
    ax.plot(*zip(*adapted), "s-", ms=3, label="MDLM initialised from the AR base", color="C1")
    ax.axhline(final["scratch_val"], color="C0", ls=":", lw=1,
               label=f"from-scratch value at step {final['scratch_step']} ({final['scratch_val']:.3f})")
    if ar:
        ax.axhline(ar[-1][1], color="k", ls="--", lw=1, label=f"AR base validation NLL ({ar[-1][1]:.3f})")
    if final["adapted_step"] is not None:
        ax.axvline(final["adapted_step"], color="C1", ls=":", lw=1,
                   label=f"AR-initialised reaches it at step {final['adapted_step']}")
    ax.set_xscale("log")
    ax.set_xlabel("optimizer steps (log scale)")
    ax.set_ylabel("validation NELBO, nats/token (EMA weights)")
    ax.set_title("AR -> MDLM adaptation (tiny recipe, built-in corpus)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
