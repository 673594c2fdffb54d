r"""How deep a piece of the noise -> text map has a Gumbel-distilled student learned? Three measurements.

The teacher's sample is `x*_i = argmax(log p_T(. | x*_<i) + xi_i)`: position i depends on the noise at i *and*, through
the text, on the noise at every earlier position. A parallel step that commits several tokens at once therefore
asks the student to run this chain forward over the still-masked positions inside one forward pass.

1. **Student depth profile** (`--model LABEL=RUN`, no sampler involved): prior noise `xi` and the teacher's own sample
   `x* = f(xi)`, a consistent pair like those seen in training. For a target position i and a depth d, the input shows
   `x*` up to position i-d-1 and masks everything from i-d on (the state of a left-to-right parallel step that commits
   d+1 tokens); for a block model, i sits at offset d of its block, the block is masked and later blocks are unseen. We
   read the student's probability of `x*_i` and whether `x*_i` is its argmax. d = 0: only the local link
   (`argmax(l + xi_i)` after a known prefix); d = k: k links of the chain before it. A student that has learned the
   map scores 1 at every d; one that ignores the noise scores its ordinary predictive probability (the chance level,
   measured by the MDLM / BD3-LM rows).
2. **Teacher coupling depth** (always; no model): how far back does the teacher's choice at i depend on the text? Two
   runs of the exact generator with the *same* noise from position i-d on, started at position i-d from the states of
   two different samples: the share of runs that agree at position i. If it rises to 1 within a few positions, the
   map is shallow in practice (only the last few noise vectors matter, whatever the text before them); if it stays
   low, committing position i before its left context needs the long chain.
3. **Links demanded by the MDLM samplers** (with the first MDLM-family `--model`; `--demand-steps`): the sampler is run
   with a backbone that records the MASK pattern of every pass; for each committed token, the number of positions
   before it still masked in the pass that committed it. With independent unmasking times (ancestral at any T,
   first-hitting) each earlier position is still masked with probability >= 1/2: on average >= (i-1)/2 links.

    python -m experiments.gumbel.map_depth --model mdlm=runs/base/mdlm --model gd-mdlm-skip=runs/gumbel/gd-mdlm-skip \
        --num 128 --json results/gumbel_distillation/depth.json --png results/gumbel_distillation/depth.png
"""

from __future__ import annotations

import argparse

import torch

from experiments.common.models import load_model, model_args
from experiments.common.output import save
from experiments.gumbel.noise_map import STUDENT_KINDS, prior_noise_and_sample
from experiments.common.cli import positive_int

DEPTHS = (0, 1, 2, 3, 5, 7, 11, 15)


@torch.no_grad()
def coupling_curve(grammar, num: int, length: int, target: int, max_depth: int, seed: int) -> list[dict]:
    """Share of pairs of generator runs that agree at position `target` when they share the noise from position
    target-d on but start (at target-d) from the states of two different samples, for d = 0..max_depth."""
    from paradistill.sampling.categorical import gumbel_noise

    xi = gumbel_noise((num, length, grammar.vocab_size), torch.Generator().manual_seed(seed))
    states = torch.empty(num, length, dtype=torch.long)  # state before emitting position i
    s = torch.full((num,), grammar.doc_state, dtype=torch.long)
    tokens = torch.empty(num, length, dtype=torch.long)
    for i in range(1, length):
        states[:, i] = s
        tokens[:, i] = (grammar.emit_logp[s] + xi[:, i]).argmax(-1)
        s = grammar.next_state[s, tokens[:, i]]
    other = torch.roll(torch.arange(num), 1)  # each run restarted from its neighbour's state
    rows = []
    for d in range(max_depth + 1):
        j = target - d
        s = states[other, j]
        for i in range(j, target + 1):
            tok = (grammar.emit_logp[s] + xi[:, i]).argmax(-1)
            s = grammar.next_state[s, tok]
        same_start = float((states[other, j] == states[:, j]).float().mean())
        rows.append({"depth": d, "agree": float((tok == tokens[:, target]).float().mean()),
                     "same_start_state": same_start})
    return rows


def masked_span(i: int, d: int, length: int, block: int | None) -> tuple[int, int] | None:
    """The positions [start, end) masked to probe target i at depth d: from i-d to the end (full-sequence models),
    or i-d's block when i-d starts a block of the trained grid (block models; later blocks are unseen). None when
    the probe does not exist (i-d would be BOS, or i-d is not a block start)."""
    start = i - d
    if start < 1 or d < 0 or (block is not None and (start % block or d >= block)):
        return None
    return start, (length if block is None else min(start + block, length))


@torch.no_grad()
def depth_profile(loaded, xi: torch.Tensor, target: torch.Tensor, positions: list[int], depths, tau: float) -> list:
    """Rows {depth, p_hit, argmax_hit}: mean student probability of x*_i, and share of argmax == x*_i, over
    `positions` i, with positions >= i-d masked (block models: the block starting at i-d masked, later blocks
    unseen)."""
    from paradistill.distill.gumbel import NoiseInjected
    from paradistill.sampling.base import Denoiser
    from paradistill.sampling.bd3lm import BD3Denoiser

    tok, model, kind = loaded.tokenizer, loaded.model, loaded.kind
    n, L = target.shape
    wrapped = NoiseInjected(model, (tau * xi).float(), tok.mask_id) if kind.startswith("gd-") else model
    block = int(loaded.method["block_size"]) if kind in ("bd3lm", "gd-bd3lm") else None
    # stateless here (a block model without its KV cache): one denoiser serves every probe
    den = Denoiser(wrapped, tok.mask_id) if block is None else \
        BD3Denoiser(wrapped, tok.mask_id, block, use_cache=False, batch_size=n, length=L)
    rows = []
    for d in depths:
        if block is not None and d >= block:
            continue
        p_hit, a_hit = [], []
        for i in positions:
            span = masked_span(i, d, L, block)
            if span is None:
                continue
            start, end = span
            x = target.clone()
            x[:, start:end] = tok.mask_id
            if block is None:
                lp = den(x, torch.full((n,), (end - start) / L))[:, i]
            else:
                lp = den.block_view(x, start, end)(x[:, start:end], torch.ones(n))[:, d]
            p_hit.append(lp.gather(-1, target[:, i, None]).squeeze(-1).exp())
            a_hit.append((lp.argmax(-1) == target[:, i]).float())
        p, a = torch.cat(p_hit), torch.cat(a_hit)
        rows.append({"depth": d, "p_hit": float(p.mean()), "p_hit_se": float(p.std() / len(p) ** 0.5),
                     "argmax_hit": float(a.mean()), "n": len(p)})
    return rows


class MaskRecorder:
    """A backbone that records which of its input positions are MASK at every call (what each pass of a sampler
    sees). Attribute access falls through to the wrapped model."""

    def __init__(self, model, mask_id: int):
        self._model, self._mask_id, self.calls = model, mask_id, []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, idx, *args, **kw):
        self.calls.append((idx == self._mask_id).cpu())
        return self._model(idx, *args, **kw)


def links_demanded(masks: list[torch.Tensor]) -> torch.Tensor:
    """masks: one [B, L] bool per forward pass (MASK in its input) -> [B, L] long: for every position, how many
    positions before it were masked in the last pass where it was masked (the pass whose prediction committed it):
    the links of the teacher's chain a student must run to reproduce x*_i there. -1 where never masked."""
    m = torch.stack(masks, 1)  # [B, C, L]
    B, C, L = m.shape
    last = torch.where(m, torch.arange(C)[None, :, None], -1).max(1).values  # [B, L]
    rows = torch.gather(m, 1, last.clamp(min=0)[:, :, None].expand(B, L, L))  # [B, i, j]: masks of i's last pass
    before = torch.ones(L, L, dtype=torch.bool).tril(-1)  # j < i
    return torch.where(last >= 0, (rows & before).sum(-1), -1)


@torch.no_grad()
def demanded_links(loaded, settings: list[tuple[str, int]], num: int, length: int, seed: int) -> list[dict]:
    """Run the sampler on `loaded` (an MDLM-family model; the unmasking order of these samplers does not depend on the
    model) and report, per setting, the links demanded per committed token (mean, and the share needing >= 4)."""
    from paradistill import api
    from paradistill.sampling.base import Denoiser

    rows = []
    for sampler, steps in settings:
        rec = MaskRecorder(loaded.model, loaded.tokenizer.mask_id)
        api.generate(loaded, num, length=length, sampler=sampler, steps=steps, batch_size=num, seed=seed,
                     progress=False, denoiser=Denoiser(rec, loaded.tokenizer.mask_id))
        d = links_demanded(rec.calls)[:, 1:].float()
        rows.append({"sampler": sampler, "steps": steps if sampler == "ancestral" else "L",
                     "mean_links": float(d.mean()), "share_ge4": float((d >= 4).float().mean()),
                     "passes": len(rec.calls)})
    return rows


def render(coupling: list[dict], profiles: dict, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, rows in profiles.items():
        ax1.errorbar([r["depth"] for r in rows], [r["p_hit"] for r in rows], yerr=[r["p_hit_se"] for r in rows],
                     marker="o", capsize=2, label=label)
    ax1.axhline(1.0, color="k", ls=":", lw=1, label="a student that has learned the map")
    ax1.set_xlabel("masked positions before the target (d)")
    ax1.set_ylabel("student probability of the teacher's token x*_i")
    ax1.set_title("student: links of the chain it can run")
    ax1.set_ylim(0, 1)
    ax1.legend(fontsize=7)
    ax2.plot([r["depth"] for r in coupling], [r["agree"] for r in coupling], marker=".", label="same token at i")
    ax2.plot([r["depth"] for r in coupling], [r["same_start_state"] for r in coupling], ls="--",
             label="same start state (by chance)")
    ax2.set_xlabel("shared noise positions before the target (d)")
    ax2.set_ylabel("share of runs")
    ax2.set_title("teacher: coupling of two texts under shared noise")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=RUN",
                    help="mdlm / bd3lm runs (chance level) or their gd-* students")
    ap.add_argument("--num", type=positive_int, default=128, help="noise draws (teacher samples)")
    ap.add_argument("--length", type=positive_int, default=64)
    ap.add_argument("--depths", type=int, nargs="*", default=list(DEPTHS), help="masked positions before the target")
    ap.add_argument("--noise-temperature", type=float, default=1.0, help="scale of the noise the GD students see")
    ap.add_argument("--coupling-num", type=positive_int, default=4096, help="runs for the teacher coupling curve")
    ap.add_argument("--coupling-depth", type=positive_int, default=40, help="largest d of the coupling curve")
    ap.add_argument("--demand-steps", type=positive_int, nargs="*", default=[4, 8, 16, 32],
                    help="ancestral step counts (and first-hitting) at which to count the links an MDLM sampler "
                         "demands per token, run on the first MDLM-family --model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows here (and a .md table beside it)")
    ap.add_argument("--png", default=None, help="plot both curves here")
    ap.add_argument("--render-only", action="store_true",
                    help="redraw --png from the rows of an earlier --json of this script, measuring nothing")
    args = ap.parse_args()
    if args.render_only:
        import json
        from pathlib import Path

        if not (args.json and args.png and Path(args.json).is_file()):
            raise SystemExit("--render-only needs --png and --json naming an earlier output of this script")
        saved = json.loads(Path(args.json).read_text())["rows"]
        profiles = {}
        for r in saved:
            if "model" in r and "depth" in r:
                profiles.setdefault(r["model"], []).append(r)
        render(next(r["coupling"] for r in saved if "coupling" in r), profiles, args.png)
        return
    from paradistill.distill.teachers import GrammarTeacher

    torch.set_num_threads(1)
    models = [(label, path, load_model(label, path)) for label, path in model_args(args.model)]  # fail before work

    teacher = GrammarTeacher()
    coupling = coupling_curve(teacher.grammar, args.coupling_num, args.length, args.length - 1,
                              min(args.coupling_depth, args.length - 2), args.seed)
    for r in coupling:
        print(f"coupling d={r['depth']:2d} agree {r['agree']:.3f} (same start state {r['same_start_state']:.3f})")
    profiles, rows, demand = {}, [], []
    for label, path, loaded in models:
        if not demand and loaded.kind in ("mdlm", "gd-mdlm") and args.demand_steps:
            settings = [("ancestral", t) for t in args.demand_steps] + [("first-hitting", 1)]
            demand = demanded_links(loaded, settings, args.num, args.length, args.seed)
            for r in demand:
                print(f"demand {r['sampler']:13s} T={r['steps']!s:3s} links per token {r['mean_links']:.2f} "
                      f"(>= 4: {100 * r['share_ge4']:.0f}%)", flush=True)
        if loaded.kind not in STUDENT_KINDS:
            raise SystemExit(f"{label}={path}: a '{loaded.kind}' checkpoint; expected one of {STUDENT_KINDS}")
        xi, target = prior_noise_and_sample(teacher, args.num, args.length, loaded.model.cfg.vocab_size,
                                            loaded.tokenizer.bos_id, args.seed)
        # targets: positions 16..L-1 (block models: those at offset d in their block)
        prof = depth_profile(loaded, xi, target, list(range(16, args.length)), args.depths, args.noise_temperature)
        profiles[label] = prof
        for r in prof:
            rows.append({"model": label, "checkpoint": str(path), "kind": loaded.kind, **r})
            print(f"{label:22s} d={r['depth']:2d} p(x*) {r['p_hit']:.3f} +- {r['p_hit_se']:.3f} "
                  f"argmax {r['argmax_hit']:.3f}", flush=True)
    depths = sorted({r["depth"] for r in rows})
    lines = ["Student: mean probability of the teacher's token x*_i with d masked positions before it (argmax share in "
             "brackets)", "", "| model | " + " | ".join(f"d={d}" for d in depths) + " |",
             "|---|" + "---:|" * len(depths)]
    for label, prof in profiles.items():
        by = {r["depth"]: r for r in prof}
        lines.append(f"| {label} | " + " | ".join(
            f"{by[d]['p_hit']:.3f} ({100 * by[d]['argmax_hit']:.0f}%)" if d in by else "" for d in depths) + " |")
    shown = [r for r in coupling if r["depth"] in (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40)]
    lines += ["", "Teacher: share of generator runs agreeing at a position when they share the noise of the last d+1 "
              "positions but start from two different samples' states", "",
              "| d | " + " | ".join(str(r["depth"]) for r in shown) + " |", "|---|" + "---:|" * len(shown),
              "| same token | " + " | ".join(f"{r['agree']:.3f}" for r in shown) + " |",
              "| same start state | " + " | ".join(f"{r['same_start_state']:.3f}" for r in shown) + " |"]
    if demand:
        lines += ["", "MDLM samplers: links of the chain demanded per committed token (masked positions before it in the "
                  "pass that commits it; positions 1..L-1)", "", "| sampler | T | passes | mean links | share >= 4 |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {r['sampler']} | {r['steps']} | {r['passes']} | {r['mean_links']:.2f} | "
                  f"{100 * r['share_ge4']:.0f}% |" for r in demand]
    if args.png:
        render(coupling, profiles, args.png)
    save(args, rows + [{"coupling": coupling}] + ([{"demand": demand}] if demand else []), "\n".join(lines))


if __name__ == "__main__":
    main()
