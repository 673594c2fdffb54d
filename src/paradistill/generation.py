"""Generation from any checkpoint kind: builds the inputs (BOS, prompt, infill template), the denoiser for the
kind (from its properties in `kinds.py`), the sampler, and runs batches. Samplers stay method-agnostic; this is
the one place that dispatches."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .config import from_dict
from .distill.adjust import AdjustConfig, generate_adjust
from .distill.adjust_adapters import ParadistillAdapter
from .distill.gumbel import noise_conditioned_denoiser
from .errors import UserError
from .kinds import get_kind, kind_names, require_kind
from .loader import load_checkpoint
from .memory import check_memory, sampling_bytes
from .sampling.approx_cache import CACHE_MODES, BlockCachedDenoiser
from .sampling.ar import generate_ar
from .sampling.base import SamplingOptions, run_sampler
from .sampling.bd3lm import denoiser_for
from .sampling.padding import PaddedDenoiser, left_pad
from .sampling.registry import build_sampler

MASK_MARK = "[MASK]"


@dataclass
class GenerationResult:
    tokens: torch.Tensor  # [N, L] long
    nfe: list[int]  # per batch: full forward passes
    seconds: list[float]  # per batch wall-clock
    batch_sizes: list[int]
    info: dict[str, Any] = field(default_factory=dict)
    left_pad: list[int] = field(default_factory=list)  # with `prompts`: per row, the PAD tokens on its left

    def per_sample(self) -> list[tuple[int, float]]:
        out = []
        for nfe, sec, b in zip(self.nfe, self.seconds, self.batch_sizes):
            out += [(nfe, sec / b)] * b
        return out


def build_template(tokenizer, length: int | None, prompt: str | None = None, infill: str | None = None,
                   keep_bos: bool = True, chat: str | None = None,
                   gen_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token row [L] and fixed mask [L]: BOS, then the prompt (or an infill template in which `[MASK]` marks
    one position to generate), the rest free. `chat`: a user message through the tokenizer's chat template
    (which brings its own BOS). `gen_length`: L = the template's tokens + gen_length."""
    if sum(bool(v) for v in (prompt, infill, chat)) > 1:
        raise UserError("pass one of --prompt, --chat, --infill")
    ids: list[int] = [tokenizer.bos_id] if keep_bos and not chat else []
    if chat:
        ids += tokenizer.chat_ids(chat)
    fixed: list[bool] = [True] * len(ids)
    if prompt:
        p = tokenizer.encode(prompt)
        ids += p
        fixed += [True] * len(p)
    if infill is not None and MASK_MARK not in infill:
        raise UserError(f"--infill {infill!r} has no {MASK_MARK}: mark each position to generate with {MASK_MARK}, "
                        "or use --prompt to continue a text")
    if infill:
        parts = infill.split(MASK_MARK)
        for i, part in enumerate(parts):
            chunk = tokenizer.encode(part.strip()) if part.strip() else []
            ids += chunk
            fixed += [True] * len(chunk)
            if i < len(parts) - 1:
                ids.append(tokenizer.mask_id)
                fixed.append(False)
    if gen_length is not None:
        length = len(ids) + gen_length
    if len(ids) > length:
        raise UserError(f"prompt/template has {len(ids)} tokens but the sequence length is {length}: "
                        "shorten it or raise --length")
    row = torch.full((length,), tokenizer.mask_id, dtype=torch.long)
    row[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    fixed_row = torch.zeros(length, dtype=torch.bool)
    fixed_row[: len(fixed)] = torch.tensor(fixed, dtype=torch.bool)
    if infill and len(ids) < length:  # an infill generates its [MASK] positions only: the text ends there
        row[len(ids)] = tokenizer.eos_id
        row[len(ids) + 1:] = tokenizer.pad_id
        fixed_row[len(ids):] = True
    return row, fixed_row


@dataclass
class MethodOptions:
    """Options of particular kinds and samplers, passed to `generate` as keywords; unknown keys are an error."""
    kv_cache: bool = True  # KV caches (AR, BD3-LM); False recomputes, for comparison
    compile: bool = False  # AR: compiled decoding into a static KV cache
    stop_at_eos: bool = False  # block samplers: stop once every sample has ended
    max_length: int | None = None  # block samplers: stop after this many tokens
    noise_temperature: float | None = None  # noise-conditioned students (default: the checkpoint's)
    tokens_per_pass: int | None = None  # ADJUST: K tokens per full pass (default: the checkpoint's)
    mode: str = "adjust"  # ADJUST: "adjust" (sampler layer) or "marginal" (baseline)
    adjust_checkpoint: str | None = None  # ADJUST: a sampler trained on this base
    adaptive_threshold: float | None = None  # ADJUST: adaptive K by pick entropy (nats)
    block_cache: str | None = None  # full-attention masked models with blocks: "prefix" | "dual" approximate cache
    cache_refresh: int | None = None  # block cache: also refresh every k-th pass inside a block (1 = no cache)
    alg_temp: float | None = None  # confidence samplers: > 0 draws positions from softmax(score / alg_temp) (Dream)


def check_time_agnostic(loaded, what: str) -> None:
    """UserError when a time-conditioned model meets a sampler that assumes no time conditioning."""
    if getattr(loaded.model.cfg, "time_conditioning", False):
        raise UserError(f"checkpoint '{loaded.record.source or loaded.path}' is time-conditioned (adaLN on the "
                        f"diffusion time), but {what} assumes none: sample it as an MDLM "
                        "(loading.load(ref, format='mdlm')) or use a time-agnostic checkpoint")


def make_denoiser(loaded, batch_size: int, length: int, generator: torch.Generator, opts: MethodOptions,
                  pad: torch.Tensor | None = None):
    """The denoiser of a masked-diffusion checkpoint (noise-conditioned students draw their noise here).
    pad: [B, L] bool left pads of the batch (only for kinds where `can_left_pad` holds)."""
    kind = require_kind(loaded.kind, "a diffusion sampler", f"checkpoint '{loaded.path}'", family="diffusion")
    if kind.block:  # BD3-LM's adaLN would take one time per sequence; the block sampler has one per block
        check_time_agnostic(loaded, "the BD3-LM block sampler (one diffusion time per block)")
    if opts.block_cache is not None:
        if opts.block_cache not in CACHE_MODES:
            raise UserError(f"--block-cache {opts.block_cache!r}: choose one of {', '.join(CACHE_MODES)}")
        if kind.block:
            raise UserError(f"--block-cache is for full-attention masked models; '{loaded.path}' is a {loaded.kind} "
                            "checkpoint with its own exact block cache: drop --block-cache")
    if kind.noise_conditioned:
        return noise_conditioned_denoiser(loaded, batch_size, length, generator, opts.noise_temperature,
                                          opts.kv_cache, block_cache=opts.block_cache, cache_refresh=opts.cache_refresh)
    if opts.block_cache is not None:
        return BlockCachedDenoiser(loaded.model, loaded.tokenizer.mask_id, opts.block_cache, opts.cache_refresh)
    if pad is not None:
        return PaddedDenoiser(loaded.model, loaded.tokenizer.mask_id, pad)
    block = loaded.record.block_size if kind.block else None
    return denoiser_for(loaded.model, loaded.tokenizer.mask_id, block, use_cache=opts.kv_cache,
                        batch_size=batch_size, length=length)


_ADJUST_PARTS: dict[tuple, tuple] = {}


def adjust_parts(loaded, mode: str, adjust_checkpoint):
    """(adapter, sampler layer or None) for a loaded base (+ ADJUST checkpoint) or a loaded ADJUST checkpoint;
    the last one is kept, so batches of one call do not reload it."""
    key = (id(loaded.model), str(adjust_checkpoint), mode)
    if key in _ADJUST_PARTS:
        return _ADJUST_PARTS[key]
    if get_kind(loaded.kind).family == "sampler":
        if adjust_checkpoint:
            raise UserError(f"'{loaded.path}' already is an ADJUST checkpoint: drop --adjust, or sample its base")
        record = loaded.record
        base = type(loaded)(Path(record.base), record.base_kind, loaded.model.base,
                            loaded.tokenizer, {"method": loaded.method})
        adapter, sampler = ParadistillAdapter.from_loaded(base), loaded.model.sampler
    else:
        adapter, sampler = ParadistillAdapter.from_loaded(loaded), None
        if mode == "adjust":
            if not adjust_checkpoint:
                raise UserError("--sampler adjust needs a trained sampler: pass --adjust CKPT (from `paradistill "
                                "distill adjust`), or --adjust-mode marginal for the baseline")
            trained = load_checkpoint(adjust_checkpoint, expect_kinds=kind_names(family="sampler"))
            if trained.record.base_fingerprint != adapter.fingerprint():
                raise UserError(f"ADJUST checkpoint '{adjust_checkpoint}' was trained on another base (fingerprint "
                                f"{trained.record.base_fingerprint}, '{loaded.path}' is "
                                f"{adapter.fingerprint()}): pass the sampler trained on this base")
            sampler = trained.model.sampler
    _ADJUST_PARTS.clear()
    _ADJUST_PARTS[key] = (adapter, sampler)
    return adapter, sampler


def sample_adjust(loaded, x, fixed, generator, options, tokens_per_pass: int | None = None, mode: str = "adjust",
                  adjust_checkpoint=None, adaptive_threshold: float | None = None,
                  confidence_threshold: float | None = None):
    """One batch of ADJUST sampling (x, fixed: [B, L]) from a base + `adjust_checkpoint`, or from an ADJUST
    checkpoint; K defaults to the checkpoint's `adjust.tokens_per_pass`. `confidence_threshold` (ADJUST +
    threshold): most-confident picks, continued in a pass while the next pick's top probability is >= it."""
    adapter, layer = adjust_parts(loaded, mode, adjust_checkpoint)
    if tokens_per_pass is None:
        tokens_per_pass = from_dict(AdjustConfig, loaded.record.adjust,
                                    where=f"checkpoint '{loaded.path}': method.adjust").tokens_per_pass
    return generate_adjust(adapter, layer, x, fixed, generator, options, tokens_per_pass, mode, adaptive_threshold,
                           confidence_threshold)


def generate(loaded, num: int, length: int | None = None, sampler: str = "ancestral", steps: int = 64,
             batch_size: int = 16, seed: int = 0, prompt: str | None = None, infill: str | None = None,
             temperature: float = 1.0, top_p: float = 1.0, block_size: int | None = None,
             tokens_per_step: int | None = None, final_fill: str = "sample", progress: bool = True,
             denoiser=None, on_batch=None, threshold: float | None = None, chat: str | None = None,
             gen_length: int | None = None, prompts: list[dict] | None = None,
             **method_options) -> GenerationResult:
    """Sample `num` sequences from a loaded checkpoint (see loader.load_checkpoint). `method_options` are the
    fields of `MethodOptions` (an unknown one is an error naming the closest).

    `prompts`: a list of {"prompt": TEXT} / {"chat": TEXT}; `num` samples of each, in order (rows prompt-major).
    With `gen_length` their templates differ in length: they are left-padded to the longest and batched together,
    the pads hidden from the model (sampling/padding.py; `result.left_pad` gives each row's pads); kinds that
    cannot hide pads (AR, BD3-LM, ADJUST, noise-conditioned, --block-cache, a custom denoiser) batch only
    neighbouring prompts of equal length. With `length`, every template has that length and needs no pad.

    `denoiser`: an object like sampling.base.Denoiser (`(x, t) -> log-probs`, `.mask_id`, `.time_conditioned`)
    used in place of the checkpoint's own (diffusion checkpoints; research on samplers and targets, e.g. an oracle
    student); the checkpoint still gives the tokenizer and the template. `threshold`: the parameter of the
    adaptive samplers (threshold: tau, factor: f, eb: gamma; adjust: a confidence threshold).
    `on_batch(tokens [b, L], nfe, seconds)`: called after each finished batch (e.g. to keep them on Ctrl-C)."""
    opts = from_dict(MethodOptions, {k: str(v) if isinstance(v, Path) else v for k, v in method_options.items()},
                     where="generate options")
    if num < 1:
        raise UserError(f"num={num}: must be >= 1")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: must be >= 1")
    if steps < 1:
        raise UserError(f"steps={steps}: must be >= 1")
    if block_size is not None and block_size < 1:
        raise UserError(f"--block-size {block_size}: must be >= 1 (omit it for the checkpoint's own)")
    if prompts is not None and (prompt or chat or infill):
        raise UserError("pass the prompts either one by one (--prompt / --chat / --infill) or as a file "
                        "(--prompts), not both")
    if prompts is not None and not prompts:
        raise UserError("prompts=[]: pass at least one {'prompt': TEXT} or {'chat': TEXT}")
    tok = loaded.tokenizer
    if tok is None:
        raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: it cannot be sampled")
    kind = get_kind(loaded.kind, where=f"checkpoint '{loaded.path}'")
    joint = sampler == "adjust" or kind.family == "sampler"  # ADJUST: K picks per full pass
    record = loaded.record
    if length is not None and length < 2:
        raise UserError(f"--length {length}: must be >= 2 (omit it to use the training length {record.seq_len})")
    length = length or record.seq_len
    max_len = int(getattr(getattr(loaded.model, "cfg", None), "max_len", None) or length)
    if length > max_len:
        raise UserError(f"--length {length} exceeds the {max_len} positions checkpoint '{loaded.path}' supports "
                        f"(trained at {record.seq_len}): pass --length <= {max_len}")
    specs = prompts if prompts is not None else [{"prompt": prompt, "chat": chat, "infill": infill}]
    templates = []
    for spec in specs:
        keep_bos = record.keep_bos
        if kind.autoregressive and not spec.get("prompt"):
            keep_bos = True  # an AR model needs a first token; BOS starts every document of its stream (wrap/pad)
        templates.append(build_template(tok, length, spec.get("prompt"), spec.get("infill"), keep_bos,
                                        spec.get("chat"), gen_length))
    x_all, fixed_all, pad_all = left_pad([r for r, _ in templates], [f for _, f in templates], tok.pad_id)
    length = x_all.shape[1]
    context = getattr(loaded.model.cfg, "max_len", None)
    if context is not None and length > context:
        raise UserError(f"prompt + generation take {length} tokens but '{loaded.path}' has a context of {context}: "
                        "shorten the prompt or lower --length / --gen-length")
    # PAD is a token only for models trained on padded rows; elsewhere it is never drawn
    pad_is_token = record.data_mode == "pad" or tok.pad_id in (tok.bos_id, tok.eos_id)
    options = SamplingOptions(temperature, top_p, final_fill, () if pad_is_token else (tok.pad_id,))
    options.validate()
    generator = torch.Generator().manual_seed(seed)
    device = next(loaded.model.parameters()).device
    check_memory(sampling_bytes(min(batch_size, num * len(specs)), length, loaded.model.cfg.vocab_size),
                 f"sampling a batch of {min(batch_size, num * len(specs))} x {length} tokens over "
                 f"{loaded.model.cfg.vocab_size} vocabulary entries", "lower --batch-size", device)
    rows = torch.arange(len(specs)).repeat_interleave(num)  # template of each output row, prompt-major
    pads = pad_all.sum(1)[rows]
    if can_left_pad(kind, joint, opts, denoiser):
        batches = [(b, min(b + batch_size, len(rows))) for b in range(0, len(rows), batch_size)]
    else:  # runs of neighbouring rows of equal template and prompt length: no pads enter a batch (AR needs both)
        key = pads * (length + 1) + fixed_all.long().cumprod(1).sum(1)[rows]
        batches, b = [], 0
        while b < len(rows):
            e = b + 1
            while e < len(rows) and e - b < batch_size and key[e] == key[b]:
                e += 1
            batches.append((b, e))
            b = e
    batches = [(b, e, int(pads[b:e].min())) for b, e in batches]  # cut: pad columns all rows of a batch share
    plans: dict[int, Any] = {}  # per batch width, before any work: a bad request fails before the first batch
    for b, e, cut in batches:
        width = length - cut
        if width not in plans:
            # with --gen-length, blocks tile the generated part (LLaDA's block_length); BD3-LM keeps its trained grid
            start = width - gen_length if gen_length is not None and not kind.block else 0
            plans[width] = _plan(loaded, kind, joint, sampler, width, block_size, tokens_per_step, opts, denoiser,
                                 fixed_all[rows[b:e], cut:], threshold, start)
    out, nfes, secs, sizes = [], [], [], []
    extras = []  # per batch: sampler-specific counts (e.g. ADJUST sampler passes)
    if progress:
        batches = tqdm(batches, desc=f"generate {loaded.kind}", leave=False)
    for b, e, cut in batches:
        x = x_all[rows[b:e], cut:].to(device)
        fixed = fixed_all[rows[b:e], cut:].to(device)
        pad = pad_all[rows[b:e], cut:].to(device)
        width = x.shape[1]
        t0 = time.perf_counter()
        result = _sample_batch(loaded, kind, joint, plans[width], x, fixed, generator, steps, options, opts,
                               denoiser, threshold, pad if bool(pad.any()) else None)
        secs.append(time.perf_counter() - t0)
        tokens = result.tokens.cpu()
        if cut:
            tokens = torch.cat([torch.full((e - b, cut), tok.pad_id, dtype=tokens.dtype), tokens], 1)
        out.append(tokens)
        nfes.append(result.nfe)
        extras.append(dict(getattr(result, "extra", None) or {}))
        sizes.append(e - b)
        if on_batch is not None:
            on_batch(out[-1], nfes[-1], secs[-1])
    info = {"sampler": "ar" if kind.autoregressive else sampler, "steps": steps, "length": length}
    if any(extras):
        info["batch_extra"] = extras
    return GenerationResult(torch.cat(out), nfes, secs, sizes, info,
                            pads.tolist() if prompts is not None else [])


def can_left_pad(kind, joint: bool, opts: MethodOptions, denoiser=None) -> bool:
    """Whether rows of different prompts can share a batch with hidden left pads: a plain full-attention
    diffusion denoiser (its backbone takes a per-row attention mask and positions)."""
    return (kind.family == "diffusion" and not kind.block and not kind.noise_conditioned and not joint
            and opts.block_cache is None and denoiser is None)


def _plan(loaded, kind, joint, sampler, length, block_size, tokens_per_step, opts, denoiser, fixed,
          threshold: float | None = None, start: int = 0):
    """Checks the request before any work; the diffusion sampler object (None for AR / ADJUST).
    fixed: [B, L] bool template rows."""
    tok = loaded.tokenizer
    if opts.alg_temp is not None and (kind.autoregressive or joint):
        raise UserError(f"--alg-temp chooses positions for the confidence samplers; '{loaded.path}' is sampled as "
                        f"{'adjust' if joint else loaded.kind}: drop --alg-temp")
    if opts.compile and not kind.autoregressive:
        raise UserError(f"--compile applies to autoregressive checkpoints; '{loaded.path}' is a {loaded.kind} "
                        "checkpoint: drop --compile")
    if denoiser is not None and (kind.autoregressive or joint):
        raise UserError(f"a custom denoiser replaces a diffusion model's; '{loaded.path}' is sampled as "
                        f"{'adjust' if joint else loaded.kind}: use a diffusion checkpoint")
    if kind.autoregressive:
        prefix = fixed.long().cumprod(1).sum(1)  # [B]
        if any(bool(fixed[i, int(p):].any()) for i, p in enumerate(prefix)):
            raise UserError("an autoregressive model supports prompts, not infilling templates: use a diffusion model")
        if bool((prefix != prefix[0]).any()):
            raise UserError("rows of one autoregressive batch must share their prompt length: group them by length")
        return None
    if joint:
        adjust_parts(loaded, opts.mode, opts.adjust_checkpoint)  # bad --adjust / base before any work
        return None
    block = block_size or (loaded.record.block_size if kind.block else None)
    if block is not None and (length - start) % block:
        raise UserError(f"block_size={block} does not divide the {'generation' if start else 'sequence'} "
                        f"length {length - start}: pick a block size that divides it")
    if opts.block_cache is not None and block is None:
        raise UserError(f"--block-cache {opts.block_cache} caches finished blocks: it needs semi-autoregressive "
                        "decoding, pass --block-size (e.g. 32)")
    return build_sampler(sampler, block_size=block, tokens_per_step=tokens_per_step,
                         eos_id=tok.eos_id if opts.stop_at_eos else None, pad_id=tok.pad_id,
                         max_length=opts.max_length, threshold=threshold, block_start=start, alg_temp=opts.alg_temp)


def _sample_batch(loaded, kind, joint, diffusion_sampler, x, fixed, generator, steps, options, opts, denoiser,
                  threshold: float | None = None, pad: torch.Tensor | None = None):
    """One batch x, fixed: [B, L] (pad: [B, L] bool left pads, or None) through the kind's sampler -> SampleResult."""
    if kind.autoregressive:
        return _generate_ar(loaded, x, fixed, x.shape[1], generator, options, opts)
    if joint:
        return sample_adjust(loaded, x, fixed, generator, options, opts.tokens_per_pass, opts.mode,
                             opts.adjust_checkpoint, opts.adaptive_threshold, threshold)
    den = denoiser if denoiser is not None else make_denoiser(loaded, x.shape[0], x.shape[1], generator, opts,
                                                              pad)
    return run_sampler(diffusion_sampler, den, x, fixed, generator, steps, options)


def sample_rows(loaded, x: torch.Tensor, fixed: torch.Tensor, sampler: str = "ancestral", steps: int = 64,
                generator: torch.Generator | None = None, temperature: float = 1.0, top_p: float = 1.0,
                block_size: int | None = None, tokens_per_step: int | None = None, final_fill: str = "sample",
                threshold: float | None = None, pad: torch.Tensor | None = None, **method_options):
    """One batch of caller-built template rows (x, fixed: [B, L]; e.g. a different prompt per row, as an
    evaluation harness needs) through the same dispatch as `generate`. Autoregressive rows must share their
    prompt length. pad: [B, L] bool left pads (sampling/padding.left_pad; fixed there), hidden from the model.
    Returns a sampling.base.SampleResult (tokens [B, L])."""
    opts = from_dict(MethodOptions, dict(method_options), where="generate options")
    if loaded.tokenizer is None:
        raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: it cannot be sampled")
    if steps < 1:
        raise UserError(f"steps={steps}: must be >= 1")
    kind = get_kind(loaded.kind, where=f"checkpoint '{loaded.path}'")
    joint = sampler == "adjust" or kind.family == "sampler"
    tok, record = loaded.tokenizer, loaded.record
    pad_is_token = record.data_mode == "pad" or tok.pad_id in (tok.bos_id, tok.eos_id)
    options = SamplingOptions(temperature, top_p, final_fill, () if pad_is_token else (tok.pad_id,))
    options.validate()
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    if pad is not None and bool(pad.any()) and not can_left_pad(kind, joint, opts):
        raise UserError(f"left-padded rows need a full-attention diffusion model; '{loaded.path}' is sampled as "
                        f"{'adjust' if joint else loaded.kind}: batch rows of equal template length instead")
    plan = _plan(loaded, kind, joint, sampler, x.shape[1], block_size, tokens_per_step, opts, None, fixed, threshold)
    return _sample_batch(loaded, kind, joint, plan, x, fixed, generator, steps, options, opts, None, threshold,
                         pad if pad is not None and bool(pad.any()) else None)


def _generate_ar(loaded, x, fixed, length, generator, options, opts: MethodOptions):
    prefix = int(fixed[0].long().cumprod(0).sum())
    tok = loaded.tokenizer
    return generate_ar(loaded.model, x[:, :prefix], length, generator, options, use_cache=opts.kv_cache,
                       banned_ids=(tok.mask_id, *options.banned_ids), compile=opts.compile)
