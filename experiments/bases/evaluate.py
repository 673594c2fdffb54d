"""The targets of the shipped bases: exact Gen PPL under the corpus's generator, slips per sample, entropy.

Every setting draws `--num` samples (fixed seed, batches of 128) from a `builtin:` base (or, with `--use NAME=RUN`,
from a trained run in its place, to judge a candidate before packing it) and scores positions 1..L-1 under the
generator itself (experiments.common.scoring). A row's 95% interval comes from the per-sample NLLs; a ratio to
the AR base carries the interval of the difference of two independent mean NLLs. The generator's own samples give
the floor.

    python -m experiments.bases.evaluate --num 256 --out results/bases
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from experiments.common.output import write_json, write_text
from experiments.common.scoring import exact_score
from experiments.common.cli import positive_int

ROOT = Path(__file__).resolve().parents[2]
# (label, base, sampler, steps, block); BD3-LM steps are per block. First-hitting unmasks exactly one token per pass
# (MDLM: T = L; BD3-LM: B passes per block of B, the official BD3-LM sampler's default); ancestral at the same number
# of passes commits a random number of tokens per step (several at once in some steps, none in others). The MDLM
# rows with a block decode it semi-autoregressively in that order (block 1: left to right), one token per pass:
# how much of the gap to the AR is the random decoding order rather than the model.
SETTINGS = [
    ("generator (floor)", None, None, None, None),
    ("AR", "builtin:ar", "ar", 64, None),
    ("MDLM T=L (first-hitting)", "builtin:mdlm", "first-hitting", 1, None),
    ("MDLM T=64 (ancestral)", "builtin:mdlm", "ancestral", 64, None),
    ("MDLM T=16 (ancestral)", "builtin:mdlm", "ancestral", 16, None),
    ("MDLM T=L, blocks of 4 left to right (first-hitting in each)", "builtin:mdlm", "first-hitting", 4, 4),
    ("MDLM T=L, left to right", "builtin:mdlm", "first-hitting", 1, 1),
    ("BD3-LM B=4, 4 steps/block (first-hitting)", "builtin:bd3lm-b4", "first-hitting", 4, None),
    ("BD3-LM B=4, 4 steps/block (ancestral)", "builtin:bd3lm-b4", "ancestral", 4, None),
    ("BD3-LM B=16, 16 steps/block (first-hitting)", "builtin:bd3lm-b16", "first-hitting", 16, None),
    ("BD3-LM B=16, 16 steps/block (ancestral)", "builtin:bd3lm-b16", "ancestral", 16, None),
    ("BD3-LM B=16, 4 steps/block (ancestral)", "builtin:bd3lm-b16", "ancestral", 4, None),
]
FIELDS = ("nll", "nll_se", "gen_ppl", "entropy", "num", "slips_per_sample", "slips_se", "clean_samples")


def base_names() -> set[str]:
    """The names of the `builtin:` bases the settings sample."""
    return {s[1].partition(":")[2] for s in SETTINGS if s[1]}


def parse_use(items: list[str]) -> dict[str, str]:
    """--use NAME=RUN pairs -> {NAME: RUN}; NAME must be a base the settings sample."""
    names = base_names()
    out = {}
    for item in items:
        name, sep, run = item.partition("=")
        if not sep or name not in names or not run:
            raise SystemExit(f"--use {item!r}: write NAME=RUN with NAME one of {', '.join(sorted(names))}")
        out[name] = run
    return out


def ci95(nll: float, se: float) -> list[float]:
    return [math.exp(nll - 1.96 * se), math.exp(nll + 1.96 * se)]


def ratio(row: dict, ref: dict) -> dict:
    """Gen PPL ratio row / ref with the 95% interval of the difference of the two mean NLLs."""
    from paradistill.eval.metrics import ppl_ratio

    r, lo, hi = ppl_ratio(row["nll"], row["nll_se"], ref["nll"], ref["nll_se"])
    return {"ratio": r, "ratio_ci95": [lo, hi]}


def sample_setting(base: str | None, sampler: str | None, steps: int | None, block: int | None, num: int, seed: int,
                   length: int):
    from paradistill import api
    from paradistill.data.grammar import StoryGrammar

    if base is None:
        return StoryGrammar().sample(num, length, torch.Generator().manual_seed(seed)), None, None
    loaded = api.load(base)
    res = api.generate(loaded, num, sampler=sampler, steps=steps, block_size=block, batch_size=128, seed=seed,
                       progress=False)
    return res.tokens, sum(res.nfe) / len(res.nfe), (loaded.config.get("base") or {}).get("val_loss")


def slips_cell(mean: float, se: float | None) -> str:
    """Slips per sample with its 95% normal interval over samples (the point alone for rows written before the
    standard error was recorded)."""
    if se is None or not math.isfinite(se):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{mean - 1.96 * se:.2f}, {mean + 1.96 * se:.2f}]"


def table(rows: list[dict]) -> str:
    head = ("| setting | NFE / batch | exact Gen PPL [95% CI] | vs AR [95% CI] | slips / sample [95% CI] | slip-free "
            "| entropy | base val loss |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        vs = f"{r['ratio']:.2f}x [{r['ratio_ci95'][0]:.2f}, {r['ratio_ci95'][1]:.2f}]" if "ratio" in r else "-"
        nfe = f"{r['nfe_per_batch']:.0f}" if r.get("nfe_per_batch") is not None else "-"
        val = f"{r['val_loss']:.4f}" if r.get("val_loss") is not None else "-"
        slips = slips_cell(r["slips_per_sample"], r.get("slips_se"))
        lines.append(f"| {r['label']} | {nfe} | {r['gen_ppl']:.2f} [{r['gen_ppl_ci95'][0]:.2f}, "
                     f"{r['gen_ppl_ci95'][1]:.2f}] | {vs} | {slips} | {100 * r['clean_samples']:.0f}% "
                     f"| {r['entropy']:.3f} | {val} |")
    return "\n".join(lines)


def keep_other_rows(rows: list[dict], previous: Path, args) -> list[dict]:
    """`rows` (the --only settings just measured) merged in SETTINGS order with the other settings' rows of an
    earlier targets.json drawn with the same --num, --seed and --length, so that --only does not drop them."""
    if not previous.is_file():
        return rows
    old = json.loads(previous.read_text())
    if any(old["args"].get(k) != getattr(args, k) for k in ("num", "seed", "length")):
        print(f"{previous}: drawn with other --num/--seed/--length; writing only the --only rows", flush=True)
        return rows
    new = {r["label"]: r for r in rows}
    kept = {r["label"]: r for r in old["rows"] if r["label"] not in new}
    return [new.get(label) or kept[label] for label, *_ in SETTINGS if label in new or label in kept]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=positive_int, default=256, help="samples per setting (default 256)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    ap.add_argument("--length", type=positive_int, default=64, help="sequence length of the generator's samples (default 64)")
    ap.add_argument("--out", default=str(ROOT / "results" / "bases"), help="folder for targets.json / targets.md")
    ap.add_argument("--use", action="append", default=[], metavar="NAME=RUN",
                    help="sample this run (or checkpoint) in place of builtin:NAME, e.g. mdlm=runs/bases/mdlm-long "
                         "(repeatable)")
    ap.add_argument("--only", nargs="*", default=None, metavar="NAME",
                    help="evaluate only the settings of these bases (ar is always included: the ratios need it); "
                         "the other rows are kept from --out's targets.json when it has the same --num, --seed and "
                         "--length")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    use = parse_use(args.use)
    known = base_names()
    if args.only is not None and set(args.only) - known:
        raise SystemExit(f"--only {' '.join(sorted(set(args.only) - known))}: not a base the settings sample; "
                         f"choose from {', '.join(sorted(known))}")
    rows = []
    for label, base, sampler, steps, block in SETTINGS:
        name = base.partition(":")[2] if base else None
        if args.only is not None and name is not None and name not in (*args.only, "ar"):
            continue
        base = use.get(name, base)
        start = time.perf_counter()
        tokens, nfe, val = sample_setting(base, sampler, steps, block, args.num, args.seed, args.length)
        s = exact_score(tokens)
        row = {"label": label, "base": base, "sampler": sampler, "steps": steps, "block": block, "seed": args.seed,
               "nfe_per_batch": nfe, "val_loss": val, "seconds": time.perf_counter() - start, **s.row(FIELDS),
               "gen_ppl_ci95": ci95(s.nll, s.nll_se)}
        rows.append(row)
        print(f"{label:60s} Gen PPL {row['gen_ppl']:8.2f} [{row['gen_ppl_ci95'][0]:.2f}, {row['gen_ppl_ci95'][1]:.2f}]"
              f"  slips {row['slips_per_sample']:.2f}  {row['seconds']:.0f}s", flush=True)
    rows = keep_other_rows(rows, Path(args.out) / "targets.json", args) if args.only is not None else rows
    ar = next(r for r in rows if r["label"] == "AR")
    for r in rows:
        if r is not ar:
            r.update(ratio(r, ar))
    out = Path(args.out)
    write_json(out / "targets.json", {"args": vars(args), "rows": rows})
    write_text(out / "targets.md", table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
