"""Did each SDTT round lower its own objective? Validation divergence of the round's student at initialisation
(= its teacher) and after training, on the same validation batches and noise (train/loop.evaluate).

    python scripts/sdtt_val_kl.py --run runs/sdtt/mdlm --teacher runs/base/mdlm --json results/sdtt/val_kl_mdlm.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--recipe", default="tiny")
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill import api
    from paradistill.config import from_dict
    from paradistill.distill.sdtt import SDTTConfig, build_round
    from paradistill.checkpoint import resolve_checkpoint
    from paradistill.loader import load_checkpoint
    from paradistill.train.loop import TrainConfig, evaluate

    summary = json.loads((Path(args.run) / "sdtt.json").read_text())
    cfg = from_dict(SDTTConfig, summary["config"])
    data = api.prepare(api.load_recipe(args.recipe), progress=False)
    tcfg = TrainConfig(batch_size=32, eval_batches=args.eval_batches)
    teacher, rows = resolve_checkpoint(args.teacher), []
    for rnd in summary["rounds"]:
        init, obj, _, _ = build_round(teacher, cfg, rnd["round"], rnd["teacher_steps"])
        student = load_checkpoint(rnd["checkpoint"]).model
        row = {"round": rnd["round"], "steps": f"{rnd['teacher_steps']}->{rnd['student_steps']}",
               "val_div_init": evaluate(obj, init, data.val, tcfg, "cpu"),
               "val_div_trained": evaluate(obj, student, data.val, tcfg, "cpu")}
        print(row, flush=True)
        rows.append(row)
        teacher = Path(rnd["checkpoint"])
    Path(args.json).write_text(json.dumps({"run": args.run, "divergence": cfg.divergence, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
