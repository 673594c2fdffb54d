"""Did each SDTT round lower its own objective? Validation divergence of the round's student at initialisation
(= its teacher) and after training, on the same validation batches and noise (train/loop.evaluate).

    python -m experiments.sdtt.round_objective --run runs/sdtt/mdlm --teacher runs/base/mdlm --json results/sdtt/val_kl_mdlm.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from experiments.common.output import write_text
from experiments.sdtt.runs import sdtt_config, sdtt_summary, teacher_checkpoint
from experiments.common.cli import positive_int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--recipe", default="tiny")
    ap.add_argument("--eval-batches", type=positive_int, default=8)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill import api
    from paradistill.methods.sdtt import build_round
    from paradistill.train.config import TrainConfig
    from paradistill.train.loop import evaluate

    summary = sdtt_summary(args.run)
    cfg = sdtt_config(summary)
    data = api.prepare(api.load_recipe(args.recipe), progress=False)
    tcfg = TrainConfig(batch_size=32, eval_batches=args.eval_batches)
    teacher, rows = teacher_checkpoint(args.teacher), []
    for rnd in summary["rounds"]:
        init, obj, _, _ = build_round(teacher, cfg, rnd["round"], rnd["teacher_steps"])
        student = api.load(rnd["checkpoint"]).model
        row = {"round": rnd["round"], "steps": f"{rnd['teacher_steps']}->{rnd['student_steps']}",
               "val_div_init": evaluate(obj, init, data.val, tcfg, "cpu"),
               "val_div_trained": evaluate(obj, student, data.val, tcfg, "cpu")}
        print(row, flush=True)
        rows.append(row)
        teacher = Path(rnd["checkpoint"])
    write_text(args.json, json.dumps({"run": args.run, "divergence": cfg.divergence, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
