"""Named recipes (YAML in paradistill/recipes/) mapped onto dataclasses, with `key=value` overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .config import apply_overrides, check_ranges, closest_hint, from_dict, load_yaml
from .data.packing import prepare_data
from .diffusion.adapt import AdaptConfig
from .diffusion.bd3lm import BD3Config
from .diffusion.objectives import DiffusionConfig
from .distill.adjust import AdjustConfig
from .distill.gumbel import GumbelConfig
from .distill.sdtt import SDTTConfig
from .errors import UserError
from .models.dlm import DLMConfig
from .models.transformer import ModelConfig
from .train.config import TrainConfig


@dataclass
class DataConfig:
    corpus: str = "builtin"
    tokenizer: str = "builtin"
    seq_len: int = 64
    mode: str = "aligned"
    val_fraction: float = 0.05
    val_last_docs: int | None = None  # the last N documents are the validation split (MDLM OpenWebText: 100000)
    num_tokens: int | None = None
    num_docs: int | None = None
    seed: int = 0
    cache_dir: str | None = None
    text_column: str | None = None

    def validate(self) -> None:
        if self.seq_len < 2:
            raise UserError(f"data.seq_len={self.seq_len}: must be >= 2")
        modes = ("aligned", "wrap", "pad", "wrap-mdlm", "wrap-raw")
        if self.mode not in modes:
            raise UserError(f"data.mode={self.mode!r}: choose one of {', '.join(modes)}")
        check_ranges(self, "data", {"val_fraction": (0, "<1"), "num_tokens": (1, None), "num_docs": (1, None),
                                    "seed": (0, None)})


@dataclass
class SampleConfig:
    """The recipe's recommended sampling settings (what `paradistill recipes` shows a user)."""
    num: int = 64
    steps: int = 64

    def validate(self) -> None:
        if self.num < 1 or self.steps < 1:
            raise UserError(f"sample.num={self.num}, sample.steps={self.steps}: both must be >= 1")


@dataclass
class Recipe:
    """A named configuration; every section is a typed dataclass validated when the recipe loads."""
    name: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig without vocab_size (from the tokenizer)
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    bd3lm: BD3Config = field(default_factory=BD3Config)
    gumbel: GumbelConfig = field(default_factory=GumbelConfig)
    sdtt: SDTTConfig = field(default_factory=SDTTConfig)
    adjust: AdjustConfig = field(default_factory=AdjustConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # AR -> diffusion adaptation (diffusion/adapt.py)
    teacher: str | None = None  # default --teacher of `distill` (any checkpoint reference, e.g. hf:...)
    init: str | None = None  # default --init (e.g. hf:kuleshov-group/bd3lm-owt-block_size4)
    student: str | None = None  # default --student of `distill gumbel` (mdlm | bd3lm)

    def validate(self) -> None:
        """The model section up front too (the typed sections validate themselves), with a stand-in vocabulary
        size: the real one comes from the tokenizer, but a bad `model.dropout` must fail in --dry-run."""
        noise_vocab = self.model.get("noise_vocab")  # a stand-in must hold every id the section refers to
        stand_in = max(_STAND_IN_VOCAB, noise_vocab if isinstance(noise_vocab, int) else 0)
        model_config(self, vocab_size=stand_in)


_STAND_IN_VOCAB = 256


def recipe_names() -> list[str]:
    folder = resources.files("paradistill") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def is_recipe_file(name_or_file: str) -> bool:
    """A recipe argument is a file path only if it ends in .yaml / .yml or contains a path separator; a file or
    folder that happens to be called like a built-in recipe (e.g. an earlier `--out tiny`) never hides it."""
    text = str(name_or_file)
    return text.endswith((".yaml", ".yml")) or "/" in text or (os.sep != "/" and os.sep in text)


def recipe_path(name_or_file: str) -> Path:
    p = Path(name_or_file)
    if is_recipe_file(name_or_file):
        return p
    names = recipe_names()
    if name_or_file not in names:
        raise UserError(f"unknown recipe '{name_or_file}'{closest_hint(name_or_file, names)}: "
                        f"choose one of {', '.join(names)} or pass a YAML file")
    return Path(str(resources.files("paradistill") / "recipes" / f"{name_or_file}.yaml"))


def load_recipe(name_or_file: str = "tiny", overrides: list[str] | None = None) -> Recipe:
    path = recipe_path(name_or_file)
    raw = apply_overrides(load_yaml(path), overrides or [])
    raw.setdefault("name", path.stem)
    return from_dict(Recipe, raw, where=f"recipe {path.stem}")


def model_config(recipe: Recipe, vocab_size: int, **changes):
    """ModelConfig from the recipe's model section, the tokenizer's vocab size and method changes."""
    section = dict(recipe.model)
    if "vocab_size" in section:
        raise UserError("recipe model.vocab_size is set from the tokenizer: remove it from the recipe")
    section.update(changes)
    section["vocab_size"] = vocab_size
    section.setdefault("max_len", max(1024, 2 * recipe.data.seq_len))
    if section.get("arch") is not None:  # a published architecture (models/dlm.py): LLaDA or Dream layout
        return from_dict(DLMConfig, section, where=f"recipe {recipe.name}: model")
    section.pop("arch", None)
    return from_dict(ModelConfig, section, where=f"recipe {recipe.name}: model")


def prepare(recipe: Recipe, progress: bool = True):
    """Tokenised, packed train / validation rows of the recipe's data section (cached on disk)."""
    d = recipe.data
    return prepare_data(d.corpus, d.tokenizer, d.seq_len, mode=d.mode, val_fraction=d.val_fraction,
                        cache_dir=d.cache_dir, num_docs=d.num_docs, seed=d.seed, num_tokens=d.num_tokens,
                        text_column=d.text_column, progress=progress, val_last_docs=d.val_last_docs)
