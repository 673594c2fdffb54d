"""The generation cases of the speed benchmark and the run that measures them all side by side."""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..data.tokenizers import WordTokenizer
from ..distill.adjust import AdjustConfig, AdjustModel, SamplerLayer, sampler_config_for
from ..distill.adjust_adapters import ParadistillAdapter
from ..distill.gumbel import GumbelConfig
from ..generation import generate
from ..io import atomic_write_json, atomic_write_text
from ..models.transformer import ModelConfig
from .bench import (
    BenchConfig,
    copy_bandwidth_gbs,
    forward_case,
    forward_flops,
    make_loaded,
    median_time,
    peak_matmul_gflops,
    weight_bytes,
)
from .bench_report import markdown_table, plot


def bench_tokenizer(vocab_size: int) -> WordTokenizer:
    return WordTokenizer.from_vocab([f"w{i}" for i in range(vocab_size - 4)])


def _cases(bc: BenchConfig, cfg: ModelConfig, tok, length: int) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, loaded checkpoint, generate() options) for every method at this length."""
    base = {"seq_len": length, "keep_bos": True}
    cases = []
    if "ar" in bc.methods:
        ar = make_loaded("ar", cfg, tok, base)
        cases += [("ar kv-cache", ar, {"kv_cache": True}), ("ar no-cache", ar, {"kv_cache": False})]
    if "mdlm" in bc.methods:
        mdlm = make_loaded("mdlm", cfg, tok, base)
        for steps in bc.mdlm_steps:
            steps = steps or length
            for sampler in ("ancestral", "ancestral-nocache"):
                label = "cached" if sampler == "ancestral" else "no-cache"
                cases.append((f"mdlm T={steps} {label}", mdlm, {"sampler": sampler, "steps": steps}))
    if "bd3lm" in bc.methods and length % bc.bd3_block == 0:
        bd3 = make_loaded("bd3lm", cfg, tok, {**base, "block_size": bc.bd3_block})
        for cache in (True, False):
            cases.append((f"bd3lm B={bc.bd3_block} {'kv-cache' if cache else 'no-cache'}", bd3,
                          {"sampler": "ancestral", "steps": bc.bd3_steps_per_block, "kv_cache": cache}))
    if "gd" in bc.methods:
        cases += _gd_cases(bc, cfg, tok, base)
    if "adjust" in bc.methods:
        cases += _adjust_cases(bc, cfg, tok, base, length)
    if bc.compile:
        cases += _compiled_cases(cases)
    return cases


COMPILED = ("ar kv-cache", "ar no-cache", "mdlm T=16 cached", "bd3lm B=16 kv-cache")


class CompiledModel:
    """A model seen through `torch.compile(dynamic=True)`: calls run the compiled graph, attributes (cfg, embed,
    head, parameters) are the wrapped model's."""

    def __init__(self, model):
        self._model, self._compiled = model, torch.compile(model, dynamic=True)

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def _compiled_cases(cases):
    """The same cases compiled, measured beside the eager ones (compilation happens in the warm-up run, which is
    not timed). AR with KV cache uses its own compiled path (static cache, one graph per step, see
    sampling.ar); the others run the backbone under `torch.compile(dynamic=True)`."""
    import copy

    out = []
    for name, loaded, options in cases:
        if name == "ar kv-cache":
            out.append((f"{name} (compiled)", loaded, {**options, "compile": True}))
        elif name in COMPILED:
            twin = copy.copy(loaded)
            twin.model = CompiledModel(loaded.model)
            out.append((f"{name} (compiled)", twin, options))
    return out


def _gd_cases(bc, cfg, tok, base):
    from dataclasses import asdict as _asdict
    from dataclasses import replace

    gd_cfg = replace(cfg, noise_embed="topk")
    loaded = make_loaded("gd-mdlm", gd_cfg, tok, {**base, "gumbel": _asdict(GumbelConfig())})
    return [(f"gd-mdlm T={steps} (noise incl.)", loaded, {"sampler": "ancestral", "steps": steps})
            for steps in (8, 16)]


def _adjust_cases(bc, cfg, tok, base, length):
    """ADJUST on an MDLM base: a randomly initialised sampler layer (speed does not depend on its weights)."""
    mdlm = make_loaded("mdlm", cfg, tok, base)
    adapter = ParadistillAdapter.from_loaded(mdlm)
    sampler = SamplerLayer(sampler_config_for(adapter, AdjustConfig(init_gain=1.0), cfg.n_heads)).eval()
    loaded = make_loaded("mdlm", cfg, tok, base)
    loaded.model = AdjustModel(mdlm.model, sampler).eval()
    loaded.kind = "adjust"
    loaded.config = {"kind": "adjust", "method": {**base, "base": "", "base_kind": "mdlm"}}
    cases = [("adjust K=1 (sequential)", mdlm, {"sampler": "adjust", "steps": 1, "tokens_per_pass": 1,
                                                 "mode": "marginal"})]
    for k in bc.adjust_k:
        cases.append((f"adjust K={k}", loaded, {"sampler": "adjust", "steps": k, "tokens_per_pass": k, "mode": "adjust"}))
    return cases


def run_case(loaded, options: dict[str, Any], batch: int, length: int, bc: BenchConfig) -> dict[str, Any]:
    opts = dict(options)
    sampler = opts.pop("sampler", "ancestral")
    steps = opts.pop("steps", 1)

    def once():
        return generate(loaded, batch, length=length, sampler=sampler, steps=steps, batch_size=batch,
                        seed=0, progress=False, **opts)

    with torch.no_grad():
        sec, result, mem = median_time(once, bc.reps, bc.warmup)
    extra = {}
    batch_extra = result.info.get("batch_extra") or [{}]
    if batch_extra[0].get("sampler_passes") is not None:
        extra["sampler_passes"] = batch_extra[0]["sampler_passes"]
    return {"latency_s": sec, "seconds_per_sample": sec / batch, "tokens_per_s": batch * length / sec,
            "nfe": result.nfe[0], "peak_mem_mb": mem / 2**20, **extra}


def roofline(cfg: ModelConfig, wbytes: int, length: int, batch: int, peak: float, bandwidth: float,
             bc: BenchConfig) -> list[dict[str, Any]]:
    """Per generated token: FLOPs and bytes moved (weights once per pass + KV cache reads), and the bound."""
    rows = []
    kv_per_token = 2 * cfg.n_layers * cfg.dim * 4
    avg_ctx = length / 2

    def add(name, passes, tokens_per_pass, context, kv_bytes):
        flops = passes * forward_flops(cfg, batch, tokens_per_pass, context) / (batch * length)
        moved = passes * (wbytes + kv_bytes) / (batch * length)
        bound = max(flops / (peak * 1e9), moved / (bandwidth * 1e9))
        rows.append({"method": name, "flops_per_token": flops, "bytes_per_token": moved,
                     "intensity": flops / moved, "bound_s_per_token": bound,
                     "bound": "compute" if flops / (peak * 1e9) >= moved / (bandwidth * 1e9) else "memory"})

    add("ar kv-cache", length - 1, 1, avg_ctx, batch * avg_ctx * kv_per_token)
    add("ar no-cache", length - 1, avg_ctx, avg_ctx, 0)
    for steps in bc.mdlm_steps:
        steps = steps or length
        add(f"mdlm T={steps} (no reuse)", steps, length, length, 0)
    return rows


def run_benchmark(bc: BenchConfig, out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    peak = peak_matmul_gflops()
    bandwidth = copy_bandwidth_gbs()
    cfg = ModelConfig(vocab_size=bc.vocab_size, dim=bc.dim, n_layers=bc.n_layers, n_heads=bc.n_heads,
                      max_len=max(bc.lengths) * 2)
    tok = bench_tokenizer(bc.vocab_size)
    results: dict[str, Any] = {
        "config": asdict(bc), "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                                          "torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "peak_matmul_gflops": peak, "copy_bandwidth_gbs": bandwidth, "parameters": cfg.num_parameters(),
        "forward": forward_case(cfg, bc, peak), "cases": [], "roofline": []}
    todo = [(length, batch, case) for length in bc.lengths for batch in bc.batch_sizes
            for case in _cases(bc, cfg, tok, length)]
    bar = todo
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(todo, desc="bench")
    for length, batch, (name, loaded, options) in bar:
        row = {"case": name, "method": name.split()[0], "length": length, "batch": batch}
        row.update(run_case(loaded, options, batch, length, bc))
        results["cases"].append(row)
    wbytes = weight_bytes(_cases(bc, cfg, tok, bc.lengths[0])[0][1].model) if bc.methods else 0
    for length in bc.lengths:
        for batch in bc.batch_sizes:
            for row in roofline(cfg, wbytes, length, batch, peak, bandwidth, bc):
                results["roofline"].append({"length": length, "batch": batch, **row})
    results["ratios"] = ratios(results["cases"])
    results["crossover"] = crossover(results)
    if out is not None:
        write_results(results, Path(out))
    return results


def _find(cases, case, length, batch):
    for row in cases:
        if row["case"] == case and row["length"] == length and row["batch"] == batch:
            return row
    return None


def _best(cases, case, length, batch):
    """The faster of a case and its compiled twin (when measured): each method at its best."""
    rows = [r for r in (_find(cases, case, length, batch), _find(cases, f"{case} (compiled)", length, batch)) if r]
    return max(rows, key=lambda r: r["tokens_per_s"]) if rows else None


def ratios(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's target ratios, computed from rows of this one run: eager against eager, and (when compiled
    rows exist) each side at its best, eager or compiled."""
    out = []
    compiled = any(r["case"].endswith("(compiled)") for r in cases)
    for length, batch in sorted({(r["length"], r["batch"]) for r in cases}):
        pairs = [("ar kv-cache vs no-cache", "ar kv-cache", "ar no-cache", 5.0),
                 ("bd3lm B=16 kv-cache vs no-cache", "bd3lm B=16 kv-cache", "bd3lm B=16 no-cache", 2.0),
                 ("mdlm T=16 cached vs ar kv-cache", "mdlm T=16 cached", "ar kv-cache", 2.0)]
        for finder, suffix in [(_find, "")] + ([(_best, " (best of eager/compiled)")] if compiled else []):
            for label, fast, slow, target in pairs:
                a, b = finder(cases, fast, length, batch), finder(cases, slow, length, batch)
                if a and b:
                    ratio = a["tokens_per_s"] / b["tokens_per_s"]
                    out.append({"ratio": label + suffix, "length": length, "batch": batch, "value": ratio,
                                "target": target, "met": ratio >= target, "cases": [a["case"], b["case"]]})
    return out


def crossover(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Step count T* below which MDLM out-runs KV-cached AR, per (L, batch): at the roofline (from the bounds) and
    as measured (MDLM's time is linear in T, so T* = T x its measured speed-up over AR, from the largest T <= 64
    with a cached row; each side at its best of eager / compiled when both were timed). Both for parity and for the
    issue's 2x."""
    out = []
    for length, batch in sorted({(r["length"], r["batch"]) for r in results["cases"]}):
        bounds = {q["method"]: q["bound_s_per_token"] for q in results.get("roofline", [])
                  if q["length"] == length and q["batch"] == batch}
        ar = _best(results["cases"], "ar kv-cache", length, batch)
        steps = [t for t in (16, 32, 8, 64) if _find(results["cases"], f"mdlm T={t} cached", length, batch)]
        if ar is None or not steps or f"mdlm T={steps[0]} (no reuse)" not in bounds:
            continue
        t = steps[0]
        per_step = bounds[f"mdlm T={t} (no reuse)"] / t
        measured = t * _best(results["cases"], f"mdlm T={t} cached", length, batch)["tokens_per_s"] / ar["tokens_per_s"]
        out.append({"length": length, "batch": batch, "roofline_parity_T": bounds["ar kv-cache"] / per_step,
                    "measured_parity_T": measured, "from_T": t})
    return out


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", results, indent=2)
    atomic_write_text(out / "table.md", markdown_table(results))
    plot(results, out / "bench.png")
