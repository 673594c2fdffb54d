"""The speed benchmark's device and dtype: a bfloat16 run end to end on CPU (every model in that dtype, weights of
two bytes, the table saying where it ran), `--device cuda` where torch sees no GPU, and the helpers that choose
how a call is timed and its peak memory taken (correct on a machine with CUDA too)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models are op-overhead bound: on a shared 2-core machine two threads fight and a pass takes 100x longer."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny(**kw):
    from paradistill.eval.bench import BenchConfig

    return BenchConfig(**{**dict(dim=32, n_layers=2, n_heads=2, vocab_size=40, lengths=[16], batch_sizes=[2],
                                 mdlm_steps=[4], methods=["ar", "mdlm", "blockcache"], block=8, block_steps=2,
                                 rounds=2, warmup=1, forward_tokens=256, ar_no_cache=False, mdlm_no_cache=False,
                                 dtype="bfloat16"), **kw})


def test_bfloat16_bench_runs_end_to_end_with_two_byte_weights(tmp_path, one_thread):
    from paradistill.eval.bench_cases import run_benchmark
    from paradistill.eval.bench_report import markdown_table
    from paradistill.models.transformer import ModelConfig, Transformer

    bc = _tiny(overhead_rounds=1, overhead_length=16)
    res = run_benchmark(bc, out=tmp_path, progress=False)
    assert res["config"]["dtype"] == "bfloat16" and res["config"]["device"] == "cpu"
    assert res["machine"]["dtype"] == "bfloat16" and res["machine"]["device"] == "cpu" and res["machine"]["device_name"]
    params = sum(p.numel() for p in Transformer(ModelConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2)).parameters())
    assert res["parameters"] == params and res["weight_bytes"] == 2 * params
    cases = {c["case"]: c for c in res["cases"]}
    assert set(cases) == {"ar kv-cache", "mdlm T=4 cached", "mdlm B=8 S=2 no-cache", "mdlm B=8 S=2 prefix",
                          "mdlm B=8 S=2 dual"}
    assert cases["ar kv-cache"]["nfe"] == 15 and cases["mdlm B=8 S=2 prefix"]["nfe"] == 4
    assert all(c["tokens_per_s"] > 0 and len(c["times"]) == 2 for c in cases.values())
    # the warm-up calls are timed too (a GPU's first call of a new shape can cost far more than later ones)
    assert all(len(c["warmup_s"]) == res["config"]["warmup"] and min(c["warmup_s"]) > 0 for c in cases.values())
    assert res["peak_matmul_gflops"] > 0 and res["copy_bandwidth_gbs"] > 0 and res["sampler_overhead"]["overhead"]
    # the roofline's KV cache holds bf16 values: 2 (K, V) x layers x dim x 2 bytes per cached token
    ar = next(q for q in res["roofline"] if q["method"] == "ar kv-cache")
    kv = 2 * 2 * 32 * 2
    assert ar["bytes_per_token"] == pytest.approx(15 * (2 * params + 2 * 8 * kv) / (2 * 16))
    table = (tmp_path / "table.md").read_text()
    assert "threads, bfloat16, torch" in table.splitlines()[0] and "peak bf16 matmul" in table
    assert "| first call (s) |" in table
    # the same results as if timed on a GPU: the title names the GPU and the dtype instead of the threads
    gpu = {**res, "machine": {**res["machine"], "device": "cuda", "device_name": "NVIDIA H200"}}
    assert "V=40, NVIDIA H200, bfloat16, torch " in markdown_table(gpu).splitlines()[0]


def test_every_bench_model_is_built_in_the_bench_dtype():
    """AR, MDLM, BD3-LM, GD, the HF baseline and ADJUST's base are bf16; ADJUST's sampler layer stays float32
    (its adapter feeds it float32 hidden states) and samples."""
    from paradistill.eval.bench_cases import _cases, bench_tokenizer, case_fn
    from paradistill.eval.bench_extra import HFCase
    from paradistill.models.transformer import ModelConfig

    bc = _tiny(methods=["ar", "hf", "mdlm", "bd3lm", "gd", "adjust"], bd3_block=8, adjust_k=[2])
    cfg = ModelConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2, max_len=32)
    cases = _cases(bc, cfg, bench_tokenizer(40), 16, batch=2)
    assert {name.split()[0] for name, *_ in cases} == {"ar", "hf-gpt2", "mdlm", "bd3lm", "gd-mdlm", "adjust"}
    for name, loaded, options in cases:
        model = loaded.model
        if name == "adjust K=2":
            assert {p.dtype for p in model.base.parameters()} == {torch.bfloat16}
            assert {p.dtype for p in model.sampler.parameters()} == {torch.float32}
            with torch.no_grad():
                nfe, extra = case_fn(loaded, options, 2, 16)()
            assert nfe > 0 and extra["sampler_passes"] > 0
        else:
            assert {p.dtype for p in model.parameters()} == {torch.bfloat16}, name
        assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert any(isinstance(loaded, HFCase) for _, loaded, _ in cases)


def test_device_cuda_without_a_gpu_is_a_one_line_user_error(tmp_path, capsys):
    from paradistill.cli import main
    from paradistill.errors import UserError
    from paradistill.eval.bench import BenchConfig

    auto = BenchConfig(device="auto")
    auto.validate()
    assert auto.device == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="--dtype fp8"):
        BenchConfig(dtype="fp8").validate()
    with pytest.raises(UserError, match="--device tpu"):
        BenchConfig(device="tpu").validate()
    if torch.cuda.is_available():
        BenchConfig(device="cuda", dtype="bfloat16").validate()  # a GPU is there: nothing to complain about
        return
    with pytest.raises(UserError) as err:
        BenchConfig(device="cuda").validate()
    assert "\n" not in str(err.value) and "--device cpu" in str(err.value)
    threads = torch.get_num_threads()
    try:
        code = main(["bench", "--device", "cuda", "--dtype", "bfloat16", "--out", str(tmp_path / "b")])
    finally:
        torch.set_num_threads(threads)  # main() sets the process's threads
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("paradistill: error: --device cuda: ")
    assert not (tmp_path / "b").exists()  # refused before anything was written


def test_timing_and_peak_memory_helpers_choose_by_device():
    from paradistill.eval.bench import timings
    from paradistill.eval.bench_device import PeakRSS, timed
    from paradistill.eval.bench_device import PeakCUDA, element_bytes, is_cuda, peak_memory, sync

    assert isinstance(peak_memory("cpu"), PeakRSS)
    assert isinstance(peak_memory("cuda"), PeakCUDA) and isinstance(peak_memory("cuda:0"), PeakCUDA)
    assert not is_cuda("cpu") and is_cuda("cuda") and is_cuda(torch.device("cuda", 1))
    assert [element_bytes(d) for d in ("float32", "bfloat16", "float16")] == [4, 2, 2]
    sync("cpu")  # nothing to wait for
    sec, out = timed(lambda: 7, "cpu")
    assert out == 7 and sec >= 0
    big = 64 * 2**20
    times, result, peak = timings(lambda: torch.ones(big // 4).sum(), 2, 1, "cpu")
    assert len(times) == 2 and float(result) == big // 4
    assert peak == 0 or peak >= big // 2  # resident memory of the buffer (0 where /proc cannot be read)
    if torch.cuda.is_available():
        with peak_memory("cuda") as mem:
            x = torch.ones(big // 4, device="cuda")
            del x
        assert mem.peak >= big


def test_dynamic_cache_decoding_on_cuda_leaves_out_cudnn_attention(monkeypatch):
    """cuDNN attention builds a graph per new key length (~50 ms each on an H200), and a dynamic KV cache meets a
    new length at every step: eager decoding into one asks SDPA for the other backends, and only then."""
    import contextlib

    from paradistill.models.transformer import ModelConfig, Transformer, decode_allows_cudnn, decode_attention_context

    monkeypatch.delenv("PARADISTILL_DECODE_CUDNN", raising=False)
    assert not decode_allows_cudnn()
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert isinstance(decode_attention_context(cpu, True), contextlib.nullcontext)
    assert isinstance(decode_attention_context(cuda, False), contextlib.nullcontext)  # whole-sequence passes
    flags = (torch.backends.cuda.cudnn_sdp_enabled, torch.backends.cuda.flash_sdp_enabled,
             torch.backends.cuda.mem_efficient_sdp_enabled, torch.backends.cuda.math_sdp_enabled)
    before = [f() for f in flags]
    with decode_attention_context(cuda, True):
        assert [f() for f in flags] == [False, True, True, True]
    assert [f() for f in flags] == before  # restored on the way out
    monkeypatch.setenv("PARADISTILL_DECODE_CUDNN", "1")  # the switch that compares the two
    assert decode_allows_cudnn()
    assert isinstance(decode_attention_context(cuda, True), contextlib.nullcontext)
    monkeypatch.delenv("PARADISTILL_DECODE_CUDNN")

    # the decoded logits do not depend on the choice (on a GPU: both paths run; on CPU: the CPU path)
    device = cuda if torch.cuda.is_available() else cpu
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2)).to(device).eval()
    idx = torch.randint(0, 40, (2, 6), device=device)
    outs = []
    for env in ("0", "1"):
        monkeypatch.setenv("PARADISTILL_DECODE_CUDNN", env)
        cache = model.new_cache(2, 8)
        with torch.no_grad():
            model(idx[:, :5], attn="causal", cache=cache, cache_write=True)
            outs.append(model(idx[:, 5:], attn="causal", cache=cache, cache_write=True).logits)
    full = model(idx, attn="causal").logits[:, 5:]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outs[0], full, rtol=1e-4, atol=1e-4)
