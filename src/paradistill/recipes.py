"""Named recipes (YAML in paradistill/recipes/) mapped onto dataclasses, with `key=value` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .config import apply_overrides, closest_hint, from_dict, load_yaml
from .diffusion.objectives import DiffusionConfig
from .errors import UserError
from .train.loop import TrainConfig


@dataclass
class DataConfig:
    corpus: str = "builtin"
    tokenizer: str = "builtin"
    seq_len: int = 64
    mode: str = "aligned"
    val_fraction: float = 0.05
    num_tokens: int | None = None
    num_docs: int | None = None
    seed: int = 0
    cache_dir: str | None = None
    text_column: str | None = None

    def validate(self) -> None:
        if self.seq_len < 2:
            raise UserError(f"data.seq_len={self.seq_len}: must be >= 2")
        if self.mode not in ("aligned", "wrap", "pad"):
            raise UserError(f"data.mode={self.mode!r}: choose aligned, wrap or pad")


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig without vocab_size (from the tokenizer)
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    bd3lm: dict[str, Any] = field(default_factory=dict)
    gumbel: dict[str, Any] = field(default_factory=dict)
    sdtt: dict[str, Any] = field(default_factory=dict)
    adjust: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)


def recipe_names() -> list[str]:
    folder = resources.files("paradistill") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_file: str) -> Path:
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
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
    from .models.transformer import ModelConfig

    section = dict(recipe.model)
    if "vocab_size" in section:
        raise UserError("recipe model.vocab_size is set from the tokenizer: remove it from the recipe")
    section.update(changes)
    section["vocab_size"] = vocab_size
    section.setdefault("max_len", max(1024, 2 * recipe.data.seq_len))
    return from_dict(ModelConfig, section, where=f"recipe {recipe.name}: model")
