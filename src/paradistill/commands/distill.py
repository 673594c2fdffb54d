"""`paradistill distill {gumbel,sdtt,adjust}`: each method's options live beside it in
commands/distill_<method>.py (`add_parser(subparsers)`)."""

from __future__ import annotations

import importlib

METHODS = ("gumbel", "sdtt", "adjust")


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="distil a model: Gumbel Distillation, SDTT or an ADJUST sampler",
                       description="Distillation methods. Each takes a teacher/base checkpoint and writes a new run "
                                   "directory that `paradistill sample` and `paradistill eval` accept.")
    msub = p.add_subparsers(dest="method", metavar="METHOD")
    for name in METHODS:
        try:
            module = importlib.import_module(f"paradistill.commands.distill_{name}")
        except ModuleNotFoundError as e:
            if e.name == f"paradistill.commands.distill_{name}":
                continue
            raise
        module.add_parser(msub)
    p.set_defaults(run=lambda args: (p.print_help(), 1)[1])
