"""`paradistill quickstart`: the main job."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "quickstart", help="every method end to end on one corpus, one report (the README's first command)",
        description="Prepares data; starts from the shipped AR / MDLM / BD3-LM bases on the builtin corpus (or trains them: "
                    "--from-scratch, and on any other corpus); Gumbel-distils an MDLM student from "
                    "the teacher; runs SDTT rounds on the MDLM; trains an ADJUST sampler; samples every model at "
                    "several step counts; evaluates (exact Gen PPL on the built-in corpus, judge Gen PPL on other "
                    "text, entropy, MAUVE, NFE, latency); writes OUT/report.md and OUT/pareto.png. Offline. Re-running "
                    "skips finished stages; Ctrl-C and re-run resumes.")
    p.add_argument("--corpus", default="builtin",
                   help="builtin (default: the story corpus with an exact generator), a text file, a folder, a glob, "
                        "or hf:NAME[:CONFIG]")
    p.add_argument("--tokenizer", default=None,
                   help="char | word | gpt2:DIR | hf:NAME_OR_DIR (default: builtin for the builtin corpus, char otherwise)")
    p.add_argument("--budget-minutes", type=float, default=16.0,
                   help="wall-clock budget; training steps are scaled to it from a 10 s speed measurement (default 16)")
    p.add_argument("--out", default="quickstart", help="output folder (default: ./quickstart)")
    p.add_argument("--recipe", default="tiny", help="model/optimizer recipe (default: tiny)")
    p.add_argument("--num-samples", type=int, default=64, help="samples per evaluated setting (default 64)")
    p.add_argument("--check-samples", type=int, default=256,
                   help="samples for the rows the report checks against its 2x-the-AR target (AR, MDLM T=64, MDLM "
                        "T=L), so that the ratio's 95%% interval can settle it (default 256; never fewer than "
                        "--num-samples)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--workers", type=int, default=0, help="stages run side by side (default: one per core, max 2)")
    p.add_argument("--from-scratch", action="store_true",
                   help="train the AR, MDLM and BD3-LM here (the full pipeline) instead of starting from the shipped "
                        "bases builtin:ar, builtin:mdlm, builtin:bd3lm-b4 (the default on the builtin corpus)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="recipe overrides for every model, e.g. model.dim=128 data.seq_len=128")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..quickstart.run import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(corpus=args.corpus, tokenizer=args.tokenizer, budget_minutes=args.budget_minutes,
                           out=args.out, recipe=args.recipe, seed=args.seed, num_samples=args.num_samples,
                           check_samples=args.check_samples,
                           workers=args.workers, overrides=list(args.overrides),
                           from_scratch=args.from_scratch)
    run_quickstart(cfg)
    return 0
