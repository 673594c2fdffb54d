"""The MDLM-family formats: MDLM (hub `kuleshov-group/mdlm-owt`, Lightning checkpoints, bare DiT weights),
BD3-LM (`kuleshov-group/bd3lm-owt-block_size*`), SDTT (`jdeschena/sdtt`, every revision) and Gumbel
Distillation students (`gumbel_noise_embed.linear.weight`). Each detects its config / tensors and converts
through `dit.convert` once (cached)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..diffusion.bd3lm import BD3Config
from ..errors import UserError
from .convert import LoadRequest, build_dit, load_converted
from .dit import GUMBEL_KEY, is_dit
from .registry import CheckpointFormat
from .state import read_json, tensor_names, weight_file

BD3_TYPES = ("bd3lm",)


def _config(path: Path) -> dict:
    try:
        return read_json(path)
    except UserError:
        return {}


def _model_type(path: Path) -> str:
    cfg = _config(path)
    archs = [str(a).lower() for a in cfg.get("architectures") or []]
    return str(cfg.get("model_type") or (archs[0] if archs else "")).lower()


def _dit_names(path: Path):
    if weight_file(path) is None:
        return None
    names = tensor_names(path)
    return names if is_dit(names) else None


def _is_hydra_dump(cfg: dict) -> bool:
    model = cfg.get("model")
    return isinstance(model, dict) and "hidden_size" in model and "n_blocks" in model


# ------------------------------------------------------------------------------------------------ detection
def detect_gumbel(path: Path) -> bool:
    names = _dit_names(path)
    return names is not None and any(n.endswith(GUMBEL_KEY) for n in names)


def detect_bd3lm(path: Path) -> bool:
    cfg = _config(path)
    return _dit_names(path) is not None and (_model_type(path) in BD3_TYPES or "block_size" in cfg)


def detect_sdtt(path: Path) -> bool:
    return _dit_names(path) is not None and _is_hydra_dump(_config(path))


def detect_mdlm(path: Path) -> bool:
    """MDLM hub directories, Lightning checkpoints and bare DiT weights (the family's fallback)."""
    return _dit_names(path) is not None


# ------------------------------------------------------------------------------------------------ loading
def _bd3_method(settings: dict, request: LoadRequest, where: Path) -> dict:

    block = settings.get("block_size")
    if block is None:
        raise UserError(f"'{request.ref}' has no block_size in its config.json: pass the option block_size "
                        "(e.g. load(ref, block_size=4))")
    length = int(settings["length"] or 1024)
    if length % int(block):
        raise UserError(f"'{request.ref}': block_size {block} does not divide the model length {length}")
    return {"block_size": int(block), "bd3lm": asdict(BD3Config(block_size=int(block))), "keep_bos": True,
            "data_mode": "wrap-raw"}


def load_mdlm(path: Path, request: LoadRequest):
    return load_converted("mdlm", path, request, build_dit(path, request, "mdlm", lambda s: {}))


def load_sdtt(path: Path, request: LoadRequest):
    return load_converted("sdtt", path, request, build_dit(path, request, "mdlm", lambda s: {}))


def load_bd3lm(path: Path, request: LoadRequest):
    return load_converted("bd3lm", path, request,
                          build_dit(path, request, "bd3lm", lambda s: _bd3_method(s, request, path)))


def load_gumbel(path: Path, request: LoadRequest):
    """A Gumbel-distill student: `gd-bd3lm` when its config has a block size (algo bd3lm_gumbel) or the request
    says so, else `gd-mdlm`. A checkpoint without a config but with BD3-LM's `sampling_eps_min/max` buffers is the
    released bd3lms-gumbel-owt: block size 4 (its initialisation, bd3lm-owt-block_size4) unless block_size is given."""
    if "block_size" not in request.options and any(n.endswith("sampling_eps_min") for n in tensor_names(path)):
        request.options.setdefault("block_size_default", 4)

    def method(settings: dict) -> dict:
        if settings.get("block_size") is None and request.options.get("block_size_default"):
            settings["block_size"] = request.options["block_size_default"]
        gumbel = {"noise": "gumbel", "noise_temperature": 0.85}
        base = {"gumbel": gumbel, "keep_bos": True, "data_mode": "wrap-raw"}
        if settings.get("block_size") is not None and settings.get("cross_attn") is not False:
            return {**base, **_bd3_method(settings, request, path), "keep_bos": True}
        return base

    def kind_of(settings: dict) -> str:
        if settings.get("block_size") is None and request.options.get("block_size_default"):
            settings["block_size"] = request.options["block_size_default"]
        return "gd-bd3lm" if settings.get("block_size") is not None and settings.get("cross_attn") is not False \
            else "gd-mdlm"

    return load_converted("gumbel", path, request, build_dit(path, request, kind_of, method))


FORMATS = (
    CheckpointFormat("gumbel", detect_gumbel, load_gumbel,
                     "Gumbel Distillation student (DiT + gumbel_noise_embed; hxixixh/gumbel-distillation-models)"),
    CheckpointFormat("bd3lm", detect_bd3lm, load_bd3lm,
                     "BD3-LM DiT with a block size (kuleshov-group/bd3lm-owt-block_size*)"),
    CheckpointFormat("sdtt", detect_sdtt, load_sdtt, "SDTT student / teacher (jdeschena/sdtt, any revision)"),
    CheckpointFormat("mdlm", detect_mdlm, load_mdlm,
                     "MDLM DiT (kuleshov-group/mdlm-owt, Lightning .ckpt, bare DiT weights; time-conditioned too)"),
)
