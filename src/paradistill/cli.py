"""The `paradistill` command. Each command group lives in paradistill/commands/<name>.py with
`add_parser(subparsers)` and `run(args)`; user errors print one clear line and exit with status 2."""

from __future__ import annotations

import argparse
import sys

from .commands import register

COMMANDS = ("quickstart", "data", "train", "sample", "distill", "eval", "report", "bench", "export", "recipes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paradistill",
        description="Fast parallel text generation with masked diffusion LMs, made good by distillation "
                    "(Gumbel Distillation, SDTT, ADJUST).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        register(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import TrainingDiverged, UserError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides may follow options; anything else is an error
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = args.run(args)
    except (UserError, TrainingDiverged) as e:
        print(f"paradistill: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paradistill: interrupted; finished checkpoints and stages are kept, re-run with --resume",
              file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
