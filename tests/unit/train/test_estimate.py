from pathlib import Path

import pytest

import tools.train.estimate as est
from tools.train.config import build_config


def test_memory_parts_add_up_and_checkpointing_saves_activation_memory():
    common = dict(params=1e9, hidden=2048, layers=16, vocab=128256, lora=11_000_000, batch_tokens=4 * 400,
                  chunk=1024, weight_bytes=2, act_bytes=2)
    plain = est.memory_parts(**common, grad_ckpt=False)
    ckpt = est.memory_parts(**common, grad_ckpt=True)
    assert plain["weights"] == pytest.approx(1e9 * 2 / 2**20, rel=1e-3)
    assert plain["lora"] == pytest.approx(11e6 * 16 / 2**20, rel=1e-3)
    assert ckpt["activations"] < plain["activations"] / 5
    assert plain["output_layer"] == pytest.approx(1024 * 128256 * 12 / 2**20, rel=1e-3)


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
