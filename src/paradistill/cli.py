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
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        register(sub, name)
    _add_threads_everywhere(parser)
    return parser


THREADS_HELP = ("torch CPU threads, >= 1 (also accepted after the command; default: the cores this process can use "
                "without oversubscribing: CPU affinity, cgroup quota and current load)")


def _add_threads_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept --threads after any (sub)command too; a value given there wins over one before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if not any("--threads" in a.option_strings for a in child._actions):
                    child.add_argument("--threads", type=int, default=argparse.SUPPRESS, help=THREADS_HELP)
                _add_threads_everywhere(child)


# What Ctrl-C keeps, per command (only commands with --resume are told to use it)
INTERRUPTED = {
    "train": "finished checkpoints are kept; re-run with --resume to continue",
    "distill": "finished checkpoints are kept; re-run with --resume to continue",
    "quickstart": "finished stages are kept; re-run the same command to continue",
    "sample": "finished batches are kept (see above); re-run to sample again",
    "eval": "no result was written",
    "data": "nothing was written (prepared data is written atomically); re-run to prepare it",
}


def _set_threads(threads: int | None) -> None:
    import torch

    from .cpus import default_threads
    from .errors import UserError

    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: must be >= 1 (omit it to use the cores this process can get)")
    torch.set_num_threads(threads if threads is not None else default_threads())


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
    from .console import plain_progress
    from .io import user_error_from_os

    try:
        with plain_progress():
            _set_threads(args.threads)
            result = args.run(args)
    except (UserError, TrainingDiverged) as e:
        print(f"paradistill: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, no permission, a file where a folder belongs: one line naming the path
        err = user_error_from_os(e)
        if err is None:
            raise
        print(f"paradistill: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = INTERRUPTED.get(args.command, "nothing was written")
        print(f"paradistill: interrupted; {hint}", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())


def lm_eval_main(argv: list[str] | None = None) -> int:
    """`paradistill-lm-eval`: lm-eval-harness's own command line with the `paradistill` model type registered,
    e.g. `paradistill-lm-eval --model paradistill --model_args pretrained=RUN,mc_draws=32 --tasks lambada_openai`
    (lm-eval 0.4.13 loads no model plugins itself, so a bare `lm_eval --model paradistill` cannot see it)."""
    from .errors import UserError

    try:
        from .eval.harness import register
    except ImportError:
        print("paradistill-lm-eval: error: lm-eval-harness is not installed: pip install 'paradistill[harness]'",
              file=sys.stderr)
        return 2
    from lm_eval.__main__ import cli_evaluate

    import torch

    register()
    args = list(sys.argv[1:] if argv is None else argv)
    if "--device" not in args and not torch.cuda.is_available():
        args += ["--device", "cpu"]  # lm-eval's default is cuda
    sys.argv = ["lm_eval", *args]
    try:
        cli_evaluate()
    except UserError as e:
        print(f"paradistill-lm-eval: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # lm-eval's own error for an unknown task name, otherwise a traceback
        if not str(e).startswith("Tasks not found"):
            raise
        print(f"paradistill-lm-eval: error: lm-eval knows no task {str(e).partition(':')[2].strip()}: list them "
              "with `lm_eval ls tasks`, or pass --include_path DIR holding its YAML", file=sys.stderr)
        return 2
    return 0
