"""Markdown tables and a PNG for the speed benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_savefig


def markdown_table(r: dict[str, Any]) -> str:
    fwd = r["forward"]
    lines = [f"# Speed benchmark ({r['parameters'] / 1e6:.2f}M parameters, {r['machine']['threads']} threads, "
             f"torch {r['machine']['torch']})", "",
             f"- peak fp32 matmul: **{r['peak_matmul_gflops']:.1f} GFLOP/s**; copy bandwidth: "
             f"**{r['copy_bandwidth_gbs']:.1f} GB/s**",
             f"- full forward pass over {fwd['tokens']} tokens: {fwd['gflops']:.1f} GFLOP/s = "
             f"**{100 * fwd['fraction_of_peak']:.0f}% of peak** (fastest pass against the fastest matmul; median "
             f"pass: {100 * fwd.get('fraction_of_peak_median', fwd['fraction_of_peak']):.0f}%)", "",
             "| case | L | batch | NFE | latency (s) | s/sample | tokens/s | peak mem (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in r["cases"]:
        nfe = f"{c['nfe']}" + (f" (+{c['sampler_passes']} sampler)" if c.get("sampler_passes") else "")
        lines.append(f"| {c['case']} | {c['length']} | {c['batch']} | {nfe} | {c['latency_s']:.3f} | "
                     f"{c['seconds_per_sample']:.4f} | {c['tokens_per_s']:.0f} | {c['peak_mem_mb']:.1f} |")
    lines += ["", "## Target ratios (same run)", "", "| ratio | L | batch | measured | target | met |",
              "|---|---:|---:|---:|---:|---|"]
    for q in r.get("ratios", []):
        lines.append(f"| {q['ratio']} | {q['length']} | {q['batch']} | {q['value']:.2f}x | {q['target']:.1f}x | "
                     f"{'yes' if q['met'] else 'no'} |")
    lines += ["", "## Roofline per generated token", "",
              "| method | L | batch | GFLOP/token | MB moved/token | FLOP/byte | bound | lower bound (ms/token) |",
              "|---|---:|---:|---:|---:|---:|---|---:|"]
    for q in r.get("roofline", []):
        lines.append(f"| {q['method']} | {q['length']} | {q['batch']} | {q['flops_per_token'] / 1e9:.4f} | "
                     f"{q['bytes_per_token'] / 2**20:.3f} | {q['intensity']:.1f} | {q['bound']} | "
                     f"{1000 * q['bound_s_per_token']:.4f} |")
    if r.get("crossover"):
        lines += ["", "## Where MDLM overtakes KV-cached AR", "",
                  "MDLM costs T full passes over L tokens (compute-bound); KV-cached AR reads every weight once per "
                  "token (memory-bound at batch 1). MDLM with T steps is faster when T < T*, twice as fast when "
                  "T < T*/2.", "", "| L | batch | T* at the roofline | T* measured | 2x needs T < (measured) |",
                  "|---:|---:|---:|---:|---:|"]
        for q in r["crossover"]:
            lines.append(f"| {q['length']} | {q['batch']} | {q['roofline_parity_T']:.1f} | "
                         f"{q['measured_parity_T']:.1f} (from T={q['from_T']}) | {q['measured_parity_T'] / 2:.1f} |")
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(c["length"], c["batch"]) for c in r["cases"]})
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 0.32 * len(r["cases"]) / max(1, len(groups)) + 2),
                             squeeze=False)
    for ax, (length, batch) in zip(axes[0], groups):
        rows = [c for c in r["cases"] if c["length"] == length and c["batch"] == batch]
        names = [c["case"] for c in rows]
        values = [c["tokens_per_s"] for c in rows]
        colors = ["tab:gray" if c["method"] == "ar" else "tab:blue" if c["method"] == "mdlm" else "tab:orange"
                  for c in rows]
        ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        ax.set_xlabel("tokens / second (log)")
        ax.set_title(f"L={length}, batch={batch}")
        ax.invert_yaxis()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
