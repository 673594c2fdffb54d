"""`paradistill data prepare|info`."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="prepare or describe a data set",
                       description="Tokenise and pack a corpus into a cached memory-mapped array, or describe one.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    prep = dsub.add_parser("prepare", help="tokenise + pack a corpus (cached)",
                           description="Tokenise + pack a corpus; a second call with the same settings is instant.")
    prep.add_argument("--corpus", default="builtin",
                      help="builtin | a text file | a folder | a glob | hf:NAME[:CONFIG] (default: builtin)")
    prep.add_argument("--tokenizer", default=None,
                      help="builtin | char | word | gpt2:DIR | hf:NAME_OR_DIR (default: builtin for the builtin "
                           "corpus, char otherwise)")
    prep.add_argument("--seq-len", type=int, default=64, help="tokens per row (>= 2)")
    prep.add_argument("--mode", choices=["aligned", "wrap", "pad", "wrap-mdlm", "wrap-raw"], default=None,
                      help="aligned: rows start at a document; wrap: one stream cut anywhere; pad: one doc per row; "
                           "wrap-mdlm: MDLM OpenWebText rows BOS + chunk + EOS; wrap-raw: doc EOS stream, no added BOS/EOS "
                           "(default: aligned for builtin, wrap otherwise)")
    prep.add_argument("--val-fraction", type=float, default=0.05, help="held-out fraction of documents")
    prep.add_argument("--num-tokens", type=int, default=None, help="builtin corpus: training tokens to generate")
    prep.add_argument("--num-docs", type=int, default=None, help="use at most this many documents")
    prep.add_argument("--cache-dir", default=None, help="cache folder (default: ~/.cache/paradistill or $PARADISTILL_CACHE)")
    prep.add_argument("--seed", type=int, default=0, help="seed for the split and the builtin corpus")
    prep.set_defaults(run=run_prepare)
    info = dsub.add_parser("info", help="describe a prepared data folder",
                           description="Sizes, vocabulary, token counts, decoded examples (and the builtin corpus's "
                                       "entropy rate).")
    info.add_argument("directory", help="a folder written by `data prepare`")
    info.set_defaults(run=run_info)
    p.set_defaults(run=lambda args: (p.print_help(), 1)[1])


def run_prepare(args) -> int:
    from ..data.info import describe, format_info
    from ..data.packing import prepare_data

    from ..config import check_ranges

    check_ranges(args, "--", {"num_tokens": (1, None), "num_docs": (1, None), "val_fraction": (0, "<1"),
                              "seq_len": (2, None)})
    builtin = args.corpus == "builtin"
    tokenizer = args.tokenizer or ("builtin" if builtin else "char")
    mode = args.mode or ("aligned" if builtin else "wrap")
    data = prepare_data(args.corpus, tokenizer, args.seq_len, mode=mode, val_fraction=args.val_fraction,
                        cache_dir=args.cache_dir, num_docs=args.num_docs, seed=args.seed, num_tokens=args.num_tokens)
    print(format_info(describe(data.directory)))
    if len(data.val) == 0:
        import sys

        why = "--val-fraction is 0" if args.val_fraction == 0 else "the corpus is shorter than two rows"
        print(f"paradistill: warning: the validation split is empty ({why}): training on this data reports no "
              "validation loss", file=sys.stderr)
    elif data.meta.get("split") == "tokens":
        print("paradistill: note: too few documents to split by document; the last "
              f"{args.val_fraction:g} of the token stream is the validation split")
    return 0


def run_info(args) -> int:
    from ..data.info import describe, format_info

    print(format_info(describe(args.directory)))
    return 0
