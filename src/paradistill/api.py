"""Python API: prepare data, train base models, distil, sample. The CLI is a thin layer over these functions.

    from paradistill import api
    recipe = api.load_recipe("tiny", ["train.max_steps=200"])
    result = api.train_model("mdlm", recipe, "runs/mdlm")
    loaded = api.load("runs/mdlm")
    samples = api.generate(loaded, num=8, sampler="ancestral", steps=32)
    api.distill_sdtt("runs/mdlm", recipe, "runs/sdtt")           # also distill_gumbel, distill_adjust
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import LoadedCheckpoint
from .generation import GenerationResult, generate  # noqa: F401  (re-exported)
from .io import atomic_write_jsonl
from .loader import load_checkpoint  # noqa: F401  (re-exported)
from .loading import load as load_any
from .methods.adjust import distill_adjust, train_adjust  # noqa: F401
from .methods.base import (  # noqa: F401
    BASE_KINDS,
    base_method,
    build_objective,
    check_recipe_for,
    init_weights_from,
    prepare,
    train_model,
)
from .methods.gumbel import distill_gumbel  # noqa: F401
from .methods.sdtt import distill_rounds, distill_sdtt  # noqa: F401
from .methods.teachers import load_teacher  # noqa: F401
from .recipes import Recipe, load_recipe, model_config  # noqa: F401


def load(path: str | Path, use_ema: bool = True, device: str = "cpu",
         expect_kinds: tuple[str, ...] | None = None, **options) -> LoadedCheckpoint:
    """Any checkpoint reference, built for its kind (see `kinds.py`): a run / checkpoint directory, a Hugging Face
    directory or weights file, or hf:ORG/NAME[@REVISION] (see `loading/`; options: n_heads, block_size, ...)."""
    return load_any(path, use_ema=use_ema, device=device, expect_kinds=expect_kinds, **options)


def write_samples(path: str | Path, loaded: LoadedCheckpoint, result: GenerationResult) -> Path:
    """One JSON line per sample: text, token ids, NFE, seconds (batch time / batch size), settings; written
    atomically."""
    tok = loaded.tokenizer
    ckpt = str(Path(loaded.path).absolute())  # absolute: the file reads the same from any working directory
    records = ({"text": tok.decode(row), "tokens": row, "nfe": nfe, "seconds": sec, "kind": loaded.kind,
                "checkpoint": ckpt, **result.info}
               for row, (nfe, sec) in zip(result.tokens.tolist(), result.per_sample()))
    return atomic_write_jsonl(path, records)  # a crash or a full disk leaves the previous file intact
