"""`evaluate_samples`: read a samples set, compute the requested metrics, write JSON + a readable table.

Samples are JSONL lines written by `api.write_samples` (text, tokens, nfe, seconds, kind, checkpoint, sampler,
steps, length). The special input `generator` draws samples from the built-in corpus's exact generator.
"""

from __future__ import annotations

import functools
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import resolve_checkpoint
from ..config import check_ranges
from ..data.grammar import StoryGrammar
from ..data.tokenizers import build_tokenizer, builtin_tokenizer, load_tokenizer
from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from ..loader import load_checkpoint
from ..recipes import load_recipe, prepare
from . import metrics as M
from .mauve import check_sizes, mauve_score

METRICS = ("exact", "gen_ppl", "entropy", "distinct", "mauve", "val_ppl")
FORMAT = "paradistill-eval"
PAPER_MAUVE_SAMPLES = 500  # MDLM / SDTT / DUO: MAUVE on >= 500 samples per side with GPT-2 Large features
PAPER_JUDGE = PAPER_FEATURES = "gpt2-large"  # hub id: the papers' Gen PPL judge and MAUVE featuriser


@dataclass
class EvalConfig:
    metrics: str = "auto"  # comma list of METRICS, or auto
    judge: str | None = None  # paradistill AR checkpoint or HF causal LM
    judge_context: int | None = None
    judge_stride: int | None = None
    judge_batch_size: int | None = None
    tokenizer: str | None = None  # samples' tokenizer when the samples' checkpoint cannot be found
    reference: str | None = None  # MAUVE reference: val | generator | FILE.jsonl
    reference_num: int | None = None
    mauve_features: str = "minilm"
    mauve_buckets: str = "auto"
    mauve_seed: int = 25
    val_data: str | None = None  # recipe name / YAML, or .npy rows; default: the checkpoint's recipe
    val_batches: int | None = 16
    seed: int = 0
    device: str = "cpu"
    label: str | None = None

    def validate(self) -> None:
        check_ranges(self, "--", {"judge_context": (2, None), "judge_stride": (1, None), "judge_batch_size": (1, None),
                                  "reference_num": (1, None), "val_batches": (1, None), "mauve_seed": (0, None)})
        if self.mauve_buckets != "auto" and not (self.mauve_buckets.isdigit() and int(self.mauve_buckets) >= 2):
            raise UserError(f"--mauve-buckets {self.mauve_buckets}: pass auto or an integer >= 2")

    def metric_list(self, builtin: bool) -> list[str]:
        if self.metrics == "auto":
            out = (["exact"] if builtin else []) + (["gen_ppl"] if self.judge else [])
            out += ["entropy", "distinct"] + (["mauve"] if self.reference else [])
            return out
        out = [m.strip() for m in self.metrics.split(",") if m.strip()]
        bad = [m for m in out if m not in METRICS]
        if bad:
            raise UserError(f"--metrics: unknown metric(s) {bad}: choose from {', '.join(METRICS)} or auto")
        if ("exact" in out or "gen_ppl" in out) and "entropy" not in out:
            out.append("entropy")  # entropy is always reported next to a perplexity
        return out


# ---------------------------------------------------------------------------------------------- input
def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Records of a samples JSONL file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file '{path}' does not exist: write one with `paradistill sample CKPT --out FILE`")
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path} line {n} is not valid JSON ({e.msg}): fix or delete that line") from None
            if not isinstance(rec, dict) or not ("tokens" in rec or "text" in rec):
                raise UserError(f"{path} line {n} has no 'tokens' or 'text' key: each line must be a JSON object "
                                "as written by `paradistill sample`")
            toks = rec.get("tokens")
            if toks is not None and not (isinstance(toks, list) and all(isinstance(t, int) for t in toks)):
                raise UserError(f"{path} line {n}: 'tokens' must be a list of integer ids")
            rec["_line"] = n
            rec["_file"] = str(path)
            records.append(rec)
    if not records:
        raise UserError(f"samples file '{path}' is empty: sample first (`paradistill sample CKPT --out {path}`)")
    return records


@functools.lru_cache(maxsize=1)
def grammar():
    """The built-in corpus's exact generator (built once per process)."""
    return StoryGrammar()


def generator_records(num: int, length: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """`num` rows from the built-in corpus's exact generator, as sample records (NFE 0)."""
    import torch

    if num < 1 or length < 2:
        raise UserError(f"generator samples: num={num} must be >= 1 and length={length} >= 2")
    G, tok = grammar(), builtin_tokenizer()
    t0 = time.perf_counter()
    rows = G.sample(num, length, torch.Generator().manual_seed(seed)).tolist()
    sec = (time.perf_counter() - t0) / num
    return [{"text": tok.decode(r), "tokens": r, "nfe": 0, "seconds": sec, "kind": "generator",
             "checkpoint": None, "sampler": "exact", "steps": 0, "length": length, "_line": i + 1}
            for i, r in enumerate(rows)]


def samples_tokenizer(records: list[dict], spec: str | None):
    """The tokenizer the samples' ids belong to: --tokenizer, else the samples' checkpoint's, else None."""
    if spec:
        return build_tokenizer(spec)
    if records[0].get("kind") == "generator":
        return builtin_tokenizer()
    ckpt = records_checkpoint(records)
    if ckpt is not None and (ckpt / "tokenizer").is_dir():
        return load_tokenizer(ckpt / "tokenizer")
    if ckpt is not None:
        folder = resolve_checkpoint(ckpt) / "tokenizer"
        return load_tokenizer(folder) if folder.is_dir() else None
    return None


def records_checkpoint(records: list[dict]) -> Path | None:
    """The checkpoint the samples name, found from the working directory or beside the samples file (older files
    store it relative). A named checkpoint that cannot be found is an error: guessing would change the metrics."""
    name = records[0].get("checkpoint")
    if not name or name == "None":
        return None
    candidates = [Path(name)]
    if not Path(name).is_absolute() and records[0].get("_file"):
        candidates.append(Path(records[0]["_file"]).parent / name)
    for c in candidates:
        if c.is_dir():
            return c
    where = records[0].get("_file", "the samples")
    raise UserError(f"checkpoint '{name}' named in {where} does not exist (from this folder or beside the file): "
                    "pass --tokenizer (e.g. builtin, DIR, hf:NAME) to read the samples without it")


def _common(records, key):
    vals = {json.dumps(r.get(key)) for r in records}
    return records[0].get(key) if len(vals) == 1 else "mixed"


# ---------------------------------------------------------------------------------------------- metrics
def _held_out_rows(loaded, spec: str | None) -> np.ndarray:
    """[N, L] held-out rows: a .npy file, or the val split of a recipe (default: the checkpoint's recipe)."""
    if spec and spec.endswith(".npy"):
        return np.load(spec)
    method = loaded.method if loaded is not None else {}
    name = spec or method.get("recipe")
    if not name:
        raise UserError("held-out data unknown: pass --val-data RECIPE (or a .npy file of [N, L] token rows)")
    overrides = [f"data.seq_len={method['seq_len']}"] if method.get("seq_len") else []
    data = prepare(load_recipe(name, overrides), progress=False)
    if loaded is not None and loaded.tokenizer is not None \
            and data.tokenizer.fingerprint() != loaded.tokenizer.fingerprint():
        raise UserError(f"--val-data '{name}' uses a different tokenizer than checkpoint '{loaded.path}': pass the "
                        "recipe the model was trained on")
    return data.val


def _reference_texts(cfg: EvalConfig, loaded, tok, n: int, length: int | None) -> list[str]:
    num = cfg.reference_num or n
    if cfg.reference == "generator":
        return [r["text"] for r in generator_records(num, length or 64, seed=cfg.seed + 1)]
    if cfg.reference == "val":
        rows = _held_out_rows(loaded, cfg.val_data)[:num]
        dtok = tok if tok is not None else (loaded.tokenizer if loaded is not None else None)
        if dtok is None:
            raise UserError("--reference val needs the samples' tokenizer to decode held-out rows: pass --tokenizer")
        return [dtok.decode([int(t) for t in r]) for r in rows]
    return [_text(r, tok) for r in read_samples(cfg.reference)[:num]]


def _text(rec: dict, tok) -> str | None:
    if rec.get("text") is not None:
        return rec["text"]
    return tok.decode(rec["tokens"]) if tok is not None and rec.get("tokens") is not None else None


def _load_ckpt(records, checkpoint):
    path = checkpoint or records_checkpoint(records)
    if not path:
        raise UserError("val_ppl needs a checkpoint: evaluate a checkpoint, or samples whose 'checkpoint' exists")
    return load_checkpoint(path)


def evaluate_samples(records: list[dict], cfg: EvalConfig | None = None, source: str | None = None,
                     checkpoint: str | None = None, loaded=None, progress: bool = True) -> dict[str, Any]:
    """Metrics of one samples set (see module docstring); `loaded` may hold the sampled checkpoint."""
    cfg = cfg or EvalConfig()
    if not records:
        raise UserError(f"no samples to evaluate in '{source}': sample first")
    tok = loaded.tokenizer if loaded is not None and not cfg.tokenizer else samples_tokenizer(records, cfg.tokenizer)
    builtin = tok is not None and tok.fingerprint() == builtin_tokenizer().fingerprint()
    wanted = cfg.metric_list(builtin)
    raw = [r.get("tokens") for r in records]
    if tok is None and any(t is None for t in raw):
        missing = next(r for r in records if r.get("tokens") is None)
        raise UserError(f"sample on line {missing['_line']} of '{missing.get('_file', source)}' has text but no 'tokens', "
                        "and no tokenizer is known to count its tokens: pass --tokenizer (e.g. builtin, char, DIR, "
                        "hf:NAME)")
    texts = [_text(r, tok) for r in records]
    if tok is not None and any(t is None for t in raw):
        raw = [t if t is not None else tok.encode(x) for t, x in zip(raw, texts)]
    ids = [M.strip_sample(t, tok.bos_id, tok.pad_id, tok.eos_id) if tok is not None else list(t or [])
           for t in raw]
    n_tok = sum(len(s) for s in ids)
    secs = [float(r.get("seconds") or 0.0) for r in records]
    res: dict[str, Any] = {
        "format": FORMAT, "label": cfg.label, "source": str(source) if source else None,
        "checkpoint": str(checkpoint or records[0].get("checkpoint")), "kind": _common(records, "kind"),
        "sampler": _common(records, "sampler"), "steps": _common(records, "steps"),
        "length": _common(records, "length"), "num_samples": len(records),
        "nfe_mean": float(np.mean([float(r.get("nfe") or 0) for r in records])),
        "seconds_per_sample": float(np.mean(secs)), "tokens_per_second": n_tok / sum(secs) if sum(secs) else None,
        "tokenizer": getattr(tok, "name", None), "metrics": wanted, "settings": asdict(cfg)}
    per: dict[str, list] = {}
    if "exact" in wanted:
        _exact(res, per, raw, tok, builtin, records)
    if "gen_ppl" in wanted:
        _gen_ppl(res, per, cfg, ids, texts, tok)
    if "entropy" in wanted:
        ent = [M.unigram_entropy(s) for s in ids]
        per["entropy"] = ent
        res["entropy"], res["entropy_std"] = float(np.mean(ent)), float(np.std(ent))
    if "distinct" in wanted:
        for n in (1, 2, 3):
            res[f"distinct_{n}"] = M.distinct_n(ids, n)
    if "mauve" in wanted:
        _mauve(res, cfg, records, texts, tok, loaded)
    if "val_ppl" in wanted:
        ld = loaded or _load_ckpt(records, checkpoint)
        res["val_ppl"] = M.val_perplexity(ld, _held_out_rows(ld, cfg.val_data), max_batches=cfg.val_batches,
                                          seed=cfg.seed, progress=progress)
    res["per_sample"] = per
    return res


def _exact(res, per, raw, tok, builtin, records):
    if not builtin:
        raise UserError("exact NLL needs samples of the built-in corpus (builtin tokenizer); these use "
                        f"'{getattr(tok, 'name', 'an unknown tokenizer')}': use --judge for Gen PPL, or --tokenizer "
                        "builtin if the samples are built-in ids")
    rows = [M.strip_sample(t, None, tok.pad_id) for t in raw]
    for r, rec in zip(rows, records):
        if not r or r[0] != tok.bos_id:
            raise UserError(f"sample on line {rec['_line']} does not start with BOS (id {tok.bos_id}): exact NLL scores "
                            "rows that start at a document start")
        if tok.mask_id in r:
            raise UserError(f"sample on line {rec['_line']} still contains MASK tokens: the sampler left positions "
                            "undecoded; re-sample with a final fill")
    G = grammar()
    totals, counts = M.exact_nll(rows, G)
    s = M.nll_summary(totals, counts)
    viol = M.grammar_violations(rows, G)
    s["violation_free_fraction"], s["violations_per_sample"] = float((viol == 0).mean()), float(viol.mean())
    lengths = {len(r) for r in rows}
    if len(lengths) == 1 and lengths.pop() > 1:
        rate = G.exact_entropy_rate(length=len(rows[0]))
        s["generator_entropy_rate"], s["generator_ppl"] = rate, math.exp(rate)
    res["exact"] = s
    res["exact_ppl"], res["exact_nll_per_token"] = s["ppl"], s["nll_per_token"]
    per["exact_nll"] = [t / c if c else None for t, c in zip(totals.tolist(), counts.tolist())]


def _gen_ppl(res, per, cfg, ids, texts, tok):
    if not cfg.judge:
        raise UserError("metric gen_ppl needs a judge: pass --judge (a paradistill AR checkpoint, a local Hugging "
                        "Face causal LM directory, or a hub name such as gpt2-large when online)")
    judge = M.load_judge(cfg.judge, cfg.judge_context, cfg.judge_stride, cfg.judge_batch_size, cfg.device)
    seqs, how = M.judge_inputs(ids, texts, judge, tok.vocab_size if tok is not None else None,
                               tok.fingerprint() if tok is not None else None)
    g = M.gen_ppl(judge, seqs)
    g["tokenization"] = how
    per["gen_nll"] = g.pop("per_sample_nll")
    res["gen"] = g
    res["gen_ppl"] = g["ppl"]


def _mauve(res, cfg, records, texts, tok, loaded):
    if not cfg.reference:
        raise UserError("metric mauve needs --reference: val (held-out data), generator, or a samples FILE.jsonl")
    if loaded is None and cfg.reference == "val":
        try:
            loaded = _load_ckpt(records, None)
        except UserError:
            loaded = None
    length = res["length"] if isinstance(res["length"], int) else None
    ref = _reference_texts(cfg, loaded, tok, len(records), length)
    check_sizes(len(texts), len(ref))
    buckets = cfg.mauve_buckets if cfg.mauve_buckets == "auto" else int(cfg.mauve_buckets)
    res["mauve"] = mauve_score([t or "" for t in texts], ref, cfg.mauve_features, buckets, cfg.mauve_seed,
                               device=cfg.device)
    res["mauve"]["reference"] = cfg.reference
    small = min(len(texts), len(ref))
    if small < PAPER_MAUVE_SAMPLES:
        msg = (f"MAUVE on {small} samples per side (< {PAPER_MAUVE_SAMPLES}, the papers' minimum): scores at this size "
               "separate sets weakly and are not comparable with published MAUVE; pass --num / --reference-num >= 500")
        res["mauve"]["warning"] = msg
        warnings.warn(msg, stacklevel=2)


# ---------------------------------------------------------------------------------------------- output
def _fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.3e}"
    return str(x)


def format_table(res: dict[str, Any]) -> str:
    """A readable markdown table of one evaluation."""
    rows = [("kind / sampler / steps", f"{res['kind']} / {res['sampler']} / {res['steps']}"),
            ("samples", res["num_samples"]), ("mean NFE", _fmt(res["nfe_mean"], 1)),
            ("ms per sample", _fmt(res["seconds_per_sample"] * 1000, 2)),
            ("tokens / s", _fmt(res["tokens_per_second"], 1))]
    if "exact" in res:
        e = res["exact"]
        rows += [("exact NLL / token [95% CI]", f"{e['nll_per_token']:.4f} [{e['nll_ci95'][0]:.4f}, "
                                                f"{e['nll_ci95'][1]:.4f}]"),
                 ("exact Gen PPL [95% CI]", f"{e['ppl']:.3f} [{e['ppl_ci95'][0]:.3f}, {e['ppl_ci95'][1]:.3f}]")]
        rows.append(("samples without grammar violations", f"{e['violation_free_fraction']:.3f} "
                                                               f"({e['violations_per_sample']:.2f} violations / sample)"))
        if "generator_ppl" in e:
            rows.append(("generator exp(entropy rate)", f"{e['generator_ppl']:.3f} "
                                                        f"(rate {e['generator_entropy_rate']:.4f} nats)"))
    if "gen" in res:
        g = res["gen"]
        rows.append((f"Gen PPL ({g['judge']}) [95% CI]", f"{g['ppl']:.3f} [{g['ppl_ci95'][0]:.3f}, "
                                                          f"{g['ppl_ci95'][1]:.3f}]"))
    for key, name in (("entropy", "unigram entropy (nats)"), ("distinct_1", "distinct-1"),
                      ("distinct_2", "distinct-2"), ("distinct_3", "distinct-3")):
        if key in res:
            rows.append((name, _fmt(res[key], 4)))
    if "mauve" in res:
        m = res["mauve"]
        rows.append((f"MAUVE vs {m['reference']} (features {m['features']}, {m['num_p']} vs {m['num_q']} samples)",
                     _fmt(m["mauve"], 4) + (" (fewer than 500 samples per side)" if m.get("warning") else "")))
    if "val_ppl" in res:
        rows.append((f"val PPL ({res['val_ppl']['bound']})", _fmt(res["val_ppl"]["ppl"], 3)))
    lines = ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def write_outputs(res: dict[str, Any], json_path: str | Path) -> tuple[Path, Path]:
    """Write `json_path` and the table beside it (same stem, .md)."""
    json_path = Path(json_path)
    atomic_write_json(json_path, res, indent=1, default=float)
    md = json_path.with_suffix(".md")
    atomic_write_text(md, format_table(res))
    return json_path, md
