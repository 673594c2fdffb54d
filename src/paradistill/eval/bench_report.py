"""Markdown tables and a PNG for the speed benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_savefig
from .bench_device import SHORT


def verdict(r: dict[str, Any]) -> list[str]:
    """The opening lines of table.md: the headline ratios of this run, as measured (paired per round)."""
    lines = []
    for q in r.get("ratios", []):
        if q["ratio"].startswith(("mdlm T=16 cached vs ar", "ar kv-cache vs hf", "mdlm B=")) and "dual vs ar" not in q["ratio"]:
            target = "" if q["target"] is None else f" (target {q['target']:.1f}x: {'met' if q['met'] else 'not met'})"
            lines.append(f"- {q['ratio']}, L={q['length']}, batch {q['batch']}: **{q['value']:.2f}x** "
                         f"(rounds {q['min']:.2f}-{q['max']:.2f}x){target}")
    so = r.get("sampler_overhead")
    if so:
        worst = max(v["median"] for v in so["overhead"].values())
        lines.append(f"- sampler work outside the forward at V={so['vocab_size']}, L={so['length']}: at most "
                     f"**{100 * worst:.0f}%** of the forward (target <= 10%: {'met' if worst <= 0.10 else 'not met'}); "
                     f"the old full log-softmax cost {so['old_logsoftmax_over_forward']['median']:.2f}x a forward")
    return lines


def where(machine: dict[str, Any]) -> str:
    """Where a run was timed, for the table's title: 'NVIDIA H200, bfloat16' on a GPU, '8 threads, float32' on CPU
    (results written before the GPU path have no device / dtype: float32 on CPU)."""
    dtype = machine.get("dtype", "float32")
    if str(machine.get("device", "cpu")).startswith("cuda"):
        return f"{machine.get('device_name', 'CUDA GPU')}, {dtype}"
    return f"{machine['threads']} threads, {dtype}"


def markdown_table(r: dict[str, Any]) -> str:
    fwd = r["forward"]
    rounds = r.get("config", {}).get("rounds")
    short = SHORT.get(r["machine"].get("dtype", "float32"), r["machine"].get("dtype"))
    lines = [f"# Speed benchmark ({r['parameters'] / 1e6:.2f}M parameters, V={r['config'].get('vocab_size')}, "
             f"{where(r['machine'])}, torch {r['machine']['torch']})", "",
             "**Verdict** (ratios of tokens/s, paired per interleaved round: median and min-max over "
             f"{rounds} rounds; each side at its best of eager / compiled):", "", *verdict(r), "",
             f"- peak {short} matmul: **{r['peak_matmul_gflops']:.1f} GFLOP/s**; copy bandwidth: "
             f"**{r['copy_bandwidth_gbs']:.1f} GB/s**",
             f"- full forward pass over {fwd['tokens']} tokens: {fwd['gflops']:.1f} GFLOP/s = "
             f"**{100 * fwd['fraction_of_peak']:.0f}% of peak** (fastest pass against the fastest matmul; median "
             f"pass: {100 * fwd.get('fraction_of_peak_median', fwd['fraction_of_peak']):.0f}%)"]
    if r.get("cache_bandwidth_gbs"):
        lines.append(f"- weights ({r['weight_bytes'] / 2**20:.1f} MB) fit in the last-level cache "
                     f"({r['machine']['last_level_cache_bytes'] / 2**20:.0f} MB): cache-resident copy bandwidth "
                     f"**{r['cache_bandwidth_gbs']:.1f} GB/s** bounds the KV-cached AR step in the roofline")
    if r.get("hf_parameters"):
        lines.append(f"- `transformers` GPT-2 baseline: {r['hf_parameters'] / 1e6:.2f}M parameters (learned "
                     "positions and biases), `generate(do_sample=True, top_k=0)` with its default cache")
    lines += ["", "| case | L | batch | NFE | latency (s, median) | rounds min-max (s) | first call (s) | tokens/s | "
              "peak mem (MB) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in r["cases"]:
        nfe = f"{c['nfe']}" + (f" (+{c['sampler_passes']} sampler)" if c.get("sampler_passes") else "")
        spread = f"{min(c['times']):.3f}-{max(c['times']):.3f}" if c.get("times") else ""
        first = f"{c['warmup_s'][0]:.3f}" if c.get("warmup_s") else ""  # untimed warm-up: compilation, set-up
        lines.append(f"| {c['case']} | {c['length']} | {c['batch']} | {nfe} | {c['latency_s']:.3f} | {spread} | "
                     f"{first} | {c['tokens_per_s']:.0f} | {c['peak_mem_mb']:.1f} |")
    lines += ["", "## Ratios (same run, paired per round)", "",
              "| ratio | L | batch | median | rounds min-max | target | met | cases |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for q in r.get("ratios", []):
        target = "" if q["target"] is None else f"{q['target']:.1f}x"
        met = "" if q["met"] is None else ("yes" if q["met"] else "no")
        lines.append(f"| {q['ratio']} | {q['length']} | {q['batch']} | {q['value']:.2f}x | "
                     f"{q.get('min', q['value']):.2f}-{q.get('max', q['value']):.2f}x | {target} | {met} | "
                     f"{' / '.join(q.get('cases', []))} |")
    so = r.get("sampler_overhead")
    if so:
        lines += ["", f"## Sampler work outside the forward (V={so['vocab_size']}, L={so['length']}, batch "
                  f"{so['batch']}, {int(100 * so['masked_fraction'])}% masked)", "",
                  "| timed | median (ms) |", "|---|---:|"]
        for k, v in so["seconds"].items():
            lines.append(f"| {k} | {1000 * v:.2f} |")
        lines += ["", "| sampler step | outside-forward work / forward (median, min-max) |", "|---|---:|"]
        for k, v in so["overhead"].items():
            lines.append(f"| {k} | {100 * v['median']:.1f}% ({100 * v['min']:.1f}-{100 * v['max']:.1f}%) |")
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
