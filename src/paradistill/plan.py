"""`--dry-run`: validate a recipe and print what a run would cost before it starts.

    paradistill train mdlm --recipe owt-small --devices 8 --dry-run

Parameters are counted exactly on the meta device (no memory). Memory per device and time per 1k steps are
estimates; the assumptions are printed with them:
- memory: fp32 master weights + grads + AdamW moments (16 bytes/parameter; bf16-true: 8), sharded over all
  devices under FSDP, plus the EMA copy (4 bytes/parameter, kept whole on every device), plus activations of one
  micro-batch (per layer and token 34*H bytes in 16-bit, Korthikanti et al. 2022; the L x L attention scores
  only when the attention kernel materialises them, i.e. on CPU) and the fp32 logits (3 copies of B*L*V).
- time: a forward + backward of a reduced copy of the model (2 layers, width <= 256, L <= 128) is timed on this
  machine's accelerator; its achieved FLOP/s, times the number of devices (perfect scaling, no data loading or
  communication), converts the full model's training FLOPs (6 * matmul params * tokens + 12 * layers * L * H *
  tokens for attention) into seconds. Large models usually reach a higher FLOP/s than the reduced copy, so on
  the same hardware this tends to over-estimate the time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from .data.corpora import load_corpus
from .data.tokenizers import build_tokenizer
from .errors import UserError
from .models.transformer import ModelConfig, Transformer
from .recipes import model_config
from .train.distributed import check_devices, micro_batching

# Vocabulary sizes (MASK included) of common tokenizer specs, so a dry run needs no download.
KNOWN_VOCAB = {"hf:gpt2": 50258, "gpt2": 50258, "hf:openai-community/gpt2": 50258, "hf:bert-base-uncased": 30522, "hf:bert-base-cased": 28996}


@dataclass
class Plan:
    kind: str
    vocab_size: int
    parameters: int
    trainable: int
    tokens_per_step: int
    world: int
    micro_batch: int
    grad_accum: int
    memory_bytes: dict[str, float]
    seconds_per_1k: float
    bench: dict[str, Any]


def vocab_size_for(recipe) -> int:
    """The tokenizer's vocab size: a known table, the built-in vocabulary, or by building the tokenizer."""
    spec = str(recipe.data.tokenizer)
    if spec in KNOWN_VOCAB:
        return KNOWN_VOCAB[spec]

    texts = None
    if spec.partition(":")[0] in ("char", "word"):
        texts = load_corpus(recipe.data.corpus, num_docs=recipe.data.num_docs, seed=recipe.data.seed,
                            text_column=recipe.data.text_column)
    return build_tokenizer(spec, texts).vocab_size


@dataclass(frozen=True)
class PlanShape:
    """How a planned training differs from a plain backbone training."""
    noise_embedding: bool = False  # a Gumbel student's noise projection is part of the model
    two_streams: bool = False  # BD3-LM trains on [x_t ; x0]: twice the sequence length
    frozen_backbone: bool = False  # ADJUST: only a sampler layer trains on a frozen base
    teacher: str | None = None  # a frozen teacher runs too: "copy" (SDTT: two steps of the student's size) | "gpt2"


PLAN_SHAPES = {"ar": PlanShape(), "mdlm": PlanShape(), "bd3lm": PlanShape(two_streams=True),
               "gumbel": PlanShape(noise_embedding=True, teacher="gpt2"),
               "gumbel-bd3lm": PlanShape(noise_embedding=True, two_streams=True, teacher="gpt2"),
               "sdtt": PlanShape(teacher="copy"), "adjust": PlanShape(frozen_backbone=True)}
GPT2_SMALL_MATMUL = 12 * (4 * 768 * 768 + 2 * 3072 * 768) + 50257 * 768  # the GD teacher's per-token matmuls
GPT2_SMALL_PARAMS = GPT2_SMALL_MATMUL + 1024 * 768


def model_for(kind: str, recipe, vocab_size: int):
    """(ModelConfig, extra trainable parameters outside the backbone, sequence length seen by the model)."""
    shape = plan_shape(kind)
    changes = {"noise_embed": recipe.gumbel.embed, "noise_topk": recipe.gumbel.topk} if shape.noise_embedding else {}
    length = 2 * recipe.data.seq_len if shape.two_streams else recipe.data.seq_len
    cfg = model_config(recipe, vocab_size, **changes)
    extra = 0
    if shape.frozen_backbone:  # one transformer block + W_down (2H -> H) on a frozen base
        h = cfg.dim
        extra = 2 * h * h + (4 * h * h + 2 * cfg.mlp_ratio * h * h + 8 * h)
    return cfg, int(extra), length


def plan_shape(kind: str) -> PlanShape:
    if kind not in PLAN_SHAPES:
        raise UserError(f"no dry-run plan for '{kind}': choose one of {', '.join(PLAN_SHAPES)}")
    return PLAN_SHAPES[kind]


def teacher_costs(shape: PlanShape, cfg, params: int, tokens: int) -> tuple[float, float]:
    """(forward FLOPs, fp32 bytes) of the frozen teacher a distillation step also runs: SDTT's teacher takes two
    sampling steps (two forwards of the student's size); Gumbel Distillation runs GPT-2 small on the clean text."""
    if shape.teacher == "copy":
        return 2 * 2.0 * matmul_params(cfg) * tokens, 4.0 * params
    if shape.teacher == "gpt2":
        return 2.0 * GPT2_SMALL_MATMUL * tokens, 4.0 * GPT2_SMALL_PARAMS
    return 0.0, 0.0


def matmul_params(cfg) -> int:
    """Parameters that take part in a matmul per token (blocks + output head; the embedding is a lookup)."""
    blocks = cfg.n_layers * (4 * cfg.dim * cfg.dim + 2 * int(cfg.mlp_ratio * cfg.dim) * cfg.dim)
    return blocks + cfg.vocab_size * cfg.dim


def train_flops(cfg, tokens: int, length: int) -> float:
    return 6.0 * matmul_params(cfg) * tokens + 12.0 * cfg.n_layers * length * cfg.dim * tokens


def measure_flops_per_second(accelerator: str, precision: str, length: int, vocab: int) -> dict[str, Any]:
    """Time forward + backward of a reduced model; returns achieved FLOP/s and what was measured."""
    device = "cuda" if accelerator == "cuda" else "cpu"
    cfg = ModelConfig(vocab_size=min(vocab, 4096), dim=256, n_layers=2, n_heads=4, max_len=1024)
    bench_len, batch = min(length, 128), 4
    model = Transformer(cfg).to(device)
    x = torch.randint(0, cfg.vocab_size, (batch, bench_len), device=device)
    dtype = None  # CPU: fp32 (bf16 matmuls are emulated there and would mislead)
    if device == "cuda":
        dtype = torch.bfloat16 if "bf16" in precision else (torch.float16 if precision.startswith("16") else None)

    def step():
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            logits = model(x).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), x.reshape(-1)).backward()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    reps, start = 3, time.perf_counter()
    for _ in range(reps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / reps
    flops = train_flops(cfg, batch * bench_len, bench_len)
    return {"device": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
            "seconds_per_step": seconds, "flops_per_second": flops / seconds,
            "size": f"dim {cfg.dim}, {cfg.n_layers} layers, L {bench_len}, batch {batch}, V {cfg.vocab_size}"}


def memory_estimate(cfg, params: int, trainable: int, micro: int, length: int, precision: str,
                    strategy: str, world: int, ema: bool, accelerator: str) -> dict[str, float]:
    per_param = 8 if precision.endswith("true") and precision != "32-true" else 16
    shard = world if strategy == "fsdp" else 1
    weights_states = (params * (4 if per_param == 16 else 2) + trainable * (per_param - (4 if per_param == 16 else 2)))
    act_bytes = 2 if "16" in precision else 4
    tokens = micro * length
    per_layer = tokens * cfg.dim * 34 * act_bytes / 2
    if accelerator != "cuda":  # the math attention kernel keeps the [B, heads, L, L] scores
        per_layer += 5 * cfg.n_heads * length * tokens * act_bytes / 2
    return {"weights + grads + AdamW": weights_states / shard, "EMA copy": 4.0 * trainable if ema else 0.0,
            "activations": cfg.n_layers * per_layer, "logits": 3.0 * 4 * tokens * cfg.vocab_size}


def make_plan(kind: str, recipe, bench: bool = True, assume_tflops: float | None = None,
              device_name: str | None = None) -> Plan:
    t = recipe.train
    frozen = plan_shape(kind).frozen_backbone
    precision = "32-true" if t.precision == "32" else t.precision
    accelerator = check_devices(t.devices, t.num_nodes, t.strategy, precision, t.accelerator) \
        if t.accelerator != "auto" else ("cuda" if torch.cuda.is_available() or assume_tflops else "cpu")
    if precision == "auto":
        precision = "bf16-mixed" if accelerator == "cuda" else "32-true"
    vocab = vocab_size_for(recipe)
    cfg, extra, length = model_for(kind, recipe, vocab)
    params = cfg.num_parameters() + extra
    trainable = extra if frozen else params
    world = t.devices * t.num_nodes
    micro, accum = micro_batching(t.batch_size, world, t.micro_batch_size, t.grad_accum)
    tokens = t.batch_size * recipe.data.seq_len
    memory = memory_estimate(cfg, params, trainable, micro, length, precision, t.strategy, world, t.ema > 0,
                             accelerator)
    teacher_flops, teacher_bytes = teacher_costs(plan_shape(kind), cfg, params, t.batch_size * recipe.data.seq_len)
    if teacher_bytes:  # SDTT's teacher copy / GD's GPT-2, fp32, whole on every device
        memory["frozen teacher"] = teacher_bytes
    if assume_tflops:  # a stated device instead of a measurement on this machine
        measured = {"device": device_name or "the stated device", "seconds_per_step": float("nan"),
                    "flops_per_second": float(assume_tflops) * 1e12, "size": "assumed sustained rate, not measured"}
    else:
        measured = measure_flops_per_second(accelerator, precision, length, vocab) if bench else {}
    flops = train_flops(cfg, t.batch_size * length, length) + teacher_flops
    if frozen:  # only the sampler block trains; the frozen model runs forward (2 FLOPs per parameter)
        flops = 2.0 * matmul_params(cfg) * t.batch_size * length + 6.0 * extra * t.batch_size * length
    seconds = 1000 * flops / (measured["flops_per_second"] * world) if measured else float("nan")
    return Plan(kind, vocab, params, trainable, tokens, world, micro, accum, memory, seconds, measured)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _gib(x: float) -> str:
    return f"{x / 2**30:.2f} GiB"


def format_plan(plan: Plan, recipe) -> str:
    t = recipe.train
    lines = [f"plan: {plan.kind} with recipe '{recipe.name}' ({recipe.description})",
             f"  model        {plan.parameters:,} parameters ({plan.parameters / 1e6:.1f}M; trainable "
             f"{plan.trainable / 1e6:.1f}M), vocab {plan.vocab_size:,}, L = {recipe.data.seq_len}",
             f"  devices      {t.devices} x {t.num_nodes} node(s) = {plan.world}, strategy {t.strategy}, "
             f"precision {t.precision}",
             f"  batch        global {t.batch_size} = {plan.world} devices x {plan.grad_accum} accumulation x "
             f"{plan.micro_batch} micro-batch; {plan.tokens_per_step:,} tokens/step, "
             f"{plan.tokens_per_step * t.max_steps / 1e9:.2f}B tokens in {t.max_steps:,} steps",
             f"  optimiser    AdamW lr {t.lr:g} (warm-up {t.warmup_steps}, min ratio {t.min_lr_ratio:g}), betas "
             f"({t.beta1:g}, {t.beta2:g}), wd {t.weight_decay:g}, clip {t.grad_clip:g}, EMA {t.ema:g}"]
    total = sum(plan.memory_bytes.values())
    parts = ", ".join(f"{k} {_gib(v)}" for k, v in plan.memory_bytes.items())
    lines.append(f"  memory/dev   ~{_gib(total)} ({parts})")
    if plan.bench:
        b = plan.bench
        lines.append(f"  time         ~{plan.seconds_per_1k / 1000:.3g} s per step, ~{_duration(plan.seconds_per_1k)} per 1k steps "
                     f"(~{_duration(plan.seconds_per_1k * t.max_steps / 1000)} for {t.max_steps:,} steps)")
        how = "assumed" if b["size"].startswith("assumed") else "measured"
        lines.append(f"               {how} {b['flops_per_second'] / 1e12:.3f} TFLOP/s on {b['device']} "
                     f"({b['size']}), scaled by FLOPs; assumes perfect scaling over {plan.world} device(s)")
        if b["device"].startswith("CPU") and t.precision != "32-true":
            lines.append("               (no GPU on this machine: the time is for this CPU; run --dry-run on the "
                         "training machine for a GPU estimate)")
    return "\n".join(lines)


def print_plan(kind: str, recipe, bench: bool = True, assume_tflops: float | None = None,
               device_name: str | None = None) -> Plan:
    """Validate the recipe for `kind` and print the plan; raises UserError on a bad recipe."""
    if recipe.data.seq_len < 2:
        raise UserError(f"data.seq_len={recipe.data.seq_len}: must be >= 2")
    plan = make_plan(kind, recipe, bench=bench, assume_tflops=assume_tflops, device_name=device_name)
    print(format_plan(plan, recipe))
    return plan
