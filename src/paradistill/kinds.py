"""The one registry of model kinds: what a checkpoint of each kind is, how it samples, how it exports.

A checkpoint's `config.json` names its kind. Everything that behaves differently per kind asks this registry for
the kind's properties instead of comparing strings: generation builds the denoiser from `family` / `block` /
`noise_conditioned`, loading picks the builder from `family`, export picks the Hugging Face class from `export_as`,
SDTT and ADJUST accept exactly the kinds whose properties they need. A new kind (a published format, a new method)
is one `register_kind` call.

This module is data only (bottom layer): it imports nothing of the package but `errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import UserError

Family = Literal["ar", "diffusion", "sampler"]


@dataclass(frozen=True)
class Kind:
    name: str
    family: Family  # "ar": left-to-right decoding; "diffusion": masked denoiser; "sampler": a layer on a frozen base
    trained_by: str  # the command that makes a checkpoint of this kind
    block: bool = False  # semi-autoregressive block diffusion (BD3-LM): samples block by block, block-causal attention
    noise_conditioned: bool = False  # Gumbel-distilled student: its denoiser draws the noise it is conditioned on
    base: str | None = None  # the kind whose objective a noise-conditioned student trains with
    export_as: str | None = None  # Hugging Face auto class of a stand-alone export (None: not exportable alone)
    layout: str | None = None  # a published release's layout it is read from and exported to (export --format)

    @property
    def autoregressive(self) -> bool:
        return self.family == "ar"

    @property
    def diffusion(self) -> bool:
        return self.family == "diffusion"


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"model kind '{kind.name}' is already registered differently")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str, where: str = "checkpoint") -> Kind:
    """The registered kind `name`; a UserError naming `where` and the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"{where}: unknown model kind '{name}': known kinds are {', '.join(KINDS)} "
                        "(a checkpoint of a newer paradistill? upgrade it)") from None


def kind_names(**properties) -> tuple[str, ...]:
    """Names of the kinds whose attributes equal `properties`, e.g. kind_names(family="diffusion")."""
    return tuple(k.name for k in KINDS.values() if all(getattr(k, p) == v for p, v in properties.items()))


def require_kind(name: str, what: str, where: str, **properties) -> Kind:
    """`get_kind(name)`, checked to have `properties`; the error lists the kinds that do."""
    kind = get_kind(name, where)
    if any(getattr(kind, p) != v for p, v in properties.items()):
        raise UserError(f"{where} holds a '{name}' model, but {what} needs one of "
                        f"{', '.join(kind_names(**properties))}")
    return kind


for _kind in (
    Kind("ar", "ar", "paradistill train ar", export_as="AutoModelForCausalLM"),
    Kind("mdlm", "diffusion", "paradistill train mdlm (SDTT students keep their teacher's kind)",
         export_as="AutoModelForMaskedLM"),
    Kind("bd3lm", "diffusion", "paradistill train bd3lm", block=True, export_as="AutoModelForMaskedLM"),
    Kind("gd-mdlm", "diffusion", "paradistill distill gumbel --student mdlm", noise_conditioned=True, base="mdlm",
         export_as="AutoModelForMaskedLM"),
    Kind("gd-bd3lm", "diffusion", "paradistill distill gumbel --student bd3lm", block=True, noise_conditioned=True,
         base="bd3lm", export_as="AutoModelForMaskedLM"),
    Kind("adjust", "sampler", "paradistill distill adjust"),
    # published diffusion LMs (models/dlm.py): a LLaDA / Dream directory, or one trained by paradistill at any size
    Kind("llada", "diffusion", "paradistill train mdlm model.arch=llada (or a published LLaDA directory)",
         layout="llada"),
    Kind("dream", "diffusion", "paradistill train mdlm model.arch=dream (or a published Dream directory)",
         layout="dream"),
):
    register_kind(_kind)
