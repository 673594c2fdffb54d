"""`paradistill quickstart`: every method end to end on one corpus, one report.

1 data -> 2 AR teacher, MDLM, BD3-LM -> 3 Gumbel-distilled MDLM (from the AR teacher) -> 4 SDTT rounds on the
MDLM -> 5 ADJUST sampler on the MDLM -> 6/7 sample every model at several step counts and evaluate -> speed
side by side -> 8 report.md + pareto.png. Stages are fingerprinted and resumable (pipeline.py); the budget is
turned into optimizer steps by a short measurement of this machine's training speed, saved in
OUT/plan.json so that a re-run keeps the same plan (and skips finished stages).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..api import build_objective, load_recipe, model_config, prepare
from ..data.tokenizers import WordTokenizer
from ..errors import UserError
from ..io import atomic_write_text, writable_location
from ..models.transformer import Transformer
from ..pipeline import Pipeline, Stage, worker_count
from . import evaluation, stages
from .report import write_report


@dataclass
class QuickstartConfig:
    corpus: str = "builtin"
    tokenizer: str | None = None  # default: builtin for the builtin corpus, char otherwise
    budget_minutes: float = 16.0
    out: str = "quickstart"
    recipe: str = "tiny"
    seed: int = 0
    num_samples: int = 64
    check_samples: int = 256  # samples of the rows the 2x target is checked on (AR, MDLM T=64, MDLM T=L)
    workers: int = 0  # 0: one per core, at most 2
    overrides: list[str] | None = None  # recipe KEY=VALUE overrides (e.g. model.dim=128)
    plan_overrides: dict[str, Any] | None = None  # replace computed plan entries (tests, experiments)
    from_scratch: bool = False  # train AR / MDLM / BD3-LM here instead of starting from the shipped bases

    def validate(self) -> None:
        if self.budget_minutes < 2:
            raise UserError(f"--budget-minutes={self.budget_minutes}: give the run at least 2 minutes")
        if self.num_samples < 16:
            raise UserError(f"--num-samples={self.num_samples}: use at least 16 samples per setting (MAUVE needs 16)")
        if self.check_samples < 0:
            raise UserError(f"--check-samples={self.check_samples}: must be >= 0 (0: --num-samples for those rows too)")


def data_overrides(cfg: QuickstartConfig) -> list[str]:
    builtin = cfg.corpus == "builtin"
    tokenizer = cfg.tokenizer or ("builtin" if builtin else "char")
    if builtin and tokenizer != "builtin":
        raise UserError("the builtin corpus uses its own word tokenizer: drop --tokenizer or pass --tokenizer builtin")
    return [f"data.corpus={cfg.corpus}", f"data.tokenizer={tokenizer}", f"data.mode={'aligned' if builtin else 'wrap'}",
            *(cfg.overrides or [])]


def calibrate(recipe, vocab_size: int, seconds: float = 8.0) -> float:
    """Optimizer steps per minute of MDLM training with one thread (random tokens: speed does not depend on them)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tok = WordTokenizer.from_vocab([f"w{i}" for i in range(vocab_size - 4)])
        objective, _ = build_objective("mdlm", recipe, tok)
        model = Transformer(model_config(recipe, vocab_size))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = torch.randint(4, vocab_size, (recipe.train.batch_size, recipe.data.seq_len))
        gen = torch.Generator().manual_seed(0)
        steps, start = 0, None
        while True:
            loss, _ = objective.loss(model, batch, gen)
            loss.backward()
            opt.step()
            opt.zero_grad()
            steps += 1
            if steps == 2:
                start = time.perf_counter()
            if start and time.perf_counter() - start > seconds and steps >= 6:
                return 60 * (steps - 2) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


BASES = {"ar": "builtin:ar", "mdlm": "builtin:mdlm", "bd3lm": "builtin:bd3lm-b4"}


def shipped_bases(cfg: QuickstartConfig) -> dict[str, str] | None:
    """The shipped bases fit the built-in corpus with the tiny recipe, unmodified; otherwise train from scratch."""
    if cfg.from_scratch or cfg.corpus != "builtin" or cfg.recipe != "tiny" or cfg.overrides:
        return None
    from ..bases import names, short_name

    return dict(BASES) if all(short_name(v) in names() for v in BASES.values()) else None


def make_plan(cfg: QuickstartConfig, recipe, steps_per_minute: float, vocab_size: int) -> dict[str, Any]:
    """Step counts that fit the budget on this machine: two workers, ~80% of the budget in training."""
    rate = 0.85 * steps_per_minute  # both cores busy while stages run side by side
    b = cfg.budget_minutes
    base = max(100, int(0.20 * b * rate))
    length = recipe.data.seq_len
    bases = shipped_bases(cfg)
    return {
        "bases": bases,  # None: AR / MDLM / BD3-LM trained here (--from-scratch, or a corpus without bases)
        "corpus": cfg.corpus, "tokenizer": data_overrides(cfg)[1].split("=", 1)[1], "builtin": cfg.corpus == "builtin",
        "seq_len": length, "seed": cfg.seed, "num_samples": cfg.num_samples,
        "check_samples": max(cfg.num_samples, cfg.check_samples), "budget_minutes": b,
        "steps_per_minute": steps_per_minute, "vocab_size": vocab_size,
        "ar_steps": base, "base_steps": base, "bd3_steps": max(50, int(0.12 * b * rate / 2.0)), "block_size": 4,
        # the noise projection is added to the MASK embedding, zero-initialised (results/gumbel_distillation)
        "gd_teacher": "ar", "gd_overrides": ["gumbel.extra_mode=add"],
        "sdtt_from": 64, "sdtt_to": 16, "sdtt_steps_per_round": max(40, int(0.09 * b * rate / 1.8)),
        "adjust_trajectories": 256, "adjust_steps": max(60, int(0.10 * b * rate / 3.0)),
        "mdlm_steps": [4, 8, 16, 32, 64], "gd_steps": [4, 8, 16, 32], "bd3_steps_per_block": [1, 2, 4],
        "adjust_k": [2, 4, 8],
        "eval_groups": {"eval-a": ["ar", "mdlm", "gd", "bd3lm"], "eval-b": ["sdtt", "adjust"]},
    }


def build_stages(plan: dict[str, Any]) -> list[Stage]:
    p = {k: v for k, v in plan.items() if k not in ("steps_per_minute",)}
    p.setdefault("bases", None)
    p.setdefault("check_samples", p["num_samples"])
    train = lambda *keys: {k: p[k] for k in keys}  # noqa: E731  (what fingerprints each stage)
    return [
        Stage("data", stages.stage_data, [], train("corpus", "tokenizer", "seq_len"), 0.2),
        Stage("ar", stages.stage_ar, ["data"], train("ar_steps", "seed", "bases"), 0.2 * plan["budget_minutes"]),
        Stage("mdlm", stages.stage_mdlm, ["data"], train("base_steps", "seed", "bases"), 0.2 * plan["budget_minutes"]),
        Stage("gd", stages.stage_gd, ["ar", "mdlm"] if p["bases"] else ["ar"], train("base_steps", "gd_teacher", "gd_overrides", "seed", "bases"),
              0.25 * plan["budget_minutes"]),
        Stage("bd3lm", stages.stage_bd3lm, ["data"], train("bd3_steps", "block_size", "seed", "bases"), 0.12 * plan["budget_minutes"]),
        Stage("sdtt", stages.stage_sdtt, ["mdlm"], train("sdtt_from", "sdtt_to", "sdtt_steps_per_round"),
              0.18 * plan["budget_minutes"]),
        Stage("adjust", stages.stage_adjust, ["mdlm"], train("adjust_trajectories", "adjust_steps"),
              0.12 * plan["budget_minutes"]),
        Stage("eval-a", evaluation.stage_eval, ["ar", "mdlm", "gd", "bd3lm"],
              train("num_samples", "check_samples", "mdlm_steps", "gd_steps", "bd3_steps_per_block"), 0.08 * plan["budget_minutes"]),
        Stage("eval-b", evaluation.stage_eval, ["ar", "mdlm", "sdtt", "adjust"], train("num_samples", "adjust_k"),
              0.08 * plan["budget_minutes"]),
        Stage("speed", evaluation.stage_speed, ["eval-a", "eval-b", "ar", "mdlm", "gd", "sdtt", "adjust", "bd3lm"],
              train("num_samples"), 0.04 * plan["budget_minutes"]),
    ]


def load_or_make_plan(cfg: QuickstartConfig, out: Path, recipe, vocab_size: int, echo) -> dict[str, Any]:
    path = out / "plan.json"
    key = {"config": asdict(cfg), "recipe": recipe.name}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            echo(f"[plan] reusing {path} (delete it to re-measure this machine)")
            return saved["plan"]
    echo("[plan] measuring this machine's training speed (about 10 s)...")
    rate = calibrate(recipe, vocab_size)
    plan = make_plan(cfg, recipe, rate, vocab_size)
    plan.update(cfg.plan_overrides or {})
    atomic_write_text(path, json.dumps({"key": key, "plan": plan}, indent=2))
    if plan.get("bases"):
        echo(f"[plan] starting from the shipped bases {', '.join(plan['bases'].values())} (--from-scratch trains "
             f"them here); {rate:.0f} MDLM steps/min on one thread -> GD {plan['base_steps']} steps, SDTT "
             f"{plan['sdtt_steps_per_round']}/round, ADJUST {plan['adjust_steps']}")
    else:
        echo(f"[plan] {rate:.0f} MDLM steps/min on one thread -> AR/MDLM/GD {plan['base_steps']} steps, BD3-LM "
             f"{plan['bd3_steps']}, SDTT {plan['sdtt_steps_per_round']}/round, ADJUST {plan['adjust_steps']}")
    return plan


def run_quickstart(cfg: QuickstartConfig, echo=print) -> Path:
    cfg.validate()
    started = time.perf_counter()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file, not a folder: choose another path")
    writable_location(out / "report.md", "--out")
    overrides = data_overrides(cfg)
    recipe = load_recipe(cfg.recipe, overrides)  # every section validated before anything is written
    out.mkdir(parents=True, exist_ok=True)
    echo(f"[data] preparing {cfg.corpus} ...")
    data = prepare(recipe, progress=True)
    plan = load_or_make_plan(cfg, out, recipe, data.tokenizer.vocab_size, echo)
    ctx = {"recipe": cfg.recipe, "overrides": overrides, "seed": cfg.seed, "plan": plan}
    workers = cfg.workers or worker_count()
    results = Pipeline(out, build_stages(plan), ctx, workers=workers, echo=echo).run()
    report = write_report(out, plan, results, time.perf_counter() - started)
    echo(report.read_text())
    echo(f"[done] {report} and {out / 'pareto.png'} in {(time.perf_counter() - started) / 60:.1f} min")
    return report
