"""Generation from any checkpoint kind: builds the inputs (BOS, prompt, infill template), the denoiser for the
kind, the sampler, and runs batches. Samplers stay method-agnostic; this is the one place that dispatches."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import UserError
from .sampling.base import Denoiser, SamplingOptions, run_sampler
from .sampling.registry import build_sampler

MASK_MARK = "[MASK]"


@dataclass
class GenerationResult:
    tokens: torch.Tensor  # [N, L] long
    nfe: list[int]  # per batch: full forward passes
    seconds: list[float]  # per batch wall-clock
    batch_sizes: list[int]
    info: dict[str, Any] = field(default_factory=dict)

    def per_sample(self) -> list[tuple[int, float]]:
        out = []
        for nfe, sec, b in zip(self.nfe, self.seconds, self.batch_sizes):
            out += [(nfe, sec / b)] * b
        return out


def build_template(tokenizer, length: int, prompt: str | None = None, infill: str | None = None,
                   keep_bos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Token row [L] and fixed mask [L]: BOS, then the prompt (or an infill template in which `[MASK]` marks
    one position to generate), the rest free."""
    if prompt and infill:
        raise UserError("pass either --prompt or --infill, not both")
    ids: list[int] = [tokenizer.bos_id] if keep_bos else []
    fixed: list[bool] = [True] * len(ids)
    if prompt:
        p = tokenizer.encode(prompt)
        ids += p
        fixed += [True] * len(p)
    if infill:
        parts = infill.split(MASK_MARK)
        for i, part in enumerate(parts):
            chunk = tokenizer.encode(part.strip()) if part.strip() else []
            ids += chunk
            fixed += [True] * len(chunk)
            if i < len(parts) - 1:
                ids.append(tokenizer.mask_id)
                fixed.append(False)
    if len(ids) > length:
        raise UserError(f"prompt/template has {len(ids)} tokens but the sequence length is {length}: "
                        "shorten it or raise --length")
    row = torch.full((length,), tokenizer.mask_id, dtype=torch.long)
    row[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    fixed_row = torch.zeros(length, dtype=torch.bool)
    fixed_row[: len(fixed)] = torch.tensor(fixed, dtype=torch.bool)
    return row, fixed_row


def make_denoiser(loaded, batch_size: int, length: int, generator: torch.Generator, options: dict[str, Any]):
    """The denoiser for a checkpoint kind (noise-conditioned students draw their noise here)."""
    kind = loaded.kind
    mask_id = loaded.tokenizer.mask_id
    if kind == "mdlm":
        return Denoiser(loaded.model, mask_id)
    if kind == "bd3lm":
        from .sampling.bd3lm import BD3Denoiser

        return BD3Denoiser(loaded.model, mask_id, block_size=int(loaded.method["block_size"]),
                           use_cache=options.get("kv_cache", True), batch_size=batch_size, length=length)
    if kind.startswith("gd-"):
        from .distill.gumbel import noise_conditioned_denoiser

        return noise_conditioned_denoiser(loaded, batch_size, length, generator, options)
    raise UserError(f"checkpoint kind '{kind}' cannot be sampled with a diffusion sampler")


def generate(loaded, num: int, length: int | None = None, sampler: str = "ancestral", steps: int = 64,
             batch_size: int = 16, seed: int = 0, prompt: str | None = None, infill: str | None = None,
             temperature: float = 1.0, top_p: float = 1.0, block_size: int | None = None,
             tokens_per_step: int | None = None, final_fill: str = "sample", progress: bool = True,
             denoiser=None, **method_options) -> GenerationResult:
    """Sample `num` sequences from a loaded checkpoint (see train.checkpoint.load_checkpoint).

    `denoiser`: an object like sampling.base.Denoiser (`(x, t) -> log-probs`, `.mask_id`, `.time_conditioned`)
    used in place of the checkpoint's own (diffusion checkpoints; research on samplers and targets, e.g. an oracle
    student); the checkpoint still gives the tokenizer and the template."""
    if num < 1:
        raise UserError(f"num={num}: must be >= 1")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: must be >= 1")
    if steps < 1:
        raise UserError(f"steps={steps}: must be >= 1")
    tok = loaded.tokenizer
    if tok is None:
        raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: it cannot be sampled")
    length = length or int(loaded.config.get("method", {}).get("seq_len", 64))
    keep_bos = bool(loaded.method.get("keep_bos", True))
    if loaded.kind == "ar" and not prompt:
        keep_bos = True  # an AR model needs a first token; BOS starts every document of its stream (wrap/pad too)
    row, fixed_row = build_template(tok, length, prompt, infill, keep_bos)
    # PAD is a token only for models trained on padded rows; elsewhere it is never drawn
    pad_is_token = loaded.method.get("data_mode") == "pad" or tok.pad_id in (tok.bos_id, tok.eos_id)
    options = SamplingOptions(temperature, top_p, final_fill, () if pad_is_token else (tok.pad_id,))
    options.validate()
    generator = torch.Generator().manual_seed(seed)
    device = next(loaded.model.parameters()).device
    from .memory import check_memory, sampling_bytes

    check_memory(sampling_bytes(min(batch_size, num), length, loaded.model.cfg.vocab_size),
                 f"sampling a batch of {min(batch_size, num)} x {length} tokens over {loaded.model.cfg.vocab_size} "
                 "vocabulary entries", "lower --batch-size", device)
    diffusion_sampler = None
    if method_options.get("compile") and loaded.kind != "ar":
        raise UserError(f"--compile applies to autoregressive checkpoints; '{loaded.path}' is a {loaded.kind} "
                        "checkpoint: drop --compile")
    if denoiser is not None and (loaded.kind == "ar" or sampler == "adjust" or loaded.kind == "adjust"):
        raise UserError(f"a custom denoiser replaces a diffusion model's; '{loaded.path}' is sampled as "
                        f"{'adjust' if sampler == 'adjust' else loaded.kind}: use a diffusion checkpoint")
    if loaded.kind == "ar":
        prefix = int(fixed_row.long().cumprod(0).sum())
        if bool(fixed_row[prefix:].any()):
            raise UserError("an autoregressive model supports prompts, not infilling templates: use a diffusion model")
    elif sampler != "adjust" and loaded.kind != "adjust":
        kind_block = int(loaded.method.get("block_size", 0)) if loaded.kind in ("bd3lm", "gd-bd3lm") else 0
        block = block_size or (kind_block or None)
        if block is not None and length % block:
            raise UserError(f"block_size={block} does not divide the sequence length {length}")
        diffusion_sampler = build_sampler(sampler, block_size=block, tokens_per_step=tokens_per_step,
                                          eos_id=tok.eos_id if method_options.get("stop_at_eos") else None,
                                          pad_id=tok.pad_id, max_length=method_options.get("max_length"))
    out, nfes, secs, sizes = [], [], [], []
    extras = []  # per batch: sampler-specific counts (e.g. ADJUST sampler passes)
    batches = range(0, num, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"generate {loaded.kind}", leave=False)
    for start in batches:
        b = min(batch_size, num - start)
        x = row.expand(b, -1).clone().to(device)
        fixed = fixed_row.expand(b, -1).clone().to(device)
        t0 = time.perf_counter()
        if loaded.kind == "ar":
            result = _generate_ar(loaded, x, fixed, length, generator, options, method_options)
        elif sampler == "adjust" or loaded.kind == "adjust":
            from .distill.adjust import generate_adjust

            result = generate_adjust(loaded, x, fixed, generator, options, steps=steps, **method_options)
        else:
            den = denoiser if denoiser is not None else make_denoiser(loaded, b, length, generator, method_options)
            result = run_sampler(diffusion_sampler, den, x, fixed, generator, steps, options)
        secs.append(time.perf_counter() - t0)
        out.append(result.tokens.cpu())
        nfes.append(result.nfe)
        extras.append(dict(getattr(result, "extra", None) or {}))
        sizes.append(b)
    info = {"sampler": sampler if loaded.kind != "ar" else "ar", "steps": steps, "length": length}
    if any(extras):
        info["batch_extra"] = extras
    return GenerationResult(torch.cat(out), nfes, secs, sizes, info)


def _generate_ar(loaded, x, fixed, length, generator, options, method_options):
    from .sampling.ar import generate_ar

    prefix = int(fixed[0].long().cumprod(0).sum())
    tok = loaded.tokenizer
    return generate_ar(loaded.model, x[:, :prefix], length, generator, options,
                       use_cache=method_options.get("kv_cache", True), banned_ids=(tok.mask_id, *options.banned_ids),
                       compile=bool(method_options.get("compile", False)))
