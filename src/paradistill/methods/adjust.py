"""Driver for ADJUST: record one-token-per-pass trajectories of a frozen masked-diffusion base (resumable by
shard), then train a sampler layer on them (distill/adjust.py has the layer and its objective)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..distill.adjust import AdjustConfig, AdjustObjective, SamplerLayer, init_from_base, sampler_config_for
from ..distill.adjust_adapters import ParadistillAdapter
from ..distill.adjust_store import generate_trajectories, load_hidden_store, load_trajectories
from ..errors import UserError
from ..generation import build_template
from ..kinds import kind_names
from ..loader import load_checkpoint
from ..loading.refs import resolve
from ..recipes import Recipe
from ..sampling.base import SamplingOptions
from ..train.loop import train


def read_prompts(prompts_file: str | Path) -> list[str]:
    """Non-empty lines of a prompts file."""
    try:
        with open(prompts_file) as f:
            prompts = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise UserError(f"--prompts '{prompts_file}' cannot be read ({e}): pass a text file, one prompt a line") from None
    if not prompts:
        raise UserError(f"--prompts '{prompts_file}' holds no prompt: one prompt per line, or drop --prompts")
    return prompts


def templates_for(base, length: int, prompts: list[str] | None = None, chat: bool = False,
                  gen_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generation templates [P, L] and their fixed masks: BOS only, or one per prompt. `chat`: each prompt is a
    user message put through the base tokenizer's chat template (instruct models; the template brings its own
    BOS). `gen_length`: L = the longest template + gen_length (shorter templates generate more), instead of
    `length`."""
    tok, keep_bos = base.tokenizer, base.record.keep_bos
    if chat and not prompts:
        raise UserError("--chat applies the chat template to prompts: pass --prompts FILE (one user message a "
                        "line), or drop --chat for unconditional trajectories")
    if chat:
        try:
            tok.chat_ids(prompts[0])
        except UserError:
            raise UserError(f"--chat: the tokenizer of base '{base.path}' has no chat template: drop --chat (the "
                            "prompts are then plain text) or use an instruct model") from None

    def build(text, n, gen=None):
        return build_template(tok, n, None if chat else text, None, keep_bos, text if chat else None, gen)

    texts = prompts or [None]
    if gen_length is not None:
        if gen_length < 1:
            raise UserError(f"--gen-length {gen_length}: must be >= 1")
        length = max(len(build(text, None, 0)[0]) for text in texts) + gen_length
    rows = [build(text, length) for text in texts]
    return torch.stack([r for r, _ in rows]), torch.stack([f for _, f in rows])


def distill_adjust(base_ref: str | Path, recipe: Recipe, out: str | Path, prompts_file: str | None = None,
                   traj_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                   chat: bool = False, gen_length: int | None = None):
    """Trajectories of the base `base_ref`, then an ADJUST sampler layer with `recipe.adjust` into `out`.
    `chat`: the prompts are user messages through the base's chat template; `gen_length`: the trajectories'
    length is the longest prompt template + this (default: the base's training length, else data.seq_len)."""
    # resolve() turns builtin:NAME (and other registered schemes) into the local directory the record keeps
    base = load_checkpoint(resolve(base_ref), expect_kinds=kind_names(family="diffusion", noise_conditioned=False))
    length = base.record.seq_len if "seq_len" in base.method else recipe.data.seq_len
    templates, fixed = templates_for(base, length, read_prompts(prompts_file) if prompts_file else None, chat,
                                     gen_length)
    context = getattr(base.model.cfg, "max_len", None)
    if context is not None and templates.shape[1] > context:
        raise UserError(f"trajectories of {templates.shape[1]} tokens exceed the {context}-token context of base "
                        f"'{base.path}': shorten the prompts or lower --gen-length / data.seq_len")
    return train_adjust(base, templates, fixed, recipe.adjust, recipe.train, out, traj_dir, resume=resume,
                        progress=progress)


def train_adjust(base, templates: torch.Tensor, fixed: torch.Tensor, cfg: AdjustConfig, train_cfg, out,
                 traj_dir=None, resume: bool = False, progress: bool = True):
    """Record trajectories of the loaded base (resumable), then train a sampler layer into run dir `out`.
    templates, fixed: [P, L] generation templates (BOS, or prompts). Returns train.loop.TrainResult."""
    cfg.validate()
    out = Path(out)
    if (out / "latest.json").is_file() and not resume:
        raise UserError(f"'{out}' already holds an ADJUST run: pass --resume to continue it, or another --out")
    adapter = ParadistillAdapter.from_loaded(base)
    traj_dir = Path(traj_dir) if traj_dir else out / "trajectories"
    length = int(templates.shape[1])
    gb = cfg.trajectories * length * length * adapter.hidden_size * 2 / 1e9
    if cfg.cache_hidden and gb > cfg.cache_max_gb:
        raise UserError(f"the hidden-state cache of {cfg.trajectories} trajectories of length {length} would take "
                        f"{gb:.1f} GB (> adjust.cache_max_gb={cfg.cache_max_gb}): set adjust.cache_hidden=false "
                        "(fresh full passes in training), record fewer trajectories, or raise adjust.cache_max_gb")
    generate_trajectories(adapter, traj_dir, templates, fixed, cfg.trajectories, cfg.traj_batch_size,
                          cfg.shard_size, cfg.traj_seed, SamplingOptions(temperature=cfg.traj_temperature),
                          progress=progress, cache_hidden=cfg.cache_hidden)
    rows = load_trajectories(traj_dir, adapter.fingerprint())
    store = load_hidden_store(traj_dir, adapter.fingerprint()) if cfg.cache_hidden else None
    n_val = max(1, int(round(cfg.val_fraction * len(rows))))
    if len(rows) - n_val < cfg.batch_size:
        raise UserError(f"{len(rows) - n_val} training trajectories are fewer than adjust.batch_size="
                        f"{cfg.batch_size}: record more (--trajectories) or lower adjust.batch_size")
    torch.manual_seed(train_cfg.seed)
    sampler = SamplerLayer(sampler_config_for(adapter, cfg, base.model.cfg.n_heads))
    from_base = cfg.init_from_base and init_from_base(sampler, adapter)
    tcfg = replace(train_cfg, max_steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, ema=cfg.ema,
                   warmup_steps=cfg.warmup_steps, eval_batches=cfg.eval_batches,
                   eval_every=min(train_cfg.eval_every, cfg.steps), checkpoint_every=min(train_cfg.checkpoint_every, cfg.steps))
    method = {"base": str(Path(base.path).resolve()), "base_kind": base.kind, "base_fingerprint": adapter.fingerprint(),
              "seq_len": int(templates.shape[1]), "keep_bos": base.record.keep_bos,
              "trajectories": str(traj_dir.resolve()), "num_trajectories": len(rows), "adjust": asdict(cfg),
              "sampler_init": "base first block" if from_base else "random"}
    if adapter.block_size is not None:
        method["block_size"] = adapter.block_size
    return train(AdjustObjective(adapter, cfg, store), sampler, rows[n_val:], rows[:n_val], tcfg, out, base.tokenizer,
                 method, resume=resume, progress=progress)
