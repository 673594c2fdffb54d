"""How much can an SDTT round lower its own objective at all? An oracle bound, per round.

The SDTT target at a masked position depends on the teacher's random first step (which tokens it unmasked), which
the student does not see. For a fixed x_t the best one-pass student is therefore, per position, the distribution
minimising the expected divergence over first-step draws y:
  reverse KL: g = softmax(E_y log p_y)  (normalised geometric mean; the minimum is -log Z)
  forward KL: m = E_y p_y               (arithmetic mean)
For a teacher that is consistent with itself, m equals its own one-step prediction p_1 (marginalising the first
step), so under forward KL the student starts at the optimum, and under reverse KL it can only gain the gap
between p_1 and g. This script measures, on validation batches, the objective of the student at initialisation
(= the teacher) and of the oracle g (or m) fitted on K draws: scored on K other draws it is a feasible per-position
student, so init - oracle there is a lower bound on the headroom; scored on the draws it was fitted on it is
biased the other way (an upper bound). Both differences are paired (init scored on the same draws).

    python -m experiments.sdtt.headroom --run runs/sdtt/mdlm --teacher runs/base/mdlm --json results/sdtt/headroom_mdlm.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from experiments.common.output import write_text
from experiments.sdtt.runs import sdtt_config, sdtt_summary, teacher_checkpoint
from experiments.common.cli import positive_int


def divergence_mean(student_lp, targets, kind, counted):
    """student_lp [B, L, V]; targets [K, B, L, V] -> mean over draws and counted positions."""
    from paradistill.distill.sdtt import divergence

    terms = torch.stack([divergence(student_lp, t, kind) for t in targets])  # [K, B, L]
    return float(terms[:, counted].mean())


def oracle(targets, kind):
    """The best per-position student for targets [K, B, L, V] (log-probs)."""
    if kind == "reverse_kl":
        return torch.log_softmax(targets.mean(0), dim=-1)
    if kind == "forward_kl":
        return torch.logsumexp(targets, dim=0) - torch.log(torch.tensor(float(targets.shape[0])))
    raise SystemExit(f"divergence {kind}: the oracle is implemented for reverse_kl and forward_kl")


@torch.no_grad()
def round_headroom(obj, batches, draws: int, kind: str, seed: int = 0) -> dict:
    from paradistill.distill.sdtt import two_step_target

    gen = torch.Generator().manual_seed(seed)
    sums = {"init": 0.0, "oracle_heldout": 0.0, "init_insample": 0.0, "oracle_insample": 0.0}
    for batch in batches:
        keep, t, xt, cond = obj.noised(batch, gen)
        masked = (xt == obj.mask_id) & ~keep
        lp1 = obj.forward(obj.teacher, xt, t, batch, cond)

        def second(x_mid):  # the teacher's pass after the first step, on this batch
            return obj.forward(obj.teacher, x_mid, t - obj.dt, batch, cond)

        targets = [two_step_target(lp1, second, xt, masked, t, t - obj.dt, obj.schedule, gen)[0]
                   for _ in range(2 * draws)]
        fit, held = torch.stack(targets[:draws]), torch.stack(targets[draws:])
        best = oracle(fit, kind)
        sums["init"] += divergence_mean(lp1, held, kind, masked)
        sums["oracle_heldout"] += divergence_mean(best, held, kind, masked)
        sums["init_insample"] += divergence_mean(lp1, fit, kind, masked)
        sums["oracle_insample"] += divergence_mean(best, fit, kind, masked)
    out = {k: v / len(batches) for k, v in sums.items()}
    out["headroom_lower"] = out["init"] - out["oracle_heldout"]
    out["headroom_upper"] = out["init_insample"] - out["oracle_insample"]
    out["headroom_lower_frac"] = out["headroom_lower"] / out["init"]
    out["headroom_upper_frac"] = out["headroom_upper"] / out["init_insample"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="an SDTT run folder (its sdtt.json lists the rounds)")
    ap.add_argument("--teacher", required=True, help="the round-1 teacher checkpoint")
    ap.add_argument("--recipe", default="tiny", help="recipe whose validation data is used")
    ap.add_argument("--batches", type=positive_int, default=4, help="validation batches of 32 rows")
    ap.add_argument("--draws", type=positive_int, default=16, help="first-step draws to fit the oracle (as many to score it)")
    ap.add_argument("--divergence", default=None, help="default: the run's")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill import api
    from paradistill.methods.sdtt import build_round

    summary = sdtt_summary(args.run)
    cfg = sdtt_config(summary)
    kind = args.divergence or cfg.divergence
    data = api.prepare(api.load_recipe(args.recipe), progress=False)
    val = torch.as_tensor(data.val[: 32 * args.batches].astype("int64"))
    batches = list(val.split(32))
    teacher, rows = teacher_checkpoint(args.teacher), []
    for rnd in summary["rounds"]:
        _, obj, _, _ = build_round(teacher, cfg, rnd["round"], rnd["teacher_steps"])
        row = {"round": rnd["round"], "steps": f"{rnd['teacher_steps']}->{rnd['student_steps']}",
               "divergence": kind, **round_headroom(obj, batches, args.draws, kind)}
        print({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        rows.append(row)
        teacher = Path(rnd["checkpoint"])
    write_text(args.json, json.dumps({"run": args.run, "draws": args.draws, "batches": args.batches,
                                           "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
