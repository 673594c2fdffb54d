"""Driver for Gumbel Distillation: teacher, data (online, or offline teacher samples), the noise-conditioned
student and its objective (distill/gumbel.py), then the shared training loop."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..distill.gumbel import STUDENTS, GumbelObjective, offline_rows
from ..errors import UserError
from ..models.transformer import Transformer
from ..recipes import model_config
from ..train.loop import train
from .base import build_objective, init_weights_from, prepare
from .teachers import load_teacher


def distill_gumbel(teacher_spec: str, student: str, recipe, out: str | Path, init: str | None = None,
                 resume: bool = False, progress: bool = True, threads: int | None = None):
    """Distil `teacher_spec` into a noise-conditioned `student` (mdlm | bd3lm) with the recipe; see module doc."""
    if threads:
        torch.set_num_threads(threads)
    if student not in STUDENTS:
        raise UserError(f"--student {student!r}: choose one of {', '.join(STUDENTS)}")
    cfg = recipe.gumbel
    data = prepare(recipe, progress=progress)
    tok = data.tokenizer
    teacher = load_teacher(teacher_spec)
    teacher.check_student(tok)
    base, method = build_objective(student, recipe, tok)
    objective = GumbelObjective(base, teacher, cfg, tok.mask_id)
    method.update(gumbel=asdict(cfg), teacher=str(teacher_spec), student=student)
    embed = "none" if cfg.noise == "none" else cfg.embed
    torch.manual_seed(recipe.train.seed)
    model = Transformer(model_config(recipe, tok.vocab_size, noise_embed=embed, noise_topk=cfg.topk,
                                     extra_mode=cfg.extra_mode, noise_logit_skip=cfg.logit_skip))
    if cfg.zero_init and cfg.extra_mode == "add" and model.noise_embed is not None:
        for p in model.noise_embed.parameters():
            torch.nn.init.zeros_(p)
    if init:
        init_weights_from(model, init)
        method["init"] = str(init)
    train_rows, val_rows = data.train, data.val
    if cfg.extraction == "offline":
        n_train = cfg.offline_samples or len(data.train)
        train_rows, val_rows = offline_rows(teacher, Path(out), n_train, cfg.offline_val_samples,
                                            recipe.data.seq_len, tok, recipe.train.seed, progress)
    return train(objective, model, train_rows, val_rows, recipe.train, out, tok, method, resume=resume,
                 progress=progress)
