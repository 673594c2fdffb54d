"""LLaDA and Dream checkpoints in their published layout (a Hugging Face directory: `config.json`, safetensors
shards with `model.safetensors.index.json`, tokenizer files), read and written without `trust_remote_code`.

`detect_format(dir)` names the layout of a directory ("llada", "dream", or None for anything else; a causal LM is
refused); `load_llada` / `load_dream` build `models.dlm.DiffusionLM` after a memory estimate, in bf16 / fp16 / fp32
on any device, and return a `LoadedCheckpoint` of kind "llada" / "dream"; `save_official` writes a model in the
published layout (sharded). These functions are what a checkpoint-format registry calls.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..checkpoint import LoadedCheckpoint
from ..config import from_dict
from ..data.tokenizers import HFTokenizer, load_tokenizer
from ..errors import UserError
from ..io import replace_dir
from ..memory import check_memory, human
from .dlm import DiffusionLM, DLMConfig, internal_names, official_name

INDEX = "model.safetensors.index.json"
TOKENIZER_DIR = "paradistill_tokenizer"  # a paradistill tokenizer exported with a small model (no HF files)
DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}
KNOWN_MASK = {"llada": 126336, "dream": 151666}
CAUSAL_TYPES = ("llama", "qwen2", "qwen3", "gpt2", "mistral", "gemma", "gemma2", "phi3", "olmo", "olmo2", "gpt_neox")

# official config key -> DLMConfig field, per architecture
CONFIG_KEYS = {
    "llada": {"d_model": "dim", "n_layers": "n_layers", "n_heads": "n_heads", "n_kv_heads": "n_kv_heads",
              "mlp_hidden_size": "mlp_hidden", "max_sequence_length": "max_len", "rope_theta": "rope_base",
              "rms_norm_eps": "norm_eps", "include_qkv_bias": "qkv_bias", "weight_tying": "tie_weights",
              "mask_token_id": "mask_id", "eos_token_id": "eos_id", "pad_token_id": "pad_id",
              "bos_token_id": "bos_id"},
    "dream": {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
              "num_key_value_heads": "n_kv_heads", "intermediate_size": "mlp_hidden", "vocab_size": "vocab_size",
              "max_position_embeddings": "max_len", "rope_theta": "rope_base", "rms_norm_eps": "norm_eps",
              "tie_word_embeddings": "tie_weights", "mask_token_id": "mask_id", "eos_token_id": "eos_id",
              "pad_token_id": "pad_id", "bos_token_id": "bos_id"},
}
# settings of the official code this implementation does not cover: key -> the value it must have
UNSUPPORTED = {
    "llada": {"alibi": False, "scale_logits": False, "attention_layer_norm": False, "include_bias": False,
              "block_type": "llama", "activation_type": "silu", "layer_norm_type": "rms", "rope": True},
    "dream": {"hidden_act": "silu", "rope_scaling": None},
}
FIXED = {"llada": {"model_type": "llada", "architectures": ["LLaDAModelLM"], "block_type": "llama",
                   "activation_type": "silu", "layer_norm_type": "rms", "rope": True, "rope_full_precision": True,
                   "alibi": False, "include_bias": False, "attention_layer_norm": False, "scale_logits": False,
                   "layer_norm_with_affine": True, "bias_for_layer_norm": False, "use_cache": False},
         "dream": {"model_type": "Dream", "architectures": ["DreamModel"], "hidden_act": "silu",
                   "rope_scaling": None, "use_cache": False}}


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"'{path}' cannot be read as JSON ({e}): restore the model directory") from None


def detect_format(path: str | Path) -> str | None:
    """"llada" / "dream" for a directory in a published diffusion-LM layout; None for anything else (a paradistill
    checkpoint, a run directory); a UserError for a causal LM, which cannot be a diffusion base."""
    p = Path(path)
    if not (p / "config.json").is_file():
        return None
    cfg = read_json(p / "config.json")
    if not isinstance(cfg, dict) or "kind" in cfg:
        return None
    model_type = str(cfg.get("model_type", "")).lower()
    archs = [str(a) for a in cfg.get("architectures") or []]
    if model_type == "llada" or any(a.startswith("LLaDA") for a in archs):
        return "llada"
    if model_type == "dream" or any(a.startswith("Dream") for a in archs):
        return "dream"
    if model_type in CAUSAL_TYPES or any(a.endswith("ForCausalLM") for a in archs):
        raise UserError(f"'{p}' is a causal LM ({model_type or archs[0]}), not a masked diffusion model: pass a "
                        "LLaDA or Dream directory (or a paradistill mdlm/bd3lm checkpoint) as the diffusion base")
    return None


def config_from_official(arch: str, raw: dict, where: str) -> DLMConfig:
    """DLMConfig from a published config.json (refusing settings this implementation does not cover)."""
    for key, want in UNSUPPORTED[arch].items():
        if key in raw and raw[key] != want:
            raise UserError(f"{where}: {key}={raw[key]!r} is not supported (paradistill's {arch} needs {want!r}): "
                            "this is not a standard release of the model")
    if raw.get("mask_token_id") is None:
        raise UserError(f"{where} has no mask_token_id: add \"mask_token_id\": {KNOWN_MASK[arch]} (the {arch} "
                        "release's) to config.json")
    values = {field: raw[key] for key, field in CONFIG_KEYS[arch].items() if raw.get(key) is not None}
    if arch == "llada":
        values["vocab_size"] = raw.get("embedding_size") or raw.get("vocab_size") or 0
        if not raw.get("mlp_hidden_size") and raw.get("mlp_ratio"):
            values["mlp_hidden"] = int(raw["mlp_ratio"] * raw["d_model"])
    return from_dict(DLMConfig, {"arch": arch, **values}, where=where)


def config_to_official(cfg: DLMConfig) -> dict:
    out = dict(FIXED[cfg.arch])
    for key, field in CONFIG_KEYS[cfg.arch].items():
        out[key] = getattr(cfg, field)
    if cfg.arch == "llada":
        out.update(embedding_size=cfg.vocab_size, vocab_size=cfg.vocab_size, mlp_ratio=cfg.mlp_hidden / cfg.dim,
                   weight_tying=False)
    else:
        out.update(head_dim=cfg.head_dim, tie_word_embeddings=False)
    if cfg.qkv_bias != (cfg.arch == "dream"):
        raise UserError(f"a {cfg.arch} model with qkv_bias={cfg.qkv_bias} has no official layout: keep the default")
    out["torch_dtype"] = "float32"
    return out


def weight_files(path: Path) -> dict[str, Path]:
    """official tensor name -> the file holding it (sharded with an index json, or one model.safetensors)."""
    if (path / INDEX).is_file():
        index = read_json(path / INDEX)
        files = {name: path / f for name, f in index.get("weight_map", {}).items()}
        gone = sorted({str(f) for f in files.values() if not f.is_file()})
        if gone:
            raise UserError(f"'{path / INDEX}' names shard(s) {gone[:3]} that are missing: download them again")
        return files
    single = path / "model.safetensors"
    if not single.is_file():
        raise UserError(f"'{path}' has neither {INDEX} nor model.safetensors: download the weights")
    from safetensors import safe_open

    with safe_open(str(single), "pt") as f:
        return {name: single for name in f.keys()}


def estimate_bytes(cfg: DLMConfig, dtype: torch.dtype, batch: int = 1, length: int = 2048) -> int:
    """Weights in `dtype` plus one forward's peak: float32 logits and SUBS log-probs over the vocabulary and a few
    hidden-state buffers per position."""
    size = torch.tensor([], dtype=dtype).element_size()
    weights = cfg.num_parameters() * size
    act = batch * length * (cfg.vocab_size * (4 + 4 + 8) + 8 * max(cfg.dim, cfg.mlp_hidden) * size)
    return weights + act


def resolve_dtype(dtype, device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise UserError(f"dtype {dtype!r}: choose one of bf16, fp16, fp32 (or auto)")
    return DTYPES[dtype]


def load_tokenizer_for(path: Path, cfg: DLMConfig):
    """The directory's tokenizer with the config's special ids (the model's, which the tokenizer files may not
    declare, e.g. LLaDA's mask); None when the directory has none."""
    if (path / TOKENIZER_DIR).is_dir():
        tok = load_tokenizer(path / TOKENIZER_DIR)
    elif (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        tok = HFTokenizer(path)
    else:
        return None
    for attr in ("mask_id", "eos_id", "pad_id", "bos_id"):
        if getattr(cfg, attr) is not None:
            setattr(tok, attr, getattr(cfg, attr))
    if tok.pad_id is None:
        tok.pad_id = tok.eos_id
    tok.vocab_size = cfg.vocab_size  # the embedding rows (LLaDA pads its vocabulary)
    return tok


def load_official(path: str | Path, arch: str | None = None, dtype="auto", device="cpu",
                  available: int | None = None) -> LoadedCheckpoint:
    """A LLaDA / Dream directory as a loaded checkpoint of kind `arch`. The memory estimate runs first; the weights
    are then read shard by shard straight into the model (no second copy). `available` overrides the free-memory
    probe (tests, plans)."""
    path = Path(path)
    found = detect_format(path)
    if found is None or (arch is not None and found != arch):
        raise UserError(f"'{path}' is not a {arch or 'LLaDA / Dream'} directory (config.json model_type): pass one")
    where = f"'{path / 'config.json'}'"
    raw = read_json(path / "config.json")
    cfg = config_from_official(found, raw, where)
    dt = resolve_dtype(dtype, device)
    need = estimate_bytes(cfg, dt)
    check_memory(need, f"loading {found} ({cfg.num_parameters() / 1e9:.2f} B parameters in {str(dt)[6:]}) and one "
                 "2048-token forward", "use --device cuda, --dtype bf16, or a machine with more memory", device,
                 available=available)
    files = weight_files(path)
    names = internal_names(found, cfg.n_layers)
    unknown = sorted(set(files) - set(names))
    if unknown:
        raise UserError(f"{path}: tensors {unknown[:3]} are not part of the {found} layout of config.json "
                        f"({cfg.n_layers} layers): the config and the weights do not belong together")
    with torch.device("meta"):
        model = DiffusionLM(cfg)
    expected = {k for k in model.state_dict()}
    if cfg.tie_weights:
        expected.discard("head.weight")
    state = _read_tensors(files, names, dt, device)
    missing = sorted(expected - set(state))
    if missing:
        raise UserError(f"{path}: tensors for {missing[:3]} are missing ({len(missing)} in all): the download is "
                        "incomplete")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if tuple(v.shape) != shapes[k]]
    if bad:
        raise UserError(f"{path}: tensor {official_name(found, bad[0])} has shape {tuple(state[bad[0]].shape)}, "
                        f"config.json implies {shapes[bad[0]]}: the config and the weights do not belong together")
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_weights:
        model.head.weight = model.embed.weight
    model.eval()
    tok = load_tokenizer_for(path, cfg)
    # no seq_len: a release has no training row length; commands take the recipe's / --length / --gen-length
    method = {"keep_bos": cfg.bos_id is not None, "data_mode": "aligned", "source": str(path.resolve()),
              **(raw.get("paradistill") or {})}  # a model trained and exported by paradistill keeps its settings
    config = {"kind": found, "model": asdict(cfg), "method": method, "format": found}
    return LoadedCheckpoint(path, found, model, tok, config)


def _read_tensors(files: dict[str, Path], names: dict[str, str], dtype, device) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name, f in files.items():
        by_file.setdefault(f, []).append(name)
    out = {}
    for f, keys in by_file.items():
        with safe_open(str(f), "pt", device="cpu") as handle:
            for key in keys:
                out[names[key]] = handle.get_tensor(key).to(device=device, dtype=dtype)
    return out


def load_llada(path, dtype="auto", device="cpu", available: int | None = None) -> LoadedCheckpoint:
    return load_official(path, "llada", dtype, device, available)


def load_dream(path, dtype="auto", device="cpu", available: int | None = None) -> LoadedCheckpoint:
    return load_official(path, "dream", dtype, device, available)


def save_official(model: DiffusionLM, tokenizer, out: str | Path, shard_bytes: int = 2 * 1024 ** 3,
                  record: dict | None = None) -> Path:
    """Write `model` in its architecture's published layout: config.json, safetensors shards of at most
    `shard_bytes` (an index json when there is more than one), and the tokenizer. `record`: how paradistill
    trained it (seq_len, keep_bos), kept under config.json "paradistill" (ignored by other readers). Atomic: a
    temporary sibling renamed into place."""
    from safetensors.torch import save_file

    cfg, out = model.cfg, Path(out)
    config = config_to_official(cfg)
    if record:
        config["paradistill"] = {k: record[k] for k in ("seq_len", "keep_bos", "data_mode") if k in record}
    state = {official_name(cfg.arch, k): v.detach().to("cpu").contiguous().clone()
             for k, v in model.state_dict().items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    with replace_dir(out) as tmp:
        if len(shards) == 1:
            save_file(shards[0], str(tmp / "model.safetensors"), metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards):
                fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(tmp / fname), metadata={"format": "pt"})
                weight_map.update({name: fname for name in shard})
            total = sum(t.numel() * t.element_size() for t in state.values())
            (tmp / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                indent=2))
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        if tokenizer is not None:
            if isinstance(tokenizer, HFTokenizer):
                tokenizer._tok.save_pretrained(str(tmp))
            else:
                tokenizer.save(tmp / TOKENIZER_DIR)
    return out


def describe(cfg: DLMConfig, dtype=torch.bfloat16) -> str:
    return (f"{cfg.arch}: {cfg.num_parameters() / 1e9:.2f} B parameters, {cfg.n_layers} layers x {cfg.dim}, "
            f"weights {human(cfg.num_parameters() * torch.tensor([], dtype=dtype).element_size())} in {dtype}")
