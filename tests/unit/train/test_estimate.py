from pathlib import Path

import pytest

import tools.train.estimate as est
import tools.train.memory as mem
import tools.train.planning as planning
import tools.train.timing as timing
from tools.train.config import build_config
from tools.units import human_mb

BENCH = Path(__file__).resolve().parents[3] / "bench"


def test_memory_parts_add_up_and_checkpointing_saves_activation_memory():
    common = dict(params=1e9, hidden=2048, layers=16, vocab=128256, lora=11_000_000, batch_tokens=4 * 400,
                  chunk=1024, weight_bytes=2, act_bytes=2, intermediate=8192)
    plain = mem.memory_parts(**common, grad_ckpt=False)
    ckpt = mem.memory_parts(**common, grad_ckpt=True)
    assert plain["weights"] == pytest.approx(1e9 * 2 / 2**20, rel=1e-3)
    assert plain["lora"] == pytest.approx(11e6 * 16 / 2**20, rel=1e-3)
    assert ckpt["activations"] < plain["activations"] / 5
    assert plain["output_layer"] == pytest.approx(1024 * 128256 * 4 * mem.OUTPUT_COPIES / 2**20, rel=1e-3)
    assert "runtime" not in plain
    assert mem.total_mb(plain) == pytest.approx(sum(plain.values()) * mem.OVERHEAD, rel=1e-3)


def test_a_wider_mlp_needs_more_activation_memory():
    common = dict(params=5e8, hidden=896, layers=24, vocab=151936, lora=8_800_000, batch_tokens=16384, chunk=3533,
                  weight_bytes=2, act_bytes=2, grad_ckpt=False)
    narrow = mem.memory_parts(**common, intermediate=4 * 896)
    wide = mem.memory_parts(**common, intermediate=4864)
    assert wide["activations"] > narrow["activations"] * 1.2
    assert mem.memory_parts(**common)["activations"] == narrow["activations"]  # 4 × hidden when not known


def test_cpu_runs_count_the_runtime_without_overhead():
    parts = mem.memory_parts(params=1e6, hidden=64, layers=2, vocab=1000, lora=1000, batch_tokens=100, chunk=100,
                             weight_bytes=4, act_bytes=4, grad_ckpt=False, runtime_mb=mem.RUNTIME_MB_CPU)
    assert parts["runtime"] == mem.RUNTIME_MB_CPU
    rest = sum(v for k, v in parts.items() if k != "runtime")
    assert mem.total_mb(parts) == pytest.approx(rest * mem.OVERHEAD + mem.RUNTIME_MB_CPU, abs=0.2)


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
            parts = mem.memory_parts(params=params, hidden=h, layers=layers, vocab=vocab, lora=lora,
                                     batch_tokens=tokens, chunk=settings["chunk_size"], weight_bytes=2, act_bytes=2,
                                     grad_ckpt=ckpt, intermediate=inter)
            out.append((shape, run, tokens, r[run]["peak_mem_mb"], mem.total_mb(parts), ckpt))
    return out


def test_estimate_is_within_20_percent_of_the_peaks_measured_on_a_gpu():
    rows = _recorded_peaks()
    assert {r[0] for r in rows} == {"qwen0.5b", "llama1b", "phi4mini"}
    assert any(r[5] for r in rows)
    assert any(r[2] == 16384 for r in rows)
    assert any(r[2] < 8192 for r in rows)
    for shape, run, tokens, measured, estimate, _ in rows:
        assert abs(estimate / measured - 1) <= 0.20, (shape, run, tokens, measured, estimate)


def test_verdict_says_what_fits_and_how_long(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 16 * 1024)
    cfg = build_config("qwen2.5-0.5b", str(chat_file), preset="balanced")
    e = est.estimate(cfg, device="cpu", lengths=[400] * 60)
    assert e.fits
    assert e.verdict.startswith("fits in ")
    assert "at batch 4" in e.verdict
    # 54 training examples (6 held out), 4 to a packed row: 14 rows an epoch; 3 epochs would be 42 steps, and the
    # recipe sized to a 0.5B base makes at least 72 (tools/train/recipe.py), going over the examples more often
    assert e.steps == 72
    assert e.passes > cfg.epochs
    three = est.estimate(build_config("qwen2.5-0.5b", str(chat_file), preset="balanced", sets=["epochs=3"]),
                         device="cpu", lengths=[400] * 60)
    assert three.steps == 42  # the user's own epochs are the run's length
    assert e.dataset_tokens == 24000
    assert not e.measured
    assert "rough" in e.verdict


def test_too_big_says_what_to_change(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 6 * 1024)
    cfg = build_config("phi-4-mini", str(chat_file), preset="communications")
    e = est.estimate(cfg, device="cpu", lengths=[1500] * 60)
    assert not e.fits
    assert f"only {human_mb(6 * 1024)} is free in RAM" in e.verdict
    assert any("smaller base" in c for c in e.changes)
    monkeypatch.setattr(est, "available_mb", lambda device: 10 * 1024)
    small = build_config("llama-3.2-1b", str(chat_file), sets=["batch_size=16", "context=4096"])
    e = est.estimate(small, device="cpu", lengths=[3000] * 60)
    assert not e.fits
    assert any(c.startswith("lower the batch size to ") for c in e.changes)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_calibration_times_the_real_model_on_the_real_data_and_is_cached(chat_file: Path):
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=2"])
    rough = est.estimate(cfg)
    assert not rough.measured
    measured = est.estimate(cfg, measure=True)
    assert measured.measured
    assert measured.time_parts["steps"] > 0
    assert measured.time_parts["load"] > 0
    assert measured.time_parts["startup"] > 0
    assert measured.examples == 12
    # the second plan reads the figures this machine measured instead of measuring again
    again = est.estimate(cfg)
    assert again.measured
    assert again.time_parts["steps"] == measured.time_parts["steps"]


def test_automatic_checkpointing_makes_a_long_step_fit_and_says_so(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 64 * 1024)
    auto = build_config("llama-3.2-1b", str(chat_file), sets=["batch_size=4", "memory_budget_gb=12"])
    e = est.estimate(auto, device="cpu", lengths=[1000] * 40)
    assert e.fits
    assert e.checkpointing
    assert e.step_tokens == 4000
    assert "with gradient checkpointing on the longest steps" in e.verdict
    assert e.total_mb <= 12 * 1024
    off = build_config("llama-3.2-1b", str(chat_file), sets=["batch_size=4", "memory_budget_gb=12",
                                                              "gradient_checkpointing=false"])
    e = est.estimate(off, device="cpu", lengths=[1000] * 40)
    assert not e.fits
    assert not e.checkpointing
    assert f"the {human_mb(12 * 1024)} budget" in e.verdict
    assert any("--set gradient_checkpointing=auto" in c for c in e.changes)


def test_the_estimate_is_for_the_largest_step_the_engine_builds(chat_file: Path):
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=4"])
    lengths = [100] * 30 + [900]
    assert mem.step_tokens(cfg, lengths, cuda=False) == 900  # one long example fills a row on its own
    assert mem.step_tokens(cfg, lengths, cuda=True) == 1024  # rounded up to the GPU's row multiple
    assert mem.step_tokens(cfg, [100] * 30, cuda=False) == 400
    padded = build_config("tiny-random", str(chat_file), sets=["batch_size=4", "packing=false"])
    assert mem.step_tokens(padded, lengths, cuda=True) == 3600


def test_rough_time_follows_model_size_and_machine(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 64 * 1024)
    monkeypatch.setattr(timing, "machine_cores", lambda: 2)
    lengths = [400] * 60
    # the same length for both (epochs set, so the recipe sized to the smaller base keeps it): only size differs
    small = est.estimate(build_config("qwen2.5-0.5b", str(chat_file), preset="balanced", sets=["epochs=3"]),
                         device="cpu", lengths=lengths)
    big = est.estimate(build_config("phi-4-mini", str(chat_file), preset="balanced"), device="cpu", lengths=lengths)
    assert big.time_parts["steps"] > 7 * small.time_parts["steps"]
    assert big.time_parts["load"] > small.time_parts["load"]
    tiny = est.estimate(build_config("tiny-random", str(chat_file), preset="balanced"), device="cpu", lengths=lengths)
    # a toy model still waits for the process to start and the model to load: those are most of its run
    assert tiny.time_parts["startup"] + tiny.time_parts["load"] > tiny.time_parts["steps"]
    monkeypatch.setattr(timing, "machine_cores", lambda: 8)
    faster = est.estimate(build_config("qwen2.5-0.5b", str(chat_file), preset="balanced", sets=["epochs=3"]),
                          device="cpu", lengths=lengths)
    assert faster.time_parts["steps"] < small.time_parts["steps"] / 3


CALIB = timing.Calibration(startup_s=5.0, data_s_per_example=0.01, load_s=2.0, tokenize_s_per_example=0.001,
                        first_step_extra_s=1.0, step_s_per_token=0.001, save_s=0.5)
"""Figures as a calibration would measure them (a stand-in: these tests check the arithmetic over them)."""


def test_the_whole_run_counts_start_up_load_steps_evaluation_and_saving(chat_file: Path):
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=4", "eval_every=5", "checkpoint_every=10",
                                                             "epochs=2"])
    lengths = [100] * 50
    t = timing.run_time(cfg, lengths, CALIB, cuda=False)
    micro = planning.micro_batch_tokens(cfg, lengths[5:], cuda=False)
    assert t.steps == pytest.approx(sum(micro) * CALIB.step_s_per_token + CALIB.first_step_extra_s)
    assert t.startup == CALIB.startup_s
    assert t.load == CALIB.load_s
    assert t.data == pytest.approx(50 * CALIB.data_s_per_example)
    assert t.n_steps == 24  # 45 training examples, 4 to a packed row: 12 rows an epoch, 2 epochs
    evals = 5  # steps 5, 10, 15, 20 and 24
    assert t.evaluation == pytest.approx(evals * 5 * 100 * CALIB.step_s_per_token * timing.EVAL_COST)
    assert t.saving == pytest.approx(3 * CALIB.save_s)  # checkpoints at 10 and 20, then the adapter
    assert t.total == pytest.approx(t.startup + t.data + t.load + t.tokenize + t.steps + t.evaluation + t.saving)
    inside = timing.run_time(cfg, lengths, CALIB, cuda=False, since_start=30.0)
    assert inside.total == pytest.approx(t.total - CALIB.startup_s + 30.0)


def test_the_estimate_plans_the_batches_the_engine_trains(chat_file: Path):
    from tools.train.planning import plan_batches

    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=3", "epochs=2"])
    lengths = [40 + 7 * (i % 9) for i in range(30)]
    plan, steps, _ = plan_batches(lengths, cfg, 1)
    micro = planning.micro_batch_tokens(cfg, lengths, cuda=False)
    assert len(micro) == len(plan)
    assert micro == [sum(lengths[i] for i in idx) for idx in plan]
    assert sum(micro) == 2 * sum(lengths)


def test_calibration_is_kept_per_model_and_batch_shape(chat_file: Path):
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=4"])
    key = timing.calibration_key(cfg, "cpu", 400)
    assert timing.cached_calibration(key) is None
    timing.store_calibration(key, CALIB)
    assert timing.cached_calibration(key) == CALIB
    other = build_config("tiny-random", str(chat_file), sets=["batch_size=4", "lora_r=64"])
    assert timing.calibration_key(other, "cpu", 400) != key
    assert timing.calibration_key(cfg, "cpu", 5000) != key
    assert timing.calibration_key(cfg, "cpu", 380) == key  # the same size class shares one measurement


def test_a_bf16_run_does_not_reuse_an_fp32_calibration(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    """`auto` computes in fp32 on one CPU and in bf16 on another: measured apart (and precision=fp32 apart too)."""
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=4"])
    monkeypatch.setattr("tools.train.speed.cpu_flags", lambda *a: frozenset({"avx512f"}))
    fp32 = timing.calibration_key(cfg, "cpu", 400)
    timing.store_calibration(fp32, CALIB)
    monkeypatch.setattr("tools.train.speed.cpu_flags", lambda *a: frozenset({"avx512f", "amx_bf16"}))
    bf16 = timing.calibration_key(cfg, "cpu", 400)
    assert bf16 != fp32
    assert timing.cached_calibration(bf16) is None
    told_fp32 = build_config("tiny-random", str(chat_file), sets=["batch_size=4", "precision=fp32"])
    assert timing.calibration_key(told_fp32, "cpu", 400) != bf16


def test_cpu_bf16_counts_the_bf16_copies_of_the_weights(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    """Autocast keeps a bf16 copy of every frozen weight for the backward pass: half the fp32 weights again."""
    monkeypatch.setattr(est, "available_mb", lambda device: 64 * 1024)
    cfg = build_config("qwen2.5-0.5b", str(chat_file))
    lengths = [100] * 20
    monkeypatch.setattr("tools.train.speed.cpu_flags", lambda *a: frozenset({"avx512f"}))
    fp32 = est.estimate(cfg, device="cpu", lengths=lengths).memory_mb
    monkeypatch.setattr("tools.train.speed.cpu_flags", lambda *a: frozenset({"avx512f", "amx_bf16"}))
    bf16 = est.estimate(cfg, device="cpu", lengths=lengths).memory_mb
    assert bf16["weights"] == pytest.approx(1.5 * fp32["weights"], rel=1e-3)
    assert {k: v for k, v in bf16.items() if k != "weights"} == {k: v for k, v in fp32.items() if k != "weights"}
    off = est.estimate(cfg.model_copy(update={"precision": "fp32"}), device="cpu", lengths=lengths).memory_mb
    assert off == fp32


def test_a_measured_plan_says_it_covers_the_whole_run(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(est, "available_mb", lambda device: 16 * 1024)
    cfg = build_config("tiny-random", str(chat_file), sets=["batch_size=4"])
    lengths = [100] * 20
    timing.store_calibration(timing.calibration_key(cfg, "cpu", mem.step_tokens(cfg, lengths, cuda=False)), CALIB)
    e = est.estimate(cfg, device="cpu", lengths=lengths)
    assert e.measured
    assert "start-up to saved adapter" in e.verdict
    assert e.seconds == pytest.approx(sum(e.time_parts.values()), abs=0.1)


def test_time_left_comes_from_the_steps_measured_so_far_not_the_slow_first_one():
    from tools.train.loop import LiveEta

    eta = LiveEta(eval_every=0, checkpoint_every=1000)
    assert eta.after_step(10.0, 1, 11) == pytest.approx(100.0)  # only the first step is known yet
    eta.after_step(1.0, 2, 11)
    assert eta.after_step(1.0, 3, 11) == pytest.approx(8.0)  # the first step's one-off cost is not repeated
    with_evals = LiveEta(eval_every=2, checkpoint_every=1000)
    with_evals.eval_s = 3.0
    with_evals.after_step(1.0, 1, 4)
    assert with_evals.after_step(1.0, 2, 4) == pytest.approx(2 * 1.0 + 1 * 3.0)  # one more evaluation, at step 4


def test_before_the_first_evaluation_the_eta_counts_it_at_the_steps_speed():
    from tools.train.loop import LiveEta

    # 100 tokens a second in training; 300 held-out tokens forward only: about a second per evaluation
    eta = LiveEta(eval_every=2, checkpoint_every=1000, val_tokens=300)
    eta.after_step(5.0, 1, 4, tokens=100)
    unmeasured = eta.after_step(1.0, 2, 4, tokens=100)
    assert unmeasured == pytest.approx(2 * 1.0 + 300 / 100 / 3)
    assert unmeasured > LiveEta(eval_every=2, checkpoint_every=1000).after_step(1.0, 2, 4, tokens=100)
    eta.eval_s = 4.0  # once measured, the measurement counts
    assert eta.after_step(1.0, 3, 4, tokens=100) == pytest.approx(1 * 1.0 + 4.0)
