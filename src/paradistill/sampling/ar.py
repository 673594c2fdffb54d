"""Autoregressive generation with a preallocated KV cache (or, for comparison, full recomputation).

`compile=True` decodes into a static cache (same shapes every step, see models.transformer.KVCache) through a
`torch.compile`d forward, with a C++ wrapper on CPU so a step is one call into compiled code instead of ~100
eager operator dispatches (the cost of a batch-1 step of a small model). A step reads only the filled part of
the static cache, rounded up to a power of two (>= 128): a handful of graphs per (batch, length), and attention
over at most twice the filled keys instead of the whole buffer."""

from __future__ import annotations

import time
import weakref

import torch
import torch._dynamo

from ..errors import UserError
from .base import SampleResult, SamplingOptions
from .categorical import sample_categorical

_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> compiled forward


def compiled_forward(model):
    """The model's forward under torch.compile for static-cache decoding (built once per model, compiled on the
    first call). CPU: inductor with its C++ wrapper (needs a C++ compiler); CUDA: inductor's defaults."""
    fn = _COMPILED.get(model)
    if fn is None:
        cfg = torch._dynamo.config  # one graph per read window and shape: allow more than the default 8
        name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
        setattr(cfg, name, max(getattr(cfg, name), 64))
        on_cpu = next(model.parameters()).device.type == "cpu"
        fn = torch.compile(model.forward, fullgraph=True, dynamic=False,
                           options={"cpp_wrapper": True} if on_cpu else None)
        _COMPILED[model] = fn
    return fn


def read_window(filled: int, length: int, smallest: int = 128) -> int:
    """Keys a static-cache step reads when `filled` positions are written: the next power of two >= filled
    (at least `smallest`: fewer graphs to compile), at most the buffer `length`."""
    w = smallest
    while w < filled:
        w *= 2
    return min(w, length)


def _first_call(step, *args, **kwargs):
    try:
        return step(*args, **kwargs)
    except UserError:
        raise
    except Exception as err:  # compilation failures surface at the first call
        raise UserError(f"torch.compile of the decoding step failed ({type(err).__name__}: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); on CPU it needs a "
                        "working C++ compiler (g++ or clang): install one or sample without --compile") from err


@torch.no_grad()
def generate_ar(model, prompt: torch.Tensor, length: int, generator: torch.Generator,
                options: SamplingOptions | None = None, use_cache: bool = True,
                banned_ids: tuple[int, ...] = (), progress: bool = False, compile: bool = False,
                static_cache: bool | None = None) -> SampleResult:
    """prompt: [B, P] long (P >= 1, e.g. BOS) -> tokens [B, length]. NFE = forward passes made.

    use_cache: KV cache (False: recompute the prefix every step, for comparison). compile: static cache and a
    compiled decoding step. static_cache: the static cache without compiling (default: = compile)."""
    options = options or SamplingOptions()
    options.validate()
    bsz, plen = prompt.shape
    if plen < 1:
        raise UserError("autoregressive generation needs a prompt of at least one token (e.g. BOS)")
    if plen > length:
        raise UserError(f"prompt has {plen} tokens but the sequence length is {length}: shorten the prompt")
    if compile and not use_cache:
        raise UserError("compile=True decodes into a static KV cache: it cannot be combined with kv_cache=False")
    static = compile if static_cache is None else static_cache
    start = time.perf_counter()
    x = torch.empty(bsz, length, dtype=torch.long, device=prompt.device)
    x[:, :plen] = prompt
    banned = torch.tensor(list(banned_ids), dtype=torch.long, device=prompt.device)
    cache = model.new_cache(bsz, length, static=static) if use_cache else None
    step = compiled_forward(model) if compile else model
    if static:  # one [1] position tensor per step, made up front (no allocation inside the loop)
        steps_at = torch.arange(length, device=prompt.device).split(1)
        steps_at = [p.clone() for p in steps_at]
    nfe = 0
    logits = None
    positions = range(plen, length)
    if progress:
        from tqdm.auto import tqdm

        positions = tqdm(positions, desc="sampling (ar)", leave=False)
    for i in positions:
        if cache is None:
            logits = model(x[:, :i], attn="causal").logits[:, -1]
            nfe += 1
        elif logits is None:  # the prompt, in one eager pass
            at = torch.arange(i, device=x.device) if static else None
            if static:
                cache.window = read_window(i, length)
            logits = model(x[:, :i], attn="causal", cache=cache, cache_write=True, positions=at).logits[:, -1]
            nfe += 1
        if banned.numel():
            logits = logits.index_fill(-1, banned, float("-inf"))
        x[:, i] = sample_categorical(logits, generator, options.temperature, options.top_p)
        if cache is not None and i + 1 < length:
            if static:
                cache.window = read_window(i + 1, length)
            kwargs = {"attn": "causal", "cache": cache, "cache_write": True, "positions": steps_at[i] if static else None}
            first = compile and nfe == 1  # compilation happens (and can fail) at the first decoding step
            logits = (_first_call(step, x[:, i:i + 1], **kwargs) if first else step(x[:, i:i + 1], **kwargs)).logits[:, -1]
            nfe += 1
    return SampleResult(x, nfe, time.perf_counter() - start)
