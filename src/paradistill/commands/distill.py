"""`paradistill distill {gumbel,sdtt,adjust}`: each method's options live beside it in
commands/distill_<method>.py (`add_parser(subparsers)`)."""

from __future__ import annotations

from . import register

METHODS = ("gumbel", "sdtt", "adjust")


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="distil a model: Gumbel Distillation, SDTT or an ADJUST sampler",
                       description="Distillation methods. Each takes a teacher/base checkpoint and writes a new run "
                                   "directory that `paradistill sample` and `paradistill eval` accept.")
    msub = p.add_subparsers(dest="method", metavar="METHOD")
    for name in METHODS:
        register(msub, f"distill_{name}")
    p.set_defaults(run=lambda args: (p.print_help(), 1)[1])
