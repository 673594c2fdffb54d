"""Python API: prepare data, train base models, sample. The CLI is a thin layer over these functions.

    from paradistill import api
    recipe = api.load_recipe("tiny", ["train.max_steps=200"])
    result = api.train_model("mdlm", recipe, "runs/mdlm")
    loaded = api.load("runs/mdlm")
    samples = api.generate(loaded, num=8, sampler="ancestral", steps=32)
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .generation import GenerationResult, generate  # noqa: F401  (re-exported)
from .recipes import Recipe, load_recipe, model_config  # noqa: F401
from .train.checkpoint import LoadedCheckpoint, load_checkpoint

BASE_KINDS = ("ar", "mdlm", "bd3lm")


def load(path: str | Path, use_ema: bool = True, device: str = "cpu",
         expect_kinds: tuple[str, ...] | None = None) -> LoadedCheckpoint:
    return load_checkpoint(path, use_ema=use_ema, device=device, expect_kinds=expect_kinds)


def prepare(recipe: Recipe, progress: bool = True):
    from .data.packing import prepare_data

    d = recipe.data
    return prepare_data(d.corpus, d.tokenizer, d.seq_len, mode=d.mode, val_fraction=d.val_fraction,
                        cache_dir=d.cache_dir, num_docs=d.num_docs, seed=d.seed, num_tokens=d.num_tokens,
                        text_column=d.text_column, progress=progress)


def base_method(recipe: Recipe, kind: str) -> dict[str, Any]:
    """What a checkpoint records about how it was trained (read back by sampling and distillation)."""
    method: dict[str, Any] = {"seq_len": recipe.data.seq_len, "data_mode": recipe.data.mode,
                              "recipe": recipe.name, "keep_bos": recipe.diffusion.keep_bos and recipe.data.mode == "aligned"}
    if kind != "ar":
        method["diffusion"] = asdict(recipe.diffusion)
    return method


def build_objective(kind: str, recipe: Recipe, tokenizer):
    """(objective, method dict) for a base model kind."""
    from dataclasses import replace

    from .diffusion.objectives import ARObjective, MDLMObjective

    method = base_method(recipe, kind)
    diff = replace(recipe.diffusion, keep_bos=method["keep_bos"])
    if kind == "ar":
        return ARObjective(tokenizer.pad_id), method
    if kind == "mdlm":
        return MDLMObjective(diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id), method
    if kind == "bd3lm":
        from .diffusion.bd3lm import BD3Config, BD3Objective
        from .config import from_dict

        cfg = from_dict(BD3Config, recipe.bd3lm, where=f"recipe {recipe.name}: bd3lm")
        if recipe.data.seq_len % cfg.block_size:
            raise UserError(f"bd3lm.block_size={cfg.block_size} does not divide data.seq_len={recipe.data.seq_len}: "
                            "pick a block size that divides the sequence length")
        method["block_size"] = cfg.block_size
        method["bd3lm"] = asdict(cfg)
        return BD3Objective(cfg, diff, tokenizer.mask_id, tokenizer.pad_id, tokenizer.bos_id), method
    raise UserError(f"unknown model kind '{kind}': choose one of {', '.join(BASE_KINDS)}")


def check_recipe_for(kind: str, recipe: Recipe) -> None:
    """Cheap checks before any data is prepared."""
    if kind not in BASE_KINDS:
        raise UserError(f"unknown model kind '{kind}': choose one of {', '.join(BASE_KINDS)}")
    if kind == "bd3lm":
        from .config import from_dict
        from .diffusion.bd3lm import BD3Config

        cfg = from_dict(BD3Config, recipe.bd3lm, where=f"recipe {recipe.name}: bd3lm")
        if cfg.block_size < 1 or recipe.data.seq_len % cfg.block_size:
            raise UserError(f"bd3lm.block_size={cfg.block_size} does not divide data.seq_len={recipe.data.seq_len}: "
                            "pick a block size that divides the sequence length")


def init_weights_from(model, init: str | Path) -> None:
    """Start from another checkpoint's weights (e.g. BD3-LM fine-tuned from an MDLM)."""
    loaded = load_checkpoint(init, use_ema=True)
    src = loaded.model.state_dict()
    dst = model.state_dict()
    bad = [k for k in dst if k in src and src[k].shape != dst[k].shape]
    if bad or loaded.model.cfg.vocab_size != model.cfg.vocab_size:
        raise UserError(f"--init checkpoint '{init}' does not match this model (vocab {loaded.model.cfg.vocab_size} "
                        f"vs {model.cfg.vocab_size}; mismatched {bad[:3]}): use a checkpoint of the same architecture")
    model.load_state_dict({**dst, **{k: v for k, v in src.items() if k in dst}})


def train_model(kind: str, recipe: Recipe, out: str | Path, resume: bool = False, init: str | None = None,
                progress: bool = True, threads: int | None = None):
    from .models.transformer import Transformer
    from .train.loop import train

    if threads:
        torch.set_num_threads(threads)
    check_recipe_for(kind, recipe)
    data = prepare(recipe, progress=progress)
    objective, method = build_objective(kind, recipe, data.tokenizer)
    torch.manual_seed(recipe.train.seed)
    model = Transformer(model_config(recipe, data.tokenizer.vocab_size))
    if init:
        init_weights_from(model, init)
        method["init"] = str(init)
    return train(objective, model, data.train, data.val, recipe.train, out, data.tokenizer, method,
                 resume=resume, progress=progress)


def write_samples(path: str | Path, loaded: LoadedCheckpoint, result: GenerationResult) -> Path:
    """One JSON line per sample: text, token ids, NFE, seconds (batch time / batch size), settings."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok = loaded.tokenizer
    with open(path, "w") as f:
        for row, (nfe, sec) in zip(result.tokens.tolist(), result.per_sample()):
            rec = {"text": tok.decode(row), "tokens": row, "nfe": nfe, "seconds": sec,
                   "kind": loaded.kind, "checkpoint": str(loaded.path), **result.info}
            f.write(json.dumps(rec) + "\n")
    return path
