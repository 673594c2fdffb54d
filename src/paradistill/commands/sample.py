"""`paradistill sample CKPT`."""

from __future__ import annotations

from .common import add_sampling_options, sampling_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="sample from a checkpoint and write JSONL",
                       description="Sample from any checkpoint (AR, MDLM, BD3-LM, distilled students). Writes one "
                                   "JSON line per sample (text, tokens, nfe, seconds) and prints a few samples.")
    p.add_argument("checkpoint", help="run / checkpoint directory, Hugging Face model directory or weights file, "
                                      "a published LLaDA / Dream directory, or hf:ORG/NAME[@REVISION] (e.g. "
                                      "hf:kuleshov-group/mdlm-owt; hub cache first)")
    add_sampling_options(p)
    p.add_argument("--prompts", default=None,
                   help="JSONL file, one prompt a line: {\"prompt\": TEXT} or {\"chat\": TEXT}; --num samples each, "
                        "written in order with their prompt. All prompts share batches: with --gen-length they are "
                        "left-padded to the longest, the pads hidden from the model (MDLM / LLaDA / Dream)")
    p.add_argument("--dry-run", action="store_true",
                   help="LLaDA / Dream (a directory, or a release name such as hf:GSAI-ML/LLaDA-8B-Instruct): print "
                        "the memory and time per generated token on --plan-device, load nothing")
    p.add_argument("--plan-device", default="h100", help="--dry-run: device of the estimate (h100, h200, a100)")
    p.add_argument("--plan-prompt-tokens", type=int, default=64, help="--dry-run: prompt length in tokens")
    p.add_argument("--device", default="cpu", help="device to load the model on (cpu, cuda, cuda:1)")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                   help="published LLaDA / Dream weights: precision (auto: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--out", default=None, help="samples file (default: <checkpoint>/samples.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace the samples file if it exists")
    p.add_argument("--show", type=int, default=3, help="samples to print")
    p.add_argument("--adjust", default=None, help="ADJUST sampler checkpoint to put on this base model")
    p.add_argument("--devices", type=int, default=None,
                   help="split the batches over N processes (GPUs, or CPU cores); batches are then seeded one by one "
                        "so the samples do not depend on N")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu", "cuda"], default="auto",
                   help="with --devices: hardware to run on")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from .. import api

    if args.dry_run:
        from ..methods.dlm_plans import format_plan, plan_sampling

        plan = plan_sampling(args.checkpoint, args.plan_prompt_tokens, args.gen_length or 128, args.steps,
                             args.batch_size, "fp32" if args.dtype == "fp32" else "bf16", args.plan_device)
        print(f"plan: sampling {plan['base']}\n{format_plan(plan)}")
        return 0
    from ..io import guard_output
    from ..loading.refs import output_dir

    out = Path(args.out) if args.out else output_dir(args.checkpoint) / "samples.jsonl"
    guard_output(out, args.overwrite)  # before any work: never replace earlier samples without --overwrite
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(args.dtype)
    loaded = api.load(args.checkpoint, device=args.device, dtype=dtype)
    kw = sampling_kwargs(args)
    if args.prompts:
        return _run_prompts(args, loaded, kw, out)
    if args.adjust:
        kw["adjust_checkpoint"] = args.adjust
    if args.devices is not None:  # sharded over devices (paradistill/sharded.py); rank 0 writes the file
        from ..sharded import generate_sharded
        from ..train.distributed import make_fabric
        from ..train.config import TrainConfig

        fabric = make_fabric(TrainConfig(devices=args.devices, accelerator=args.accelerator, precision="32-true",
                                         strategy="ddp" if args.devices > 1 else "auto"))
        loaded.model.to(fabric.device)
        result = generate_sharded(loaded, args.num, fabric, length=args.length, **kw)
        if not fabric.is_global_zero:
            return 0
    else:
        done = []  # finished batches, kept when the run is interrupted
        try:
            result = api.generate(loaded, args.num, length=args.length,
                                  on_batch=lambda toks, nfe, sec: done.append((toks, nfe, sec)), **kw)
        except KeyboardInterrupt:
            _keep_finished(out, loaded, done, args)
            raise
    api.write_samples(out, loaded, result)
    per = result.per_sample()
    mean_nfe = sum(n for n, _ in per) / len(per)
    mean_sec = sum(s for _, s in per) / len(per)
    for row in result.tokens[: args.show].tolist():
        print("-", loaded.tokenizer.decode(row))
    print(f"{len(per)} samples -> {out} (NFE {mean_nfe:.1f} per batch, {mean_sec * 1000:.1f} ms per sample)")
    return 0


def _keep_finished(out, loaded, done, args) -> None:
    """Write the batches finished before Ctrl-C (atomically) so they are not lost."""
    import sys

    import torch

    from .. import api
    from ..generation import GenerationResult

    if not done:
        print("paradistill: no batch had finished; nothing written", file=sys.stderr)
        return
    tokens = torch.cat([t for t, _, _ in done])
    info = {"sampler": args.sampler if loaded.kind != "ar" else "ar", "steps": args.steps,
            "length": int(tokens.shape[1]), "interrupted": True}
    result = GenerationResult(tokens, [n for _, n, _ in done], [s for _, _, s in done],
                              [len(t) for t, _, _ in done], info)
    api.write_samples(out, loaded, result)
    print(f"paradistill: kept the {len(tokens)} samples of {len(done)} finished batches in {out} "
          f"(of --num {args.num})", file=sys.stderr)


def read_prompt_file(path: str) -> list[dict]:
    """Rows of a --prompts JSONL file, each {"prompt": TEXT} or {"chat": TEXT}."""
    import json

    from ..errors import UserError

    rows = []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise UserError(f"--prompts '{path}' cannot be read ({e}): pass a JSONL file") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not ({"prompt", "chat"} & set(row)):
            raise UserError(f"--prompts '{path}' line {i} is not {{\"prompt\": TEXT}} or {{\"chat\": TEXT}}: fix it")
        rows.append({k: row[k] for k in ("prompt", "chat") if k in row})
    if not rows:
        raise UserError(f"--prompts '{path}' holds no prompt: one JSON object a line")
    return rows


def _run_prompts(args, loaded, kw, out) -> int:
    """Every prompt of the file sampled --num times, all in shared batches (with --gen-length, left-padded with
    the pads hidden from the model; generation.generate `prompts`)."""
    import json
    from pathlib import Path

    from .. import api
    from ..io import atomic_write_text

    rows = read_prompt_file(args.prompts)
    if args.adjust:
        kw["adjust_checkpoint"] = args.adjust
    result = api.generate(loaded, args.num, length=args.length, prompts=rows, **kw)
    lines = []
    for i, (tokens, (nfe, sec), pad) in enumerate(zip(result.tokens.tolist(), result.per_sample(), result.left_pad)):
        row, tokens = rows[i // args.num], tokens[pad:]
        lines.append(json.dumps({**row, "text": loaded.tokenizer.decode(tokens), "tokens": tokens, "nfe": nfe,
                                 "seconds": sec, "kind": loaded.kind, "checkpoint": str(loaded.path),
                                 **result.info}))
        if i % args.num == 0:
            print("-", row, "->", loaded.tokenizer.decode(tokens))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    print(f"{len(lines)} samples -> {out}")
    return 0
