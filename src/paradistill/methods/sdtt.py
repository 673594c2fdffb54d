"""Driver for SDTT: rounds of self-distillation through time (distill/sdtt.py has the objective). Round r's student
starts as its teacher and learns to match two teacher steps with one; its checkpoint is the next round's teacher.
Finished rounds are skipped and an unfinished one resumes exactly."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..checkpoint import resolve_checkpoint, write_latest
from ..config import from_dict
from ..diffusion.objectives import DiffusionConfig
from ..distill.sdtt import SDTTConfig, SDTTObjective, forward_for
from ..errors import UserError
from ..io import atomic_write_json
from ..kinds import require_kind
from ..loader import load_checkpoint
from ..loading import load
from ..models.official import detect_format
from ..recipes import Recipe
from ..train.loop import train
from .base import prepare


@dataclass
class RoundResult:
    round: int
    teacher_steps: int
    student_steps: int
    dt: float
    checkpoint: Path
    skipped: bool  # finished by an earlier invocation
    final: bool  # the round ran all its steps (False: stopped by train.max_minutes)
    last_val: float | None = None


def carries_state(cfg: SDTTConfig, r: int) -> bool:
    """Round r of the official protocol continues the previous round: raw weights, its Adam and its EMA."""
    return cfg.protocol == "official" and r > 1


def round_dir(out: str | Path, r: int, student_steps: int) -> Path:
    return Path(out) / f"round_{r}_{student_steps}steps"


def _finished(run_dir: Path) -> bool:
    latest = run_dir / "latest.json"
    return latest.is_file() and bool(json.loads(latest.read_text()).get("final"))


def _check_teacher(loaded, rows_length: int, tokenizer) -> None:
    """A masked-diffusion teacher trained on rows of the data's length, with the data's tokenizer."""
    require_kind(loaded.kind, "SDTT (a masked-diffusion teacher)", f"teacher '{loaded.path}'", family="diffusion")
    seq_len = loaded.record.seq_len if "seq_len" in loaded.method else rows_length
    if seq_len != rows_length:
        raise UserError(f"teacher '{loaded.path}' was trained on {seq_len}-token rows but the data has "
                        f"{rows_length}: pass data.seq_len={seq_len}")
    if loaded.tokenizer is not None and tokenizer is not None and loaded.tokenizer.fingerprint() != tokenizer.fingerprint():
        raise UserError(f"teacher '{loaded.path}' uses a different tokenizer than the data: pass the recipe / "
                        "data.* overrides the teacher was trained with")


def build_round(teacher_ckpt: Path, cfg: SDTTConfig, r: int, teacher_steps: int):
    """(student model, objective, method dict) for one round; the student starts as the teacher: its EMA weights,
    or from round 2 of the official protocol the previous student's raw weights."""
    teacher = load_checkpoint(teacher_ckpt, use_ema=not carries_state(cfg, r))
    student = copy.deepcopy(teacher.model).train().requires_grad_(True)
    tok = teacher.tokenizer
    diff = from_dict(DiffusionConfig, teacher.record.diffusion, where=f"teacher '{teacher.path}': method.diffusion")
    dt = 1.0 / teacher_steps
    forward = forward_for(teacher.kind, teacher.method, teacher.model.cfg, tok.mask_id, cfg)
    objective = SDTTObjective(teacher.model, teacher.kind, cfg, dt, tok.mask_id, tok.pad_id, tok.bos_id,
                              keep_bos=teacher.record.keep_bos,
                              schedule=diff.schedule, eps=diff.eps,
                              forward=forward)
    info = {"round": r, "teacher": str(teacher_ckpt), "teacher_steps": teacher_steps,
            "steps": teacher_steps // 2, "dt": dt, **asdict(cfg)}
    method = {**teacher.method, "sdtt": info}
    return student, objective, method, tok


def distill_rounds(teacher_path: str | Path, train_data, val_data, tokenizer, train_cfg, cfg: SDTTConfig,
                   out: str | Path, resume: bool = False, progress: bool = True) -> list[RoundResult]:
    """Run every round (see module doc). Finished rounds are skipped, an unfinished one resumes exactly.
    train_data / val_data: [N, L] token arrays; train_cfg: TrainConfig (max_steps, lr, ema, warmup are set from
    `cfg`). OUT/latest.json names the last student; OUT/sdtt.json lists the rounds."""
    cfg.validate()
    out = Path(out)
    started = sorted(out.glob("round_*")) if out.is_dir() else []
    if started and not resume:
        raise UserError(f"'{out}' already holds SDTT rounds ({started[0].name}, ...): pass --resume to continue "
                        "them, or choose a new --out")
    teacher_ckpt = load(teacher_path).path
    # a published LLaDA / Dream directory is its own checkpoint; hub / foreign teachers: their converted copy
    teacher_ckpt = teacher_ckpt if detect_format(teacher_ckpt) else resolve_checkpoint(teacher_ckpt)
    _check_teacher(load_checkpoint(teacher_ckpt), train_data.shape[1], tokenizer)
    results: list[RoundResult] = []
    for r, (m_t, m_s) in enumerate(cfg.rounds(), 1):
        rdir = round_dir(out, r, m_s)
        if _finished(rdir):
            teacher_ckpt = resolve_checkpoint(rdir)
            results.append(RoundResult(r, m_t, m_s, 1.0 / m_t, teacher_ckpt, skipped=True, final=True))
            continue
        student, objective, method, tok = build_round(teacher_ckpt, cfg, r, m_t)
        tcfg = replace(train_cfg, max_steps=cfg.steps_per_round, lr=cfg.lr, ema=cfg.ema,
                       warmup_steps=min(cfg.warmup_steps, cfg.steps_per_round), seed=train_cfg.seed + r - 1)
        opt_state = ema_state = None
        carry = carries_state(cfg, r)
        if (carry or not cfg.reset_optimizer) and r > 1 and (teacher_ckpt / "train_state.pt").is_file():
            state = torch.load(teacher_ckpt / "train_state.pt", map_location="cpu", weights_only=False)
            opt_state = state["optimizer"]
            ema_state = state.get("ema") if carry else None
        res = train(objective, student, train_data, val_data, tcfg, rdir, tok, method,
                    resume=(rdir / "latest.json").is_file(), progress=progress, optimizer_state=opt_state,
                    ema_state=ema_state)
        final = res.steps >= tcfg.max_steps
        results.append(RoundResult(r, m_t, m_s, 1.0 / m_t, res.checkpoint, False, final, res.last_val))
        if not final:
            return results  # wall-clock budget spent: re-run with --resume
        teacher_ckpt = res.checkpoint
    write_latest(out, teacher_ckpt, len(results), final=True)
    summary = [{**asdict(x), "checkpoint": str(x.checkpoint)} for x in results]
    atomic_write_json(out / "sdtt.json", {"config": asdict(cfg), "rounds": summary}, indent=2, default=str)
    return results


def distill_sdtt(teacher: str | Path, recipe: Recipe, out: str | Path, resume: bool = False,
                 progress: bool = True) -> list[RoundResult]:
    """Every SDTT round of `recipe.sdtt` from `teacher` on the recipe's data, into run directory `out`."""
    _check_teacher(load(teacher), recipe.data.seq_len, None)  # before any data work
    data = prepare(recipe, progress=progress)
    return distill_rounds(teacher, data.train, data.val, data.tokenizer, recipe.train, recipe.sdtt, out,
                          resume=resume, progress=progress)

