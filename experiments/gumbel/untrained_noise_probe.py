"""Is the posterior Gumbel noise informative for an MDLM that never saw it? Masked NLL with `beta * xi` added to
its logits (no training), by mask rate t, on validation rows of the built-in corpus (posterior noise under the
corpus's exact generator).

    python -m experiments.gumbel.untrained_noise_probe runs/base/mdlm --json results/gumbel_distillation/skip_probe.json
"""

from __future__ import annotations

import argparse

import torch

from experiments.common.models import load_run
from experiments.common.output import save
from experiments.common.cli import positive_int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="an MDLM run directory")
    ap.add_argument("--rows", type=positive_int, default=256, help="validation rows")
    ap.add_argument("--betas", type=float, nargs="*", default=[0, 0.25, 0.5, 1, 2])
    ap.add_argument("--times", type=float, nargs="*", default=[0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    ap.add_argument("--json", default=None, help="write the rows here (and a .md table beside it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill import api
    from paradistill.diffusion.mdlm import masked_token_nll, q_sample
    from paradistill.distill.gumbel_noise import draw_seeds, extract_posterior
    from paradistill.distill.teachers import GrammarTeacher
    from paradistill.recipes import load_recipe

    loaded = load_run(args.run, "RUN")
    model, mask = loaded.model.eval(), loaded.tokenizer.mask_id
    val = torch.tensor(api.prepare(load_recipe("tiny"), progress=False).val[: args.rows]).long()
    teacher, g = GrammarTeacher(), torch.Generator().manual_seed(0)
    rows = []
    for t in args.times:
        total, count = {b: 0.0 for b in args.betas}, 0
        for s in range(0, len(val), 64):
            x0 = val[s:s + 64]
            xi = extract_posterior(teacher.log_prob_slices(x0), x0, draw_seeds(len(x0), g))
            xt = q_sample(x0, torch.full((len(x0),), 1 - t), mask, g)
            with torch.no_grad():
                logits = model(xt).logits
            masked = xt == mask
            for b in args.betas:
                total[b] += float(masked_token_nll(logits + b * xi, x0, mask)[masked].sum())
            count += int(masked.sum())
        rows.append({"t": t, **{f"beta={b}": total[b] / count for b in args.betas}})
        print(f"t={t}: " + "  ".join(f"beta {b}: {total[b] / count:.3f}" for b in args.betas), flush=True)
    head = "| t | " + " | ".join(f"beta = {b}" for b in args.betas) + " |"
    lines = ["Masked NLL (nats/token) of the MDLM with beta * xi added to its logits\n", head,
             "|" + "---:|" * (len(args.betas) + 1)]
    lines += [f"| {r['t']} | " + " | ".join(f"{r[f'beta={b}']:.3f}" for b in args.betas) + " |" for r in rows]
    save(args, rows, "\n".join(lines))

if __name__ == "__main__":
    main()
