"""Speed benchmark: every generation method side by side in one run, on models of the same size.

Speed does not depend on the weights, so models are randomly initialised (trained checkpoints optional).
Each case: warm-up, then `reps` timed repetitions, median reported; tokens/s = batch * length / latency.
Also measured: the device's peak matmul GFLOP/s (in the benchmark's dtype) and copy bandwidth, the achieved GFLOP/s
of one full forward pass, and a roofline table (FLOPs and bytes per generated token for each method).
Runs on CPU or a CUDA GPU (`device`), in float32, bfloat16 or float16 (`dtype`); on a GPU every timed call is
bracketed by a synchronize and peak memory is the CUDA allocator's (see bench_device).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..checkpoint import LoadedCheckpoint
from ..errors import UserError
from ..models.transformer import ModelConfig, Transformer
from .bench_device import check_device, element_bytes, is_cuda, peak_memory, timed, torch_dtype


@dataclass
class BenchConfig:
    dim: int = 192
    n_layers: int = 4
    n_heads: int = 4
    vocab_size: int = 360
    lengths: list[int] = field(default_factory=lambda: [256])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    mdlm_steps: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 0])  # 0 = L (one token per pass)
    bd3_block: int = 16
    bd3_steps_per_block: int = 4
    adjust_k: list[int] = field(default_factory=lambda: [2, 4, 8])
    reps: int = 3  # kept for old configs: timing now runs `rounds` interleaved rounds
    warmup: int = 1
    forward_tokens: int = 4096
    compile: bool = False
    methods: list[str] = field(default_factory=lambda: ["ar", "mdlm", "bd3lm", "gd", "adjust"])
    rounds: int = 3  # interleaved rounds (A B C ... A B C ...): every case once per round
    block: int = 32  # block size of the MDLM block-cache cases ("blockcache" method)
    block_steps: int = 4  # denoising passes per block there
    ar_no_cache: bool = True
    mdlm_no_cache: bool = True
    heavy_tokens: int = 0  # > 0: above this many tokens per call only a few cases run (see bench_cases._cases)
    heavy_cases: list[str] | None = None  # the cases kept above heavy_tokens (None: bench_cases.heavy_default)
    compile_cases: list[str] | None = None  # the eager cases given a compiled twin (None: bench_cases.COMPILED)
    overhead_rounds: int = 0  # > 0: measure the sampler's work outside the forward at `overhead_length`
    overhead_length: int = 256
    device: str = "cpu"  # cpu | cuda (| cuda:N); "auto" is resolved by validate()
    dtype: str = "float32"  # float32 | bfloat16 | float16: the models' weights, activations and KV caches

    def validate(self) -> None:
        from ..config import closest_hint

        self.device = check_device(self.device, self.dtype)

        known = ["ar", "hf", "mdlm", "blockcache", "bd3lm", "gd", "adjust"]
        bad = [m for m in self.methods if m not in known]
        if bad or not self.methods:
            hint = closest_hint(bad[0], known) if bad else ""
            raise UserError(f"--methods {','.join(self.methods) or repr('')}: unknown method "
                            f"'{bad[0] if bad else ''}'{hint}; choose from {','.join(known)}")
        for name in ("lengths", "batch_sizes"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: every value must be >= 1")
        if min(self.mdlm_steps, default=0) < 0:
            raise UserError(f"--mdlm-steps {self.mdlm_steps}: values must be >= 1 (or 0 for L)")
        if self.reps < 1 or self.warmup < 0:
            raise UserError(f"--reps {self.reps} / --warmup {self.warmup}: need reps >= 1 and warmup >= 0")
        if self.forward_tokens < 1:
            raise UserError(f"--forward-tokens {self.forward_tokens}: must be >= 1")
        if self.rounds < 1 or self.block < 1 or self.block_steps < 1:
            raise UserError(f"--rounds {self.rounds} / --block-size {self.block} / --block-steps {self.block_steps}: "
                            "each must be >= 1")


def timings(fn: Callable[[], Any], reps: int, warmup: int, device="cpu") -> tuple[list[float], Any, int]:
    """(seconds of each of `reps` timed calls, last result, peak memory bytes) of `fn`; the peak is taken over
    the first (warm-up) calls, which are the ones that allocate (resident memory on CPU, CUDA allocator's on GPU)."""
    with peak_memory(device) as mem:
        for _ in range(max(warmup, 1)):
            fn()
    times, result = [], None
    for _ in range(reps):
        sec, result = timed(fn, device)
        times.append(sec)
    return times, result, mem.peak


def median_time(fn: Callable[[], Any], reps: int, warmup: int, device="cpu") -> tuple[float, Any, int]:
    """(median seconds, last result, peak memory bytes) of `fn` (see `timings`)."""
    times, result, peak = timings(fn, reps, warmup, device)
    return statistics.median(times), result, peak


def _fastest(fn, reps: int, warmup: int, device="cpu") -> float:
    """Seconds of the fastest of `reps` calls after `warmup` calls: a peak is the best the machine sustains, and
    on a shared machine the median of a short burst reads low (clocks ramp up, neighbours steal cycles)."""
    return min(timings(fn, reps, warmup, device)[0])


def peak_matmul_gflops(n: int | None = None, reps: int = 30, device="cpu", dtype: str = "float32",
                       budget_s: float = 1.0) -> float:
    """GFLOP/s of the fastest n x n matmul in `dtype` on `device` (n: 8192 on a GPU; 1024 on CPU, 512 there in a
    16-bit dtype, which CPUs without bf16 / fp16 matmul units run ~100x slower). Fewer than `reps` calls (>= 3)
    where `reps` would take over `budget_s` seconds."""
    n = n or (8192 if is_cuda(device) else 1024 if dtype == "float32" else 512)
    a = torch.randn(n, n, device=device, dtype=torch_dtype(dtype))
    b = torch.randn(n, n, device=device, dtype=torch_dtype(dtype))
    timed(lambda: a @ b, device)  # the first call pays the library's set-up
    once = timed(lambda: a @ b, device)[0]
    reps = max(3, min(reps, int(budget_s / max(once, 1e-9))))
    return 2 * n**3 / _fastest(lambda: a @ b, reps, max(1, min(10, reps // 3)), device) / 1e9


def copy_bandwidth_gbs(mbytes: float | None = None, reps: int = 8, device="cpu", dtype: str = "float32") -> float:
    """Read + write GB/s of copying an `mbytes` buffer of `dtype` values on `device` (default 256 MB on CPU,
    1 GiB on a GPU; a small one stays in cache: the cache's rate)."""
    mbytes = mbytes if mbytes is not None else (1024 if is_cuda(device) else 256)
    size = element_bytes(dtype)
    src = torch.ones(max(int(mbytes * 2**20) // size, 1024), device=device, dtype=torch_dtype(dtype))
    dst = torch.empty_like(src)
    return 2 * src.numel() * size / _fastest(lambda: dst.copy_(src), reps, 2, device) / 1e9


def forward_flops(cfg: ModelConfig, batch: int, length: int, context: int | None = None) -> float:
    """FLOPs of one forward pass over batch x length tokens attending to `context` keys (default: length)."""
    d, h, v = cfg.dim, int(cfg.mlp_ratio * cfg.dim), cfg.vocab_size
    context = context or length
    per_token = cfg.n_layers * (8 * d * d + 4 * d * h + 4 * context * d) + 2 * d * v
    return batch * length * per_token


def weight_bytes(model: Transformer) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def bench_model(cfg: ModelConfig, device="cpu", dtype: str = "float32") -> Transformer:
    """A randomly initialised model (seed 0: the same weights whatever the device) on `device` in `dtype`."""
    torch.manual_seed(0)
    return Transformer(cfg).eval().to(device=device, dtype=torch_dtype(dtype))


def make_loaded(kind: str, cfg: ModelConfig, tokenizer, method: dict[str, Any], device="cpu",
                dtype: str = "float32") -> LoadedCheckpoint:
    return LoadedCheckpoint(path=None, kind=kind, model=bench_model(cfg, device, dtype), tokenizer=tokenizer,
                            config={"kind": kind, "method": method})


def forward_case(cfg: ModelConfig, bc: BenchConfig, peak: float) -> dict[str, Any]:
    model = bench_model(cfg, bc.device, bc.dtype)
    length = 256
    batch = max(1, bc.forward_tokens // length)
    x = torch.randint(0, cfg.vocab_size, (batch, length), device=bc.device)
    with torch.no_grad():
        times, _, mem = timings(lambda: model(x, attn="bidirectional"), 2 * bc.reps + 4, bc.warmup + 1,
                                bc.device)
    sec, best = statistics.median(times), min(times)
    flops = forward_flops(cfg, batch, length)
    # against the peak (the fastest matmul) the fair figure is the fastest pass; the median is reported beside it
    return {"case": "forward", "tokens": batch * length, "seconds": best, "seconds_median": sec,
            "gflops": flops / best / 1e9, "fraction_of_peak": flops / best / 1e9 / peak,
            "fraction_of_peak_median": flops / sec / 1e9 / peak, "peak_mem_mb": mem / 2**20}
