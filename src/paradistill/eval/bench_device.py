"""Where the speed benchmark runs: the device and dtype options, timing that waits for the device, and the peak
memory of a case on it (resident memory on CPU, the CUDA allocator's high-water mark on a GPU)."""

from __future__ import annotations

import os
import platform
import threading
import time
from typing import Any, Callable

import torch

from ..errors import UserError
from ..models.transformer import decode_allows_cudnn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # as in "peak bf16 matmul"
DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; any other name unchanged."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def check_device(name: str, dtype: str) -> str:
    """The device the benchmark will use (UserError for an unknown or unusable one, or an unknown dtype)."""
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}")
    device = resolve_device(name)
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda") or (kind == "cpu" and device != "cpu"):
        raise UserError(f"--device {name}: choose one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: torch sees no CUDA GPU here (torch {torch.__version__}): "
                        "pass --device cpu (or auto), or run on a machine with a GPU and a CUDA build of torch")
    return device


def torch_dtype(name: str) -> torch.dtype:
    return DTYPES[name]


def element_bytes(name: str) -> int:
    """Bytes per value of a weight / KV-cache entry in this dtype (4 for float32, 2 for bfloat16 / float16)."""
    return torch.tensor([], dtype=DTYPES[name]).element_size()


def is_cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def sync(device) -> None:
    """Wait for the work queued on `device` (CUDA kernels run asynchronously); nothing to wait for on CPU."""
    if is_cuda(device):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device="cpu") -> tuple[float, Any]:
    """(seconds, result) of one call of `fn`; on a GPU the queued work is waited for before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


class PeakRSS:
    """Peak resident memory (bytes) above the level at entry. The heap is trimmed first (glibc malloc_trim) so
    memory freed by earlier cases is returned, and the kernel's high-water mark (VmHWM) is reset through
    /proc/self/clear_refs; a polling thread is the fallback where those are unavailable."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    @staticmethod
    def _trim() -> None:
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    @staticmethod
    def _status(field_name: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field_name + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self.page
        except OSError:
            return 0

    def __enter__(self):
        self._trim()
        self.hwm_reset = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            pass
        self.base = self._rss()
        self.peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)
        hwm = self._status("VmHWM") if self.hwm_reset else None
        if hwm is not None:
            self.peak = max(self.peak, hwm - self.base)


class PeakCUDA:
    """Peak bytes the CUDA caching allocator handed out inside the block, above what was allocated at entry;
    the same `.peak` interface as PeakRSS."""

    def __init__(self, device="cuda"):
        self.device, self.peak, self.base = torch.device(device), 0, 0

    def __enter__(self):
        sync(self.device)
        self.base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.peak = 0
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.peak = max(0, torch.cuda.max_memory_allocated(self.device) - self.base)


def peak_memory(device="cpu"):
    """The peak-memory context manager for `device`: PeakRSS on CPU, PeakCUDA on a GPU."""
    return PeakCUDA(device) if is_cuda(device) else PeakRSS()


def device_name(device) -> str:
    """The GPU's name on CUDA (e.g. 'NVIDIA H200'); on CPU the processor's model name where Linux tells it."""
    if is_cuda(device):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def machine_info(device, dtype: str) -> dict:
    """What results['machine'] records about where the benchmark ran, beside the platform and threads."""
    info = {"device": str(device), "device_name": device_name(device), "dtype": dtype,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if is_cuda(device):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(cuda_version=torch.version.cuda, gpu_memory_bytes=props.total_memory,
                    multiprocessors=props.multi_processor_count,
                    # the SDPA backends of eager decoding into a dynamic KV cache
                    decode_attention="pytorch choice" if decode_allows_cudnn() else "without cuDNN")
    return info
