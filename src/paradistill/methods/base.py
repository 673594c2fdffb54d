"""Driver for the base models (AR, MDLM, BD3-LM): data, objective, model, then the shared training loop."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..diffusion.adapt import (AdaptConfig, AdaptedBD3Objective, AdaptedMDLMObjective, check_adaptable,
                              copy_ar_weights)
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


def build_objective(kind: str, recipe: Recipe, tokenizer, adapt: AdaptConfig | None = None):
    """(objective, method dict) for a base model kind; `adapt`: AR-initialised training whose attention is annealed
    from causal to the kind's own mask (diffusion/adapt.py)."""
    check_recipe_for(kind, recipe)
    method = base_method(recipe, kind)
    if get_kind(kind).autoregressive:
        return ARObjective(tokenizer.pad_id), method
    diff = replace(recipe.diffusion, keep_bos=method["keep_bos"])
    if not get_kind(kind).block:
        if adapt is not None:
            return AdaptedMDLMObjective(diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id, adapt), method
        return MDLMObjective(diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id), method
    cfg = recipe.bd3lm
    method["block_size"] = cfg.block_size
    method["bd3lm"] = asdict(cfg)
    if adapt is not None:
        return AdaptedBD3Objective(cfg, diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id, adapt), method
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


def load_ar_backbone(source):
    """The AR backbone of `--init-from-ar`: a loaded model (Python API) or any checkpoint reference of an AR kind
    whose model is this project's backbone (a paradistill AR run, an export of one, ...)."""
    if hasattr(source, "state_dict") and hasattr(source, "cfg"):
        return source
    loaded = load(source, use_ema=True, expect_kinds=kind_names(family="ar"))
    if not isinstance(loaded.model, Transformer):
        raise UserError(f"--init-from-ar '{source}' holds a {type(loaded.model).__name__}, not a paradistill backbone: "
                        "convert it first, or start from a paradistill AR run")
    return loaded.model


def train_model(kind: str, recipe: Recipe, out: str | Path, resume: bool = False, init: str | None = None,
                progress: bool = True, threads: int | None = None, init_from_ar=None):
    """Train a base model of `kind` (ar | mdlm | bd3lm) into run directory `out`; returns train.loop.TrainResult.
    `init_from_ar`: start an mdlm / bd3lm from an AR model's weights (an AR checkpoint reference or a loaded
    backbone); the recipe's `adapt` section sets the attention annealing and the output shift."""
    if threads:
        torch.set_num_threads(threads)
    check_recipe_for(kind, recipe)
    adapt = None
    if init_from_ar is not None:
        if get_kind(kind).autoregressive or init:
            raise UserError("--init-from-ar starts an mdlm or bd3lm from an AR model: drop --init, or train mdlm/bd3lm")
        adapt = recipe.adapt
        check_adaptable(kind, adapt, recipe.diffusion.keep_bos and recipe.data.mode == "aligned",
                        bool(recipe.model.get("tie_weights", True)))
        ar_model = load_ar_backbone(init_from_ar)  # before any data work
    data = prepare(recipe, progress=progress)
    objective, method = build_objective(kind, recipe, data.tokenizer, adapt)
    torch.manual_seed(recipe.train.seed)
    arch = recipe.model.get("arch")
    if arch is not None:  # LLaDA / Dream architecture: the checkpoint's kind is the architecture's
        if kind != "mdlm" or adapt is not None:
            raise UserError(f"model.arch={arch} trains with `paradistill train mdlm` (no --init-from-ar), not {kind}: "
                            "drop model.arch")
        tok = data.tokenizer
        model = DiffusionLM(model_config(recipe, tok.vocab_size, mask_id=tok.mask_id, bos_id=tok.bos_id,
                                         eos_id=tok.eos_id, pad_id=tok.pad_id))
        objective.kind = model.cfg.arch
    else:
        shift = {"output_shift": True} if adapt is not None and adapt.shift else {}
        model = Transformer(model_config(recipe, data.tokenizer.vocab_size, **shift))
    if init:
        init_weights_from(model, init)
        method["init"] = str(init)
    if adapt is not None:
        copy_ar_weights(model, ar_model, reinit_head=adapt.reinit_head)
        method["init_from_ar"] = str(init_from_ar) if isinstance(init_from_ar, (str, Path)) else type(init_from_ar).__name__
        method["adapt"] = asdict(adapt)
    return train(objective, model, data.train, data.val, recipe.train, out, data.tokenizer, method,
                 resume=resume, progress=progress)
