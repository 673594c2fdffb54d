"""Driver for the base models (AR, MDLM, BD3-LM): data, objective, model, then the shared training loop."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..diffusion.bd3lm import BD3Objective
from ..diffusion.objectives import ARObjective, MDLMObjective
from ..errors import UserError
from ..kinds import get_kind, kind_names
from ..loading import load
from ..models.dlm import DiffusionLM
from ..models.transformer import Transformer
from ..recipes import Recipe, model_config, prepare
from ..train.loop import train

BASE_KINDS = ("ar", "mdlm", "bd3lm")


def base_method(recipe: Recipe, kind: str) -> dict[str, Any]:
    """What a checkpoint records about how it was trained (read back by sampling and distillation)."""
    method: dict[str, Any] = {"seq_len": recipe.data.seq_len, "data_mode": recipe.data.mode,
                              "recipe": recipe.name, "keep_bos": recipe.diffusion.keep_bos and recipe.data.mode == "aligned"}
    if get_kind(kind).diffusion:
        method["diffusion"] = asdict(recipe.diffusion)
    return method


def check_recipe_for(kind: str, recipe: Recipe) -> None:
    """Cheap checks before any data is prepared."""
    if kind not in BASE_KINDS:
        raise UserError(f"unknown model kind '{kind}': choose one of {', '.join(BASE_KINDS)}")
    if get_kind(kind).block and recipe.data.seq_len % recipe.bd3lm.block_size:
        raise UserError(f"bd3lm.block_size={recipe.bd3lm.block_size} does not divide data.seq_len="
                        f"{recipe.data.seq_len}: pick a block size that divides the sequence length")


def build_objective(kind: str, recipe: Recipe, tokenizer):
    """(objective, method dict) for a base model kind."""
    check_recipe_for(kind, recipe)
    method = base_method(recipe, kind)
    if get_kind(kind).autoregressive:
        return ARObjective(tokenizer.pad_id), method
    diff = replace(recipe.diffusion, keep_bos=method["keep_bos"])
    if not get_kind(kind).block:
        return MDLMObjective(diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id), method
    cfg = recipe.bd3lm
    method["block_size"] = cfg.block_size
    method["bd3lm"] = asdict(cfg)
    return BD3Objective(cfg, diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id), method


def init_weights_from(model, init: str | Path) -> None:
    """Start from another checkpoint's weights (e.g. BD3-LM fine-tuned from an MDLM, a Gumbel student from
    hf:kuleshov-group/bd3lm-owt-block_size4). Every tensor of `init` must exist in `model` with its shape."""
    loaded = load(init, use_ema=True, expect_kinds=kind_names(family="ar") + kind_names(family="diffusion"))
    src = loaded.model.state_dict()
    dst = model.state_dict()
    bad = [k for k in dst if k in src and src[k].shape != dst[k].shape] + [k for k in src if k not in dst]
    if bad or loaded.model.cfg.vocab_size != model.cfg.vocab_size:
        raise UserError(f"--init checkpoint '{init}' does not match this model (vocab {loaded.model.cfg.vocab_size} "
                        f"vs {model.cfg.vocab_size}; mismatched {bad[:3]}): use a checkpoint of the same architecture")
    model.load_state_dict({**dst, **{k: v for k, v in src.items() if k in dst}})


def train_model(kind: str, recipe: Recipe, out: str | Path, resume: bool = False, init: str | None = None,
                progress: bool = True, threads: int | None = None):
    """Train a base model of `kind` (ar | mdlm | bd3lm) into run directory `out`; returns train.loop.TrainResult."""
    if threads:
        torch.set_num_threads(threads)
    check_recipe_for(kind, recipe)
    data = prepare(recipe, progress=progress)
    objective, method = build_objective(kind, recipe, data.tokenizer)
    torch.manual_seed(recipe.train.seed)
    arch = recipe.model.get("arch")
    if arch is not None:  # LLaDA / Dream architecture: the checkpoint's kind is the architecture's
        if kind != "mdlm":
            raise UserError(f"model.arch={arch} trains with `paradistill train mdlm`, not {kind}: drop model.arch")
        tok = data.tokenizer
        model = DiffusionLM(model_config(recipe, tok.vocab_size, mask_id=tok.mask_id, bos_id=tok.bos_id,
                                         eos_id=tok.eos_id, pad_id=tok.pad_id))
        objective.kind = model.cfg.arch
    else:
        model = Transformer(model_config(recipe, data.tokenizer.vocab_size))
    if init:
        init_weights_from(model, init)
        method["init"] = str(init)
    return train(objective, model, data.train, data.val, recipe.train, out, data.tokenizer, method,
                 resume=resume, progress=progress)
