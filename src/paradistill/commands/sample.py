"""`paradistill sample CKPT`."""

from __future__ import annotations

from .common import add_sampling_options, sampling_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="sample from a checkpoint and write JSONL",
                       description="Sample from any checkpoint (AR, MDLM, BD3-LM, distilled students). Writes one "
                                   "JSON line per sample (text, tokens, nfe, seconds) and prints a few samples.")
    p.add_argument("checkpoint", help="run / checkpoint directory, Hugging Face model directory or weights file, or "
                                      "hf:ORG/NAME[@REVISION] (e.g. hf:kuleshov-group/mdlm-owt; hub cache first)")
    add_sampling_options(p)
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

    from ..io import guard_output
    from ..loading.refs import output_dir

    out = Path(args.out) if args.out else output_dir(args.checkpoint) / "samples.jsonl"
    guard_output(out, args.overwrite)  # before any work: never replace earlier samples without --overwrite
    loaded = api.load(args.checkpoint)
    kw = sampling_kwargs(args)
    if args.adjust:
        kw["adjust_checkpoint"] = args.adjust
    if args.devices is not None:  # sharded over devices (paradistill/sharded.py); rank 0 writes the file
        from ..sharded import generate_sharded
        from ..train.distributed import make_fabric
        from ..train.loop import TrainConfig

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
