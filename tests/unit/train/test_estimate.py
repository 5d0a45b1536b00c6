from pathlib import Path

import pytest

import tools.train.estimate as est
from tools.train.config import build_config

BENCH = Path(__file__).resolve().parents[3] / "bench"


def test_memory_parts_add_up_and_checkpointing_saves_activation_memory():
    common = dict(params=1e9, hidden=2048, layers=16, vocab=128256, lora=11_000_000, batch_tokens=4 * 400,
                  chunk=1024, weight_bytes=2, act_bytes=2, intermediate=8192)
    plain = est.memory_parts(**common, grad_ckpt=False)
    ckpt = est.memory_parts(**common, grad_ckpt=True)
    assert plain["weights"] == pytest.approx(1e9 * 2 / 2**20, rel=1e-3)
    assert plain["lora"] == pytest.approx(11e6 * 16 / 2**20, rel=1e-3)
    assert ckpt["activations"] < plain["activations"] / 5
    assert plain["output_layer"] == pytest.approx(1024 * 128256 * 4 * est.OUTPUT_COPIES / 2**20, rel=1e-3)
    assert "runtime" not in plain
    assert est.total_mb(plain) == pytest.approx(sum(plain.values()) * est.OVERHEAD, rel=1e-3)


def test_a_wider_mlp_needs_more_activation_memory():
    common = dict(params=5e8, hidden=896, layers=24, vocab=151936, lora=8_800_000, batch_tokens=16384, chunk=3533,
                  weight_bytes=2, act_bytes=2, grad_ckpt=False)
    narrow = est.memory_parts(**common, intermediate=4 * 896)
    wide = est.memory_parts(**common, intermediate=4864)
    assert wide["activations"] > narrow["activations"] * 1.2
    assert est.memory_parts(**common)["activations"] == narrow["activations"]  # 4 × hidden when not known


def test_cpu_runs_count_the_runtime_without_overhead():
    parts = est.memory_parts(params=1e6, hidden=64, layers=2, vocab=1000, lora=1000, batch_tokens=100, chunk=100,
                             weight_bytes=4, act_bytes=4, grad_ckpt=False, runtime_mb=est.RUNTIME_MB_CPU)
    assert parts["runtime"] == est.RUNTIME_MB_CPU
    rest = sum(v for k, v in parts.items() if k != "runtime")
    assert est.total_mb(parts) == pytest.approx(rest * est.OVERHEAD + est.RUNTIME_MB_CPU, abs=0.2)


def _recorded_peaks() -> list[tuple[str, str, int, float, float, bool]]:
    """(shape, run, tokens in the largest step, measured peak MB, estimate MB, checkpointed) from the recorded H100 run.

    The step sizes are rebuilt from the benchmark's own seeded data, so nothing here is copied by hand.
    """
    import json
    import sys

    sys.path.insert(0, str(BENCH))
    import train_throughput as tt

    from tools.train.batching import packed_batches, round_up_row

    recorded = json.loads((BENCH / "results" / "h100.json").read_text())
    out = []
    for shape, r in recorded["shapes"].items():
        kw = tt.SHAPES[shape][1]
        settings = r["ours_settings"]
        h, layers, vocab, inter = kw["hidden_size"], kw["num_hidden_layers"], kw["vocab_size"], kw["intermediate_size"]
        heads, kv = kw["num_attention_heads"], kw["num_key_value_heads"]
        head_dim = kw.get("head_dim", h // heads)
        params = vocab * h + layers * (2 * h * heads * head_dim + 2 * h * kv * head_dim + 3 * h * inter)
        lora = 16 * layers * (2 * (h + heads * head_dim) + 2 * (h + kv * head_dim) + 3 * (h + inter))
        steps = r["ours"]["steps"]
        examples = tt.make_examples(steps * tt.BATCH, vocab, tt.GPU_MIX, seed=1234)
        mix_tokens = max(round_up_row(row, settings["row_multiple"])["input_ids"].shape[1]
                         for step in tt.step_batches(examples, steps)
                         for row in packed_batches(step, settings["max_tokens"], seed=0))
        for run, tokens in (("ours", mix_tokens), ("ours_full_length", tt.BATCH * tt.GPU_MIX.max_len)):
            ckpt = r[run]["checkpointed_steps"] > 0
            parts = est.memory_parts(params=params, hidden=h, layers=layers, vocab=vocab, lora=lora,
                                     batch_tokens=tokens, chunk=settings["chunk_size"], weight_bytes=2, act_bytes=2,
                                     grad_ckpt=ckpt, intermediate=inter)
            out.append((shape, run, tokens, r[run]["peak_mem_mb"], est.total_mb(parts), ckpt))
    return out


def test_estimate_is_within_20_percent_of_the_peaks_measured_on_a_gpu():
    rows = _recorded_peaks()
    assert {r[0] for r in rows} == {"qwen0.5b", "llama1b", "phi4mini"} and any(r[5] for r in rows)
    assert any(r[2] == 16384 for r in rows) and any(r[2] < 8192 for r in rows)
    for shape, run, tokens, measured, estimate, _ in rows:
        assert abs(estimate / measured - 1) <= 0.20, (shape, run, tokens, measured, estimate)


def test_verdict_says_what_fits_and_how_long(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 16 * 1024)
    cfg = build_config("qwen2.5-0.5b", str(chat_file), preset="balanced")
    e = est.estimate(cfg, device="cpu", lengths=[400] * 60)
    assert e.fits and e.verdict.startswith("fits in ") and "at batch 4" in e.verdict
    assert e.steps == 41 and e.dataset_tokens == 24000 and "minutes" in e.verdict and not e.measured


def test_too_big_says_what_to_change(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 6 * 1024)
    cfg = build_config("phi-4-mini", str(chat_file), preset="communications")
    e = est.estimate(cfg, device="cpu", lengths=[1500] * 60)
    assert not e.fits and "only 6.0 GB is free" in e.verdict
    assert any("smaller base" in c for c in e.changes)
    monkeypatch.setattr(est, "available_mb", lambda device: 10 * 1024)
    small = build_config("llama-3.2-1b", str(chat_file), sets=["batch_size=16", "context=4096"])
    e = est.estimate(small, device="cpu", lengths=[3000] * 60)
    assert not e.fits and any(c.startswith("lower the batch size to ") for c in e.changes)


@pytest.mark.slow
def test_measured_warmup_times_real_steps(chat_file: Path):
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=2"])
    e = est.estimate(cfg, measure=True)
    assert e.measured and e.seconds is not None and e.seconds > 0
    assert e.examples == 12 and e.dataset_tokens > 12 * 20


def test_automatic_checkpointing_makes_a_long_step_fit_and_says_so(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 64 * 1024)
    auto = build_config("llama-3.2-1b", str(chat_file), sets=["batch_size=4", "memory_budget_gb=12"])
    e = est.estimate(auto, device="cpu", lengths=[1000] * 40)
    assert e.fits and e.checkpointing and e.step_tokens == 4000
    assert "with gradient checkpointing on the longest steps" in e.verdict and e.total_mb <= 12 * 1024
    off = build_config("llama-3.2-1b", str(chat_file), sets=["batch_size=4", "memory_budget_gb=12",
                                                              "gradient_checkpointing=false"])
    e = est.estimate(off, device="cpu", lengths=[1000] * 40)
    assert not e.fits and not e.checkpointing and "the 12.0 GB budget" in e.verdict
    assert any("--set gradient_checkpointing=auto" in c for c in e.changes)


def test_the_estimate_is_for_the_largest_step_the_engine_builds(chat_file: Path):
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=4"])
    lengths = [100] * 30 + [900]
    assert est.step_tokens(cfg, lengths, cuda=False) == 900  # one long example fills a row on its own
    assert est.step_tokens(cfg, lengths, cuda=True) == 1024  # rounded up to the GPU's row multiple
    assert est.step_tokens(cfg, [100] * 30, cuda=False) == 400
    padded = build_config("tiny-random", str(chat_file), sets=["batch_size=4", "packing=false"])
    assert est.step_tokens(padded, lengths, cuda=True) == 3600


def test_rough_time_follows_model_size_and_machine(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    from tools.train import recommend

    monkeypatch.setattr(est, "available_mb", lambda device: 64 * 1024)
    monkeypatch.setattr(recommend, "machine_cores", lambda: 2)
    lengths = [400] * 60
    small = est.estimate(build_config("qwen2.5-0.5b", str(chat_file), preset="balanced"), device="cpu",
                         lengths=lengths)
    assert small.steps == 41 and "about 27 minutes (rough" in small.verdict
    big = est.estimate(build_config("phi-4-mini", str(chat_file), preset="balanced"), device="cpu", lengths=lengths)
    assert big.seconds > 7 * small.seconds and "hours" in big.verdict
    tiny = est.estimate(build_config("tiny-random", str(chat_file), preset="balanced"), device="cpu", lengths=lengths)
    assert tiny.seconds < 30 and "seconds" in tiny.verdict  # a toy model: seconds, not the guide's minutes
    monkeypatch.setattr(recommend, "machine_cores", lambda: 8)
    faster = est.estimate(build_config("qwen2.5-0.5b", str(chat_file), preset="balanced"), device="cpu",
                          lengths=lengths)
    assert faster.seconds == pytest.approx(small.seconds / 4, rel=0.05)
