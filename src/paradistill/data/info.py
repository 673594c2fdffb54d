"""`paradistill data info DIR`: what a prepared-data directory holds (`describe`) and a readable summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .grammar import StoryGrammar
from .packing import load_prepared

MAX_SCAN_TOKENS = 50_000_000  # token statistics look at most this many tokens per split


def _human(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GB"


def _stats(rows: np.ndarray, ids: dict[str, int]) -> dict[str, Any]:
    """Token statistics of rows [N, L] (the first MAX_SCAN_TOKENS tokens)."""
    if rows.size == 0:
        return {"rows": 0, "tokens": 0}
    n = max(1, min(len(rows), MAX_SCAN_TOKENS // rows.shape[1]))
    part = np.asarray(rows[:n])
    out = {"rows": int(rows.shape[0]), "tokens": int(rows.size),
           "documents_started": int((part == ids["bos_id"]).sum()),
           "pad_fraction": float((part == ids["pad_id"]).mean()) if ids["pad_id"] != ids["eos_id"] else None,
           "rows_starting_with_bos": float((part[:, 0] == ids["bos_id"]).mean()),
           "distinct_tokens": int(len(np.unique(part)))}
    if n < len(rows):
        out["scanned_rows"] = n
    return out


def _entropy(seq_len: int) -> dict[str, float] | None:
    """The built-in grammar's entropy rate (nats/token): stationary, and for rows of `seq_len`."""
    g = StoryGrammar()
    if hasattr(g, "exact_entropy_rate"):
        return {"stationary": float(g.exact_entropy_rate()), f"rows_of_{seq_len}": float(g.exact_entropy_rate(seq_len))}
    if hasattr(g, "entropy_rate"):
        est = g.entropy_rate(length=seq_len)
        return {f"rows_of_{seq_len}_estimate": float(est[0] if isinstance(est, tuple) else est)}
    return None


def describe(directory: str | Path, num_examples: int = 3, max_chars: int = 240) -> dict[str, Any]:
    """A dict describing prepared data: sizes, vocab, token counts, decoded examples, entropy (built-in)."""
    data = load_prepared(directory)
    meta, tok = data.meta, data.tokenizer
    ids = {k: meta[k] for k in ("bos_id", "eos_id", "pad_id", "mask_id")}
    files = [p for p in Path(data.directory).rglob("*") if p.is_file()]
    examples = []
    for row in np.asarray(data.train[:num_examples]):
        text = tok.decode(row.tolist(), skip_special=False)
        examples.append(text if len(text) <= max_chars else text[:max_chars] + " ...")
    info: dict[str, Any] = {
        "directory": str(data.directory), "corpus": meta["corpus"], "tokenizer": meta["tokenizer"],
        "tokenizer_name": meta.get("tokenizer_name"), "vocab_size": meta["vocab_size"], "special_ids": ids,
        "seq_len": meta["seq_len"], "mode": meta["mode"], "dtype": meta["dtype"],
        "val_fraction": meta["val_fraction"], "seed": meta["seed"], "num_docs": meta.get("num_docs"),
        "size_bytes": sum(p.stat().st_size for p in files),
        "train": _stats(data.train, ids), "val": _stats(data.val, ids),
        "counts": meta.get("counts", {}), "examples": examples,
    }
    if str(meta["corpus"]).startswith("builtin") and meta["tokenizer"] == "builtin":
        info["entropy_rate_nats"] = _entropy(int(meta["seq_len"]))
    return info


def format_info(info: dict[str, Any]) -> str:
    """Human-readable multi-line summary of `describe(...)`."""
    ids = info["special_ids"]
    lines = [
        f"prepared data  {info['directory']}  ({_human(info['size_bytes'])})",
        f"corpus         {info['corpus']}" + (f"  (num_docs {info['num_docs']})" if info.get("num_docs") else ""),
        f"tokenizer      {info['tokenizer']}  vocab_size {info['vocab_size']}  "
        f"(BOS {ids['bos_id']}, EOS {ids['eos_id']}, PAD {ids['pad_id']}, MASK {ids['mask_id']})",
        f"packing        mode {info['mode']}, seq_len {info['seq_len']}, dtype {info['dtype']}, "
        f"val_fraction {info['val_fraction']}, seed {info['seed']}",
    ]
    for split in ("train", "val"):
        s = info[split]
        line = f"{split:<6}         {s['rows']:,} rows, {s['tokens']:,} tokens"
        if s.get("tokens"):
            line += f", {s['documents_started']:,} BOS"
            if s.get("pad_fraction") is not None:
                line += f", {100 * s['pad_fraction']:.1f}% PAD"
            if "scanned_rows" in s:
                line += f" (stats over the first {s['scanned_rows']:,} rows)"
        lines.append(line)
    ent = info.get("entropy_rate_nats")
    if ent:
        lines.append("entropy rate   " + ", ".join(f"{k} {v:.4f}" for k, v in ent.items()) + " nats/token")
    if info["examples"]:
        lines.append("examples (train rows, decoded):")
        lines += [f"  [{i}] {text!r}" for i, text in enumerate(info["examples"])]
    return "\n".join(lines)
