"""`paradistill report RUN_DIR...`."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="gather eval results into a markdown table and quality/speed plots",
                       description="Collect the JSON files written by `paradistill eval` (searched recursively in "
                                   "each RUN_DIR, or given directly) into OUT/table.md, and plot quality (exact or "
                                   "judge Gen PPL, with unigram entropy below it) against NFE "
                                   "(OUT/quality_vs_nfe.png) and against measured latency per sample "
                                   "(OUT/quality_vs_latency.png).")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR", help="directories to search, or eval JSON files")
    p.add_argument("--out", default="report", help="output directory (default: report)")
    p.add_argument("--no-plots", action="store_true", help="write only the markdown table")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..eval.report import write_report
    from ..io import guard_output_dir

    guard_output_dir(args.out, ["table.md", "quality_vs_nfe.png", "quality_vs_latency.png"], args.overwrite)

    rep = write_report(args.paths, args.out, plots=not args.no_plots)
    print(rep["table"])
    print(f"{rep['num_results']} results -> " + ", ".join(str(f) for f in rep["files"]))
    return 0
