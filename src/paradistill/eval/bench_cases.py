"""The generation cases of the speed benchmark and the run that measures them all side by side.

Cases of one (length, batch) are interleaved: every case is warmed up (compilation happens there), then
`rounds` rounds each run every case once, A B C ... A B C ..., so a change of the machine's load hits all cases
of a round alike. A ratio is paired per round (case A's time over case B's in the same round) and reported as
its median with the min / max over rounds; each side of a ratio is at its best of eager / compiled (the
variant with the lower median)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..data.tokenizers import WordTokenizer
from ..distill.adjust import AdjustConfig, AdjustModel, SamplerLayer, sampler_config_for
from ..distill.adjust_adapters import ParadistillAdapter
from ..distill.gumbel import GumbelConfig
from ..errors import UserError
from ..generation import generate
from ..io import atomic_write_json, atomic_write_text
from ..models.transformer import ModelConfig
from .bench import BenchConfig, copy_bandwidth_gbs, forward_case, forward_flops, make_loaded, peak_matmul_gflops
from .bench_device import element_bytes, is_cuda, machine_info, peak_memory, timed
from .bench_extra import HFCase, last_level_cache_bytes, sampler_overhead
from .bench_report import markdown_table, plot


def bench_tokenizer(vocab_size: int) -> WordTokenizer:
    return WordTokenizer.from_vocab([f"w{i}" for i in range(vocab_size - 4)])


def _cases(bc: BenchConfig, cfg: ModelConfig, tok, length: int, batch: int = 1) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, loaded checkpoint, generate() options) for every method at this length. Above `bc.heavy_tokens`
    generated tokens per call (batch x length), only AR, the HF baseline, MDLM at its smallest step count and the
    dual-cache block case run (the rest would take minutes per call on a CPU)."""
    cases = _all_cases(bc, cfg, tok, length)
    if bc.heavy_tokens and batch * length > bc.heavy_tokens:
        if bc.heavy_cases is not None:
            _check_names("--heavy-cases", bc.heavy_cases, [c[0] for c in cases])
        keep = set(bc.heavy_cases if bc.heavy_cases is not None else heavy_default(bc, length))
        keep |= {f"{name} (compiled)" for name in keep}
        cases = [c for c in cases if c[0] in keep]
    return cases


def _check_names(option: str, names: list[str], known: list[str]) -> None:
    bad = [n for n in names if n not in known]
    if bad:
        raise UserError(f"{option}: no case named '{bad[0]}' in this run; choose from: {', '.join(known)}")


def heavy_default(bc: BenchConfig, length: int) -> list[str]:
    """The cases run above `bc.heavy_tokens` unless `bc.heavy_cases` says otherwise (their compiled twins too)."""
    fewest = [f"mdlm T={min(t or length for t in bc.mdlm_steps)} cached"] if bc.mdlm_steps else []
    return ["ar kv-cache", "hf-gpt2 generate", *fewest, f"mdlm B={bc.block} S={bc.block_steps} dual"]


def _all_cases(bc: BenchConfig, cfg: ModelConfig, tok, length: int) -> list[tuple[str, Any, dict[str, Any]]]:
    base = {"seq_len": length, "keep_bos": True}
    on = (bc.device, bc.dtype)  # every model lives there, in that dtype
    cases = []
    if "ar" in bc.methods:
        ar = make_loaded("ar", cfg, tok, base, *on)
        cases.append(("ar kv-cache", ar, {"kv_cache": True}))
        if bc.ar_no_cache:
            cases.append(("ar no-cache", ar, {"kv_cache": False}))
    if "mdlm" in bc.methods:
        mdlm = make_loaded("mdlm", cfg, tok, base, *on)
        for steps in bc.mdlm_steps:
            steps = steps or length
            for sampler in ("ancestral", "ancestral-nocache") if bc.mdlm_no_cache else ("ancestral",):
                label = "cached" if sampler == "ancestral" else "no-cache"
                cases.append((f"mdlm T={steps} {label}", mdlm, {"sampler": sampler, "steps": steps}))
    if "hf" in bc.methods:
        cases.append(("hf-gpt2 generate", HFCase.build(cfg, cfg.max_len, tok.bos_id, *on), {}))
    if "blockcache" in bc.methods and length % bc.block == 0:
        mdlm = make_loaded("mdlm", cfg, tok, base, *on)
        for cache in ("none", "prefix", "dual"):
            opts = {"sampler": "confidence", "steps": bc.block_steps, "block_size": bc.block}
            if cache != "none":
                opts["block_cache"] = cache
            cases.append((f"mdlm B={bc.block} S={bc.block_steps} {'no-cache' if cache == 'none' else cache}",
                          mdlm, opts))
    if "bd3lm" in bc.methods and length % bc.bd3_block == 0:
        bd3 = make_loaded("bd3lm", cfg, tok, {**base, "block_size": bc.bd3_block}, *on)
        for cache in (True, False):
            cases.append((f"bd3lm B={bc.bd3_block} {'kv-cache' if cache else 'no-cache'}", bd3,
                          {"sampler": "ancestral", "steps": bc.bd3_steps_per_block, "kv_cache": cache}))
    if "gd" in bc.methods:
        cases += _gd_cases(bc, cfg, tok, base)
    if "adjust" in bc.methods:
        cases += _adjust_cases(bc, cfg, tok, base, length)
    if bc.compile:
        if bc.compile_cases is not None:
            _check_names("--compile-cases", bc.compile_cases, [c[0] for c in cases])
        cases += _compiled_cases(cases, COMPILED if bc.compile_cases is None else tuple(bc.compile_cases))
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


def _compiled_cases(cases, names=COMPILED):
    """The same cases compiled, measured beside the eager ones (compilation happens in the warm-up run, which is
    not timed). AR with KV cache uses its own compiled path (static cache, one graph per step, see
    sampling.ar); the others run the backbone under `torch.compile(dynamic=True)`."""
    import copy

    out = []
    for name, loaded, options in cases:
        if name not in names:
            continue
        if name == "ar kv-cache":
            out.append((f"{name} (compiled)", loaded, {**options, "compile": True}))
        else:
            twin = copy.copy(loaded)
            twin.model = CompiledModel(loaded.model)
            out.append((f"{name} (compiled)", twin, options))
    return out


def _gd_cases(bc, cfg, tok, base):
    from dataclasses import asdict as _asdict
    from dataclasses import replace

    gd_cfg = replace(cfg, noise_embed="topk")
    loaded = make_loaded("gd-mdlm", gd_cfg, tok, {**base, "gumbel": _asdict(GumbelConfig())}, bc.device, bc.dtype)
    return [(f"gd-mdlm T={steps} (noise incl.)", loaded, {"sampler": "ancestral", "steps": steps})
            for steps in (8, 16)]


def _adjust_cases(bc, cfg, tok, base, length):
    """ADJUST on an MDLM base: a randomly initialised sampler layer (speed does not depend on its weights). The
    base is in the bench's dtype; the sampler layer stays float32, as the adapter hands it float32 hidden states
    and embeddings (and casts its output back to the head's dtype)."""
    mdlm = make_loaded("mdlm", cfg, tok, base, bc.device, bc.dtype)
    adapter = ParadistillAdapter.from_loaded(mdlm)
    sampler = SamplerLayer(sampler_config_for(adapter, AdjustConfig(init_gain=1.0), cfg.n_heads)).eval()
    sampler = sampler.to(bc.device)
    loaded = make_loaded("mdlm", cfg, tok, base, bc.device, bc.dtype)
    loaded.model = AdjustModel(mdlm.model, sampler).eval()
    loaded.kind = "adjust"
    loaded.config = {"kind": "adjust", "method": {**base, "base": "", "base_kind": "mdlm"}}
    cases = [("adjust K=1 (sequential)", mdlm, {"sampler": "adjust", "steps": 1, "tokens_per_pass": 1,
                                                 "mode": "marginal"})]
    for k in bc.adjust_k:
        cases.append((f"adjust K={k}", loaded, {"sampler": "adjust", "steps": k, "tokens_per_pass": k, "mode": "adjust"}))
    return cases


def case_fn(loaded, options: dict[str, Any], batch: int, length: int):
    """A no-argument callable that generates one batch of the case and returns (nfe, extra counts)."""
    if isinstance(loaded, HFCase):
        return lambda: (loaded.run(batch, length)["nfe"], {})
    opts = dict(options)
    sampler = opts.pop("sampler", "ancestral")
    steps = opts.pop("steps", 1)

    def once():
        res = generate(loaded, batch, length=length, sampler=sampler, steps=steps, batch_size=batch, seed=0,
                       progress=False, **opts)
        extra = {}
        batch_extra = res.info.get("batch_extra") or [{}]
        if batch_extra[0].get("sampler_passes") is not None:
            extra["sampler_passes"] = batch_extra[0]["sampler_passes"]
        return res.nfe[0], extra

    return once


def load_average() -> list[float] | None:
    """The machine's 1 / 5 / 15-minute load averages (None where unknown): a shared machine's load is part of
    the record of a timing run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def run_interleaved(cases, batch: int, length: int, bc: BenchConfig, bar=None,
                    loads: list | None = None) -> list[dict[str, Any]]:
    """Warm up every case, then `bc.rounds` rounds of every case once, in order. One row per case with its
    per-round `times`, the median latency and tokens/s. `loads`: gets the load average at each round's start."""
    fns, peaks, counts, warm = [], {}, {}, {}
    with torch.no_grad():
        for name, loaded, options in cases:
            fn = case_fn(loaded, options, batch, length)
            with peak_memory(bc.device) as mem:  # the warm-up calls are timed too: a first call's set-up shows
                warm[name] = [timed(fn, bc.device) for _ in range(max(bc.warmup, 1))]
            counts[name] = warm[name][-1][1]
            peaks[name] = mem.peak
            fns.append((name, fn))
        times: dict[str, list[float]] = {name: [] for name, _ in fns}
        for i in range(bc.rounds):
            if loads is not None:
                loads.append({"length": length, "batch": batch, "round": i, "loadavg": load_average()})
            for name, fn in fns:
                sec, counts[name] = timed(fn, bc.device)  # waits for the GPU before and after
                times[name].append(sec)
                if bar is not None:
                    bar.update(1)
    rows = []
    for name, _ in fns:
        sec = statistics.median(times[name])
        nfe, extra = counts[name]
        rows.append({"case": name, "method": name.split()[0], "length": length, "batch": batch, "latency_s": sec,
                     "seconds_per_sample": sec / batch, "tokens_per_s": batch * length / sec, "times": times[name],
                     "warmup_s": [sec for sec, _ in warm[name]],
                     "nfe": nfe, "peak_mem_mb": peaks[name] / 2**20, **extra})
    return rows


def roofline(cfg: ModelConfig, wbytes: int, length: int, batch: int, peak: float, bandwidth: float,
             bc: BenchConfig, cache_bandwidth: float | None = None) -> list[dict[str, Any]]:
    """Per generated token: FLOPs and bytes moved (weights once per pass + KV cache reads), and the bound.
    `cache_bandwidth` (GB/s, given when the weights fit in the last-level cache): the rate at which a KV-cached AR
    step re-reads its cache-resident weights (the DRAM bandwidth would overstate the bound there)."""
    rows = []
    kv_per_token = 2 * cfg.n_layers * cfg.dim * element_bytes(bc.dtype)  # K and V per layer, in the bench's dtype
    avg_ctx = length / 2

    def add(name, passes, tokens_per_pass, context, kv_bytes, weight_bw=bandwidth):
        flops = passes * forward_flops(cfg, batch, tokens_per_pass, context) / (batch * length)
        moved = passes * (wbytes + kv_bytes) / (batch * length)
        mem_s = passes * (wbytes / (weight_bw * 1e9) + kv_bytes / (bandwidth * 1e9)) / (batch * length)
        bandwidth_eff = moved / mem_s / 1e9 if mem_s > 0 else bandwidth
        bound = max(flops / (peak * 1e9), moved / (bandwidth_eff * 1e9))
        rows.append({"method": name, "flops_per_token": flops, "bytes_per_token": moved,
                     "intensity": flops / moved, "bound_s_per_token": bound,
                     "bound": "compute" if flops / (peak * 1e9) >= moved / (bandwidth_eff * 1e9) else "memory",
                     "weight_bandwidth_gbs": weight_bw})

    add("ar kv-cache", length - 1, 1, avg_ctx, batch * avg_ctx * kv_per_token, cache_bandwidth or bandwidth)
    add("ar no-cache", length - 1, avg_ctx, avg_ctx, 0)
    for steps in bc.mdlm_steps:
        steps = steps or length
        add(f"mdlm T={steps} (no reuse)", steps, length, length, 0)
    return rows


def run_benchmark(bc: BenchConfig, out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    bc.validate()  # resolves --device auto; UserError for CUDA asked where there is none
    peak = peak_matmul_gflops(device=bc.device, dtype=bc.dtype)
    bandwidth = copy_bandwidth_gbs(device=bc.device, dtype=bc.dtype)
    cfg = ModelConfig(vocab_size=bc.vocab_size, dim=bc.dim, n_layers=bc.n_layers, n_heads=bc.n_heads,
                      max_len=max(bc.lengths) * 2)
    wbytes = cfg.num_parameters() * element_bytes(bc.dtype)
    # CPU: weights that fit in the last-level cache are re-read from it by every AR step: measure that rate
    llc = None if is_cuda(bc.device) else last_level_cache_bytes()
    cache_bw = copy_bandwidth_gbs(wbytes / 2 / 2**20, 30, bc.device, bc.dtype) if llc and wbytes <= llc else None
    tok = bench_tokenizer(bc.vocab_size)
    results: dict[str, Any] = {
        "config": asdict(bc), "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                                          "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                                          "last_level_cache_bytes": llc, **machine_info(bc.device, bc.dtype)},
        "peak_matmul_gflops": peak, "copy_bandwidth_gbs": bandwidth, "cache_bandwidth_gbs": cache_bw,
        "parameters": cfg.num_parameters(), "weight_bytes": wbytes,
        "forward": forward_case(cfg, bc, peak), "cases": [], "roofline": [],
        "load_average": [{"when": "start", "loadavg": load_average()}]}
    started = time.perf_counter()
    groups = [(length, batch, _cases(bc, cfg, tok, length, batch)) for length in bc.lengths
              for batch in bc.batch_sizes]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(c) for *_, c in groups) * bc.rounds, desc="bench (interleaved rounds)")
    for length, batch, cases in groups:
        if any(isinstance(loaded, HFCase) for _, loaded, _ in cases):
            results["hf_parameters"] = next(lo.parameters() for _, lo, _ in cases if isinstance(lo, HFCase))
        results["cases"] += run_interleaved(cases, batch, length, bc, bar, results["load_average"])
    if bar is not None:
        bar.close()
    for length in bc.lengths:
        for batch in bc.batch_sizes:
            for row in roofline(cfg, wbytes, length, batch, peak, bandwidth, bc, cache_bw):
                results["roofline"].append({"length": length, "batch": batch, **row})
    if bc.overhead_rounds:
        results["sampler_overhead"] = sampler_overhead(cfg, bc.overhead_length, 1, bc.overhead_rounds,
                                                       device=bc.device, dtype=bc.dtype)
    results["load_average"].append({"when": "end", "loadavg": load_average()})
    results["wall_s"] = time.perf_counter() - started
    results["ratios"] = ratios(results["cases"], bc)
    results["crossover"] = crossover(results)
    if out is not None:
        write_results(results, Path(out))
    return results


def _find(cases, case, length, batch):
    for row in cases:
        if row["case"] == case and row["length"] == length and row["batch"] == batch:
            return row
    return None


def _paired(fast: dict[str, Any], slow: dict[str, Any]) -> dict[str, float]:
    """Speed-up of `fast` over `slow` (tokens/s ratio = time ratio at equal work), paired per round."""
    per = sorted(b / a for a, b in zip(fast["times"], slow["times"]))
    return {"value": per[len(per) // 2], "min": per[0], "max": per[-1], "rounds": len(per)}


def _best_median(cases, case, length, batch):
    """The case or its compiled twin, whichever has the lower median latency."""
    rows = [r for r in (_find(cases, case, length, batch), _find(cases, f"{case} (compiled)", length, batch)) if r]
    return min(rows, key=lambda r: r["latency_s"]) if rows else None


def ratio_pairs(bc: BenchConfig | None) -> list[tuple[str, str, str, float | None]]:
    block = f"mdlm B={bc.block} S={bc.block_steps}" if bc is not None else "mdlm B=32 S=4"
    return [("ar kv-cache vs no-cache", "ar kv-cache", "ar no-cache", 5.0),
            ("bd3lm B=16 kv-cache vs no-cache", "bd3lm B=16 kv-cache", "bd3lm B=16 no-cache", 2.0),
            ("mdlm T=16 cached vs ar kv-cache", "mdlm T=16 cached", "ar kv-cache", 2.0),
            ("ar kv-cache vs hf-gpt2 generate", "ar kv-cache", "hf-gpt2 generate", None),
            ("mdlm T=16 cached vs hf-gpt2 generate", "mdlm T=16 cached", "hf-gpt2 generate", None),
            (f"{block} prefix vs no-cache", f"{block} prefix", f"{block} no-cache", 2.0),
            (f"{block} dual vs no-cache", f"{block} dual", f"{block} no-cache", None),
            (f"{block} dual vs ar kv-cache", f"{block} dual", "ar kv-cache", None)]


def ratios(cases: list[dict[str, Any]], bc: BenchConfig | None = None) -> list[dict[str, Any]]:
    """Target ratios of this one run, paired per interleaved round, each side at its best of eager / compiled."""
    out = []
    for length, batch in sorted({(r["length"], r["batch"]) for r in cases}):
        for label, fast, slow, target in ratio_pairs(bc):
            a, b = _best_median(cases, fast, length, batch), _best_median(cases, slow, length, batch)
            if a and b and len(a.get("times", [])) == len(b.get("times", [])) and a.get("times"):
                q = _paired(a, b)
                out.append({"ratio": label, "length": length, "batch": batch, **q, "target": target,
                            "met": None if target is None else q["value"] >= target, "cases": [a["case"], b["case"]]})
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
        ar = _best_median(results["cases"], "ar kv-cache", length, batch)
        steps = [t for t in (16, 32, 8, 64) if _find(results["cases"], f"mdlm T={t} cached", length, batch)]
        if ar is None or not steps or f"mdlm T={steps[0]} (no reuse)" not in bounds:
            continue
        t = steps[0]
        per_step = bounds[f"mdlm T={t} (no reuse)"] / t
        measured = t * _best_median(results["cases"], f"mdlm T={t} cached", length, batch)["tokens_per_s"] / ar["tokens_per_s"]
        out.append({"length": length, "batch": batch, "roofline_parity_T": bounds["ar kv-cache"] / per_step,
                    "measured_parity_T": measured, "from_T": t})
    return out


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", results, indent=2)
    atomic_write_text(out / "table.md", markdown_table(results))
    plot(results, out / "bench.png")
