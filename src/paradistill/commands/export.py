"""`paradistill export`: Hugging Face interop.

    paradistill export CKPT --to DIR                       paradistill checkpoint -> from_pretrained directory
    paradistill export DIR --from hf --to CKPT             an exported directory -> paradistill checkpoint
    paradistill export WEIGHTS --from mdlm --to CKPT --tokenizer gpt2:DIR
                                                           MDLM DiT weights (e.g. mdlm-owt) -> paradistill 'mdlm'
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export to / import from Hugging Face directories and MDLM checkpoints",
                       description="Convert between paradistill checkpoints and the Hugging Face ecosystem. "
                                   "Exported directories load with ParadistillModel.from_pretrained (or AutoModel "
                                   "after paradistill.interop.hf_export.register()) and give identical logits; "
                                   "importing them back is bit-exact.")
    p.add_argument("source", help="any checkpoint reference (default: run directory, HF directory, hf:ORG/NAME[@REV]), "
                                  "exported HF directory (--from hf), or MDLM "
                                  "weights: directory, .safetensors or Lightning .ckpt (--from mdlm)")
    p.add_argument("--to", required=True, help="output directory")
    p.add_argument("--from", dest="source_format", choices=["paradistill", "hf", "mdlm"], default="paradistill",
                   help="what SOURCE is (default: a paradistill checkpoint, exported to HF)")
    p.add_argument("--format", choices=["hf", "llada", "dream"], default="hf",
                   help="paradistill checkpoints: hf (ParadistillModel directory, default), or llada / dream: a "
                        "checkpoint trained with model.arch=llada|dream written in that release's published layout "
                        "(config.json, safetensors shards + index, tokenizer), loadable by path like the release")
    p.add_argument("--shard-mb", type=int, default=2048, help="--format llada|dream: largest safetensors shard (MiB)")
    p.add_argument("--raw-weights", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--tokenizer", default=None,
                   help="--from mdlm: tokenizer spec of the model (mdlm-owt: gpt2:DIR or hf:gpt2)")
    p.add_argument("--n-heads", type=int, default=None, help="--from mdlm: attention heads (default: config.json, 12)")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from ..errors import UserError
    from ..io import same_file, writable_location

    to = Path(args.to)
    if same_file(to, args.source):
        raise UserError(f"--to '{args.to}' is the source: choose a new directory")
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise UserError(f"--to '{args.to}' exists and is not an empty folder: choose a new directory")
    writable_location(to, "--to")
    if args.source_format == "paradistill" and args.format != "hf":
        from ..loader import load_checkpoint
        from ..models.official import save_official

        loaded = load_checkpoint(args.source, use_ema=not args.raw_weights, expect_kinds=(args.format,))
        out = save_official(loaded.model, loaded.tokenizer, args.to, shard_bytes=args.shard_mb * 1024 ** 2,
                            record=loaded.method)
        print(f"exported {args.source} -> {out} in the {args.format} layout (load: paradistill sample {out})")
    elif args.source_format == "paradistill":
        from ..interop.hf_export import export_hf

        out = export_hf(args.source, args.to, use_ema=not args.raw_weights)
        print(f"exported {args.source} -> {out} (load without paradistill: transformers AutoModelForMaskedLM / "
              f"AutoModelForCausalLM .from_pretrained('{out}', trust_remote_code=True))")
    elif args.source_format == "hf":
        from ..interop.hf_export import import_hf

        out = import_hf(args.source, args.to)
        print(f"imported {args.source} -> paradistill checkpoint {out}")
    else:
        if not args.tokenizer:
            raise UserError("--from mdlm needs --tokenizer (mdlm-owt: the GPT-2 tokenizer, gpt2:DIR or hf:gpt2)")
        from ..data.tokenizers import build_tokenizer
        from ..interop.mdlm_import import import_mdlm

        out = import_mdlm(args.source, args.to, build_tokenizer(args.tokenizer), n_heads=args.n_heads)
        print(f"converted MDLM weights {args.source} -> paradistill 'mdlm' checkpoint {out}")
    return 0
