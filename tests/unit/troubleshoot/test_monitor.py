"""Each diagnosis fires on a synthetic curve with its problem and stays silent on a healthy run."""

import json
import math
import random

import pytest

from tools.train.config import TrainConfig, check_values
from tools.troubleshoot.monitor import Diagnosis, diagnose

# the one-click fix is applied as TrainConfig overrides, so its keys must be real settings
TRAIN_CONFIG_FIELDS = set(TrainConfig.model_fields)


def run(losses, *, val=None, eval_every=20, steps_per_epoch=40, tps=1500.0, lr=2e-4, start=None):
    """A synthetic events.jsonl: a start event, one step event per loss, eval events every few steps."""
    events = [{"type": "start", **(start or {})}]
    total = len(losses)
    val = list(val or [])
    for i, loss in enumerate(losses, start=1):
        events.append({"type": "step", "step": i, "epoch": i / steps_per_epoch, "loss": loss, "lr": lr,
                       "tokens_per_s": tps, "eta_s": (total - i) * 0.5, "peak_mem_mb": 900, "ts": 1000.0 + i * 0.5})
        if i % eval_every == 0 and val:
            events.append({"type": "eval", "step": i, "val_loss": val.pop(0)})
    return events


def noisy(values, pct=0.03, seed=0):
    rng = random.Random(seed)
    return [v * (1 + rng.uniform(-pct, pct)) for v in values]


def healthy_losses(n=120):
    return noisy([2.0 * math.exp(-i / 35) + 0.6 for i in range(n)])


def codes(events, **kw):
    return [d.code for d in diagnose(events, **kw)]


def test_healthy_run_gets_no_diagnosis():
    losses = healthy_losses()
    val = [losses[i - 1] + 0.15 for i in range(20, 121, 20)]
    assert codes(run(losses, val=val), n_examples=80, device="cpu") == []


def test_healthy_runs_with_other_noise_stay_silent():
    for seed in range(5):
        losses = noisy([2.0 * math.exp(-i / 35) + 0.6 for i in range(120)], pct=0.06, seed=seed)
        assert codes(run(losses), n_examples=50) == [], seed


def test_flat_loss_fires_and_suggests_a_higher_learning_rate():
    ds = diagnose(run(noisy([2.5] * 40, pct=0.01), lr=5e-5))
    assert [d.code for d in ds] == ["flat_loss"]
    assert ds[0].fix == {"learning_rate": 3e-4}
    assert "Raise the learning rate to 3e-4" in ds[0].fix_text
    assert "not learning" in ds[0].message


def test_flat_loss_fires_when_the_drop_is_within_the_noise():
    # 5 % wobble hides a 2 % drop: no evidence of learning
    losses = noisy([2.5 - 0.05 * i / 40 for i in range(40)], pct=0.05, seed=3)
    assert codes(run(losses)) == ["flat_loss"]


def test_a_slow_steady_decline_is_not_flat():
    # like tiny-random at the default learning rate: 10.7 -> 10.4 in 20 steps, a clear if slow trend
    losses = noisy([10.7 - 0.017 * i for i in range(20)], pct=0.003, seed=1)
    assert codes(run(losses)) == []


def test_flat_loss_waits_for_enough_steps():
    assert codes(run([2.5] * 10)) == []


def test_diverging_fires_and_lowers_the_learning_rate():
    losses = [2.0 - 0.05 * i for i in range(20)] + [1.0 * 1.1 ** i for i in range(15)]
    ds = diagnose(run(losses, lr=6e-4))
    assert [d.code for d in ds] == ["diverging"]
    assert ds[0].fix["learning_rate"] == pytest.approx(2e-4)
    assert "(2e-4 instead of 6e-4)" in ds[0].fix_text
    assert ds[0].severity == "error"


def test_nan_loss_fires_and_names_the_step():
    losses = healthy_losses(30)
    losses[14] = float("nan")
    ds = diagnose(run(losses))
    assert ds[0].code == "nan_loss"
    assert "step 15" in ds[0].message
    assert ds[0].fix["learning_rate"] < 2e-4
    assert "diverging" not in [d.code for d in ds]


def test_nan_loss_from_a_failed_event():
    events = run(healthy_losses(5)) + [{"type": "failed", "code": "nan_loss", "message": "loss is nan"}]
    assert codes(events) == ["nan_loss"]


def test_overfitting_fires_when_validation_rises_while_training_falls():
    losses = healthy_losses(120)
    val = [1.6, 1.3, 1.2, 1.3, 1.45, 1.6]
    ds = diagnose(run(losses, val=val))
    assert [d.code for d in ds] == ["overfitting"]
    # best validation was at step 60 = epoch 1.5, so two epochs would have been enough
    assert ds[0].fix["epochs"] == 2


def test_one_noisy_validation_bump_is_not_overfitting():
    losses = healthy_losses(120)
    assert codes(run(losses, val=[1.6, 1.3, 1.2, 1.1, 1.25, 1.05])) == []


def test_memorizing_fires_when_training_loss_goes_to_zero():
    losses = [2.0 * math.exp(-i / 8) + 0.001 for i in range(80)]
    ds = diagnose(run(losses))
    assert [d.code for d in ds] == ["memorizing"]
    assert ds[0].fix["epochs"] >= 1
    assert "word for word" in ds[0].message


def test_oom_keeps_the_effective_batch_and_shortens_context():
    events = [{"type": "start", "config": {"batch_size": 8, "grad_accum": 1, "context": 4096}},
              {"type": "failed", "code": "oom", "message": "CUDA out of memory. Tried to allocate 2 GiB"}]
    ds = diagnose(events)
    assert [d.code for d in ds] == ["oom"]
    fix = ds[0].fix
    assert fix["batch_size"] * fix["grad_accum"] == 8
    assert fix["batch_size"] <= 2
    assert fix["context"] == 2048
    assert fix["gradient_checkpointing"] is True


def test_oom_recognised_from_the_message_alone():
    assert codes([{"type": "failed", "code": "error", "message": "RuntimeError: out of memory"}]) == ["oom"]


def with_eta(events, hours):
    for e in events:
        if e["type"] == "step":
            e["eta_s"] = hours * 3600
    return events


def test_too_slow_fires_on_a_crawling_cpu_run_with_an_hour_to_go():
    ds = diagnose(with_eta(run(healthy_losses(10), tps=4.0), 1), device="cpu")
    assert [d.code for d in ds] == ["too_slow"]
    assert ds[0].fix["max_steps"] == int(2 * 3600 / 0.5)
    assert "about 4 tokens per second, about 60 minutes still to go" in ds[0].message


def test_a_low_rate_on_a_short_run_is_not_too_slow():
    # short classifier texts give few tokens per second, yet the run ends in minutes
    assert codes(with_eta(run(healthy_losses(10), tps=4.0), 0.05), device="cpu") == []


def test_too_slow_fires_on_a_gpu_run_that_would_take_days():
    assert codes(with_eta(run(healthy_losses(10), tps=2000.0), 50), device="cuda") == ["too_slow"]
    assert codes(run(healthy_losses(10), tps=2000.0), device="cuda") == []


def test_too_few_examples_fires_under_twenty():
    assert codes(run(healthy_losses(5)), n_examples=8) == ["too_few_examples"]
    assert codes(run(healthy_losses(5)), n_examples=20) == []
    # the training job's start event: TrainConfig under `config`, run facts beside it
    start = {"type": "start", "config": {"batch_size": 4, "context": 4096}, "n_examples": 5, "device": "cpu"}
    assert codes([start]) == ["too_few_examples"]


def test_every_fix_uses_train_config_fields_and_events_are_json():
    scenarios = [
        run(noisy([2.5] * 40, pct=0.01)),
        run([2.0 - 0.05 * i for i in range(20)] + [1.0 * 1.1 ** i for i in range(15)]),
        run([float("nan")] * 3),
        run(healthy_losses(120), val=[1.6, 1.3, 1.2, 1.3, 1.45, 1.6]),
        run([2.0 * math.exp(-i / 8) for i in range(80)]),
        [{"type": "failed", "code": "oom", "message": "out of memory"}],
        with_eta(run(healthy_losses(10), tps=4.0), 1),
    ]
    seen = set()
    for events in scenarios:
        for d in diagnose(events, n_examples=5):
            assert isinstance(d, Diagnosis)
            assert set(d.fix) <= TRAIN_CONFIG_FIELDS, d.fix
            assert check_values(TrainConfig(model="tiny-random", data="d.jsonl", **d.fix)) == [], d.fix
            ev = json.loads(json.dumps(d.as_event()))
            assert ev["type"] == "diagnosis"
            assert ev["code"] == d.code
            assert ev["fix"] == d.fix
            assert ev["message"]
            assert d.why
            assert d.fix_text
            seen.add(d.code)
    assert seen == {"flat_loss", "diverging", "nan_loss", "overfitting", "memorizing", "oom", "too_slow",
                    "too_few_examples"}


def test_one_diagnosis_per_code_and_errors_first():
    events = run([float("nan")] * 3) + [{"type": "failed", "code": "nan_loss", "message": "nan"}]
    ds = diagnose(events, n_examples=3)
    assert [d.code for d in ds] == ["nan_loss", "too_few_examples"]


def _current(events):
    start = next(e for e in events if e["type"] == "start")
    return {**start.get("config", {})}


def test_a_flat_run_already_at_the_highest_rate_is_not_told_to_raise_it():
    # minilm on SMS spam at 1e-3: the loss stalls at "always ham"
    events = run(noisy([0.41] * 150, pct=0.01), lr=1e-3,
                 start={"config": {"learning_rate": 1e-3, "epochs": 5, "batch_size": 16, "task": "classification"}})
    (d,) = diagnose(events)
    assert d.code == "flat_loss"
    assert "learning_rate" not in d.fix
    assert "raise the learning rate" not in d.fix_text.lower()
    assert d.fix == {"epochs": 10.0}


@pytest.mark.parametrize("settings", [
    {"learning_rate": 1e-3, "epochs": 2, "batch_size": 1, "grad_accum": 4, "gradient_checkpointing": True,
     "context": 2048, "lora_dropout": 0.1, "warmup_ratio": 0.1},
    {"learning_rate": 1e-4, "epochs": 2, "batch_size": 2, "grad_accum": 2, "gradient_checkpointing": True,
     "context": 1024, "lora_dropout": 0.1, "max_steps": 40},
    {"learning_rate": 3e-4, "epochs": 1, "batch_size": 4, "grad_accum": 1, "gradient_checkpointing": "auto",
     "context": 4096, "lora_dropout": 0.05},
])
@pytest.mark.parametrize("curve", ["flat", "diverging", "overfit", "memorize", "oom", "few"])
def test_advice_never_repeats_the_value_already_set(settings, curve):
    lr = settings["learning_rate"]
    losses = {
        "flat": noisy([2.0] * 60, pct=0.01),
        "diverging": [2.0 - 0.05 * i for i in range(20)] + [1.0 * 1.1 ** i for i in range(15)],
        "overfit": [2.0 * math.exp(-i / 20) + 0.3 for i in range(120)],
        "memorize": [2.0 * math.exp(-i / 5) for i in range(60)],
        "oom": [2.0, 1.9],
        "few": healthy_losses(),
    }[curve]
    val = [1.2, 1.0, 1.15, 1.3, 1.45] if curve == "overfit" else None
    events = run(losses, val=val, lr=lr, start={"config": settings, "n_examples": 8 if curve == "few" else 200})
    if curve == "oom":
        events.append({"type": "failed", "code": "oom", "message": "CUDA out of memory"})
    found = diagnose(events)
    assert found, f"no diagnosis for the {curve} curve"
    current = _current(events)
    for d in found:
        repeated = {k: v for k, v in d.fix.items() if current.get(k) == v}
        assert not repeated, f"{d.code} advises what is already set: {repeated}"
        assert f"to {lr:.0e}".replace("e-0", "e-") not in d.fix_text, d.fix_text
