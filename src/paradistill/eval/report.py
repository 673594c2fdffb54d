"""`paradistill report RUN_DIR...`: gather eval JSONs into a markdown table and PNG plots of quality against
NFE and against measured latency per sample (the quality / speed Pareto view).

Quality is the exact Gen PPL under the built-in generator when every set has it, else the judge's Gen PPL;
unigram entropy is plotted beside it (a low perplexity with low entropy means repetitive text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import atomic_savefig, atomic_write_text
from .evaluate import FORMAT


def _json_files(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += sorted(p.rglob("*.json"))
        else:
            raise UserError(f"'{p}' does not exist: pass run directories or eval JSON files")
    return files


def _read(files: list[Path], formats: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        try:
            res = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
        if isinstance(res, dict) and res.get("format") in formats:
            res["_file"] = str(f)
            out.append(res)
    return out


def collect(paths: list[str | Path], required: bool = True) -> list[dict[str, Any]]:
    """Eval results from files or directories (searched recursively for JSON files written by `eval`)."""
    out = _read(_json_files(paths), (FORMAT,))
    if not out and required:
        raise UserError(f"no eval results under {', '.join(map(str, paths))}: run `paradistill eval` first "
                        "(it writes *.json files with format 'paradistill-eval')")
    return sorted(out, key=lambda r: (str(r.get("kind")), str(r.get("sampler")), _num(r.get("nfe_mean"))))


def benchmark_tables(paths: list[str | Path]) -> str:
    """The lm-eval task tables and LAMBADA / zero-shot tables found under `paths` (markdown, '' when none)."""
    from .tasks import FORMAT as TASKS, format_tasks_table
    from .zeroshot import FORMAT as ZEROSHOT, format_zeroshot

    parts = []
    for res in _read(_json_files(paths), (TASKS, ZEROSHOT)):
        body = format_tasks_table(res) if res["format"] == TASKS else format_zeroshot(res)
        parts.append(f"### {res['_file']}\n\n{body}")
    return "\n".join(parts)


def _num(x) -> float:
    return float(x) if isinstance(x, (int, float)) else float("nan")


def label(res: dict[str, Any]) -> str:
    if res.get("label"):
        return str(res["label"])
    if res.get("kind") == "generator":
        return "generator (exact)"
    return f"{res.get('kind')}/{res.get('sampler')}"


def quality_key(results: list[dict[str, Any]]) -> tuple[str, str]:
    """('exact_ppl' | 'gen_ppl', axis name) usable for every result."""
    if all("exact_ppl" in r for r in results):
        return "exact_ppl", "exact Gen PPL (built-in generator)"
    if all("gen_ppl" in r for r in results):
        return "gen_ppl", "Gen PPL (judge)"
    raise UserError("the results share no perplexity: evaluate all of them with exact NLL (built-in corpus) or "
                    "all with the same --judge")


def _f(x, d=3) -> str:
    return "-" if x is None else (f"{x:.{d}f}" if isinstance(x, float) else str(x))


def _ci(res: dict, block: str) -> str:
    b = res.get(block)
    if not b:
        return "-"
    return f"{b['ppl']:.3f} [{b['ppl_ci95'][0]:.3f}, {b['ppl_ci95'][1]:.3f}]"


def _mauve_features(res: dict) -> str:
    m = res.get("mauve")
    if not m:
        return "-"
    return f"{m['features']} ({m.get('num_p')} vs {m.get('num_q')})" + (" <500" if m.get("warning") else "")


def markdown_table(results: list[dict[str, Any]]) -> str:
    head = ["set", "steps", "samples", "mean NFE", "ms / sample", "tokens / s", "exact Gen PPL [95% CI]",
            "violation-free", "Gen PPL [95% CI]", "judge", "entropy", "distinct-2", "MAUVE", "MAUVE features (n)",
            "val PPL"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [label(r), _f(r.get("steps")), _f(r.get("num_samples")), _f(r.get("nfe_mean"), 1),
                 _f(r["seconds_per_sample"] * 1000 if r.get("seconds_per_sample") is not None else None, 2),
                 _f(r.get("tokens_per_second"), 0), _ci(r, "exact"),
                 _f((r.get("exact") or {}).get("violation_free_fraction"), 3), _ci(r, "gen"),
                 _f((r.get("gen") or {}).get("judge")), _f(r.get("entropy"), 3),
                 _f(r.get("distinct_2"), 3), _f((r.get("mauve") or {}).get("mauve"), 3), _mauve_features(r),
                 _f((r.get("val_ppl") or {}).get("ppl"), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    refs = {round(r["exact"]["generator_ppl"], 4) for r in results if "generator_ppl" in r.get("exact", {})}
    note = ""
    if refs:
        note = "\nGenerator exp(entropy rate) for this length: " + ", ".join(f"{v:.3f}" for v in sorted(refs)) + "\n"
    return "\n".join(lines) + "\n" + note


def _draw(ax, ax2, results, key, xkey) -> None:
    """One line per set label: quality with its 95% CI (top), entropy (bottom); labels are step counts."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(label(r), []).append(r)
    block = "exact" if key == "exact_ppl" else "gen"
    scale = 1000.0 if xkey == "seconds_per_sample" else 1.0
    for g, rs in groups.items():
        rs = sorted(rs, key=lambda r: _num(r.get(xkey)))
        xs = [_num(r.get(xkey)) * scale for r in rs]
        line, = ax.plot(xs, [r[key] for r in rs], "o-", label=g)
        ax.vlines(xs, [r[block]["ppl_ci95"][0] for r in rs], [r[block]["ppl_ci95"][1] for r in rs],
                  color=line.get_color(), alpha=0.6)
        for x, r in zip(xs, rs):
            tag = "AR" if r.get("sampler") == "ar" else f"{r.get('steps')}"
            ax.annotate(tag, (x, r[key]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if all("entropy" in r for r in rs):
            ax2.plot(xs, [r["entropy"] for r in rs], "s--", color=line.get_color())


def _references(ax, ax2, refs, key) -> None:
    """The generator as horizontal lines: exp(entropy rate), its samples' measured PPL and entropy."""
    for i, v in enumerate(sorted({r["exact"]["generator_ppl"] for r in refs if "generator_ppl" in r["exact"]})):
        ax.axhline(v, color="k", ls=":", lw=1, label="generator exp(entropy rate)" if i == 0 else None)
    for i, r in enumerate(refs):
        if key in r:
            ax.axhline(r[key], color="grey", ls="--", lw=1, label="generator samples" if i == 0 else None)
        if "entropy" in r:
            ax2.axhline(r["entropy"], color="grey", ls="--", lw=1)


def plot(results: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """quality_vs_nfe.png and quality_vs_latency.png: PPL (top, log scale) and entropy (bottom) per set;
    sets sampled from the built-in generator itself are drawn as horizontal reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key, name = quality_key(results)
    refs = [r for r in results if r.get("kind") == "generator" and "exact" in r]
    models = [r for r in results if r.get("kind") != "generator"] or results
    files = []
    for xkey, xname, fname in (("nfe_mean", "NFE (full forward passes)", "quality_vs_nfe.png"),
                               ("seconds_per_sample", "latency per sample (ms)", "quality_vs_latency.png")):
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.5, 6.5), sharex=True, height_ratios=[2, 1])
        _draw(ax, ax2, models, key, xkey)
        _references(ax, ax2, refs if models is not results else [], key)
        ax.set_ylabel(name)
        ax.set_yscale("log")
        if all(_num(r.get(xkey)) > 0 for r in models):
            ax.set_xscale("log", base=2 if xkey == "nfe_mean" else 10)
        ax.margins(x=0.1)
        ax.legend(fontsize=7)
        ax.set_title(f"{name} vs {xname.split(' (')[0]} (labels: steps; bars: 95% CI)", fontsize=9)
        ax2.set_ylabel("unigram entropy (nats)")
        ax2.set_xlabel(xname)
        fig.tight_layout()
        atomic_savefig(fig, out_dir / fname, dpi=120)
        plt.close(fig)
        files.append(out_dir / fname)
    return files


def write_report(paths: list[str | Path], out_dir: str | Path, plots: bool = True) -> dict[str, Any]:
    """table.md (+ PNG plots) in `out_dir` from the eval JSONs under `paths`: the generation table, then the
    lm-eval task tables and LAMBADA / zero-shot tables beside it."""
    benchmarks = benchmark_tables(paths)
    results = collect(paths, required=not benchmarks)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = ""
    if results:
        table = "## Generation\n\n" + markdown_table(results)
    if benchmarks:
        table += ("\n" if table else "") + "## Benchmarks (lm-eval tasks, LAMBADA, zero-shot perplexity)\n\n" + benchmarks
    atomic_write_text(out_dir / "table.md", table)
    files = plot(results, out_dir) if plots and results else []
    return {"table": table, "files": [out_dir / "table.md", *files], "num_results": len(results)}
