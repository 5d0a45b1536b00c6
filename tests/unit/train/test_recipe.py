"""The recipe sized to the base: a small base gets larger and more steps, unless the user chose them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.train.config import build_config, reproduce_command
from tools.train.recipe import MIN_STEPS, lr_scale, recipe_note, sized_learning_rate

DATA = str(Path(__file__).parents[3] / "examples" / "pm_dataset.jsonl")


def test_the_guides_base_and_larger_keep_the_presets():
    assert lr_scale(3.8) == 1.0
    assert lr_scale(14.0) == 1.0
    cfg = build_config("phi-4-mini", DATA)
    assert (cfg.learning_rate, cfg.min_steps) == (2e-4, 0)


def test_a_135m_base_gets_five_times_the_step_and_at_least_72_steps():
    cfg = build_config("smollm2-135m", DATA)
    assert cfg.learning_rate == pytest.approx(1e-3)
    assert cfg.min_steps == MIN_STEPS
    # the scale grows with how much smaller the base is, capped at five
    assert sized_learning_rate(2e-4, 0.5) == pytest.approx(5.5e-4)
    assert sized_learning_rate(1e-4, 0.05) == pytest.approx(5e-4)


def test_the_users_own_choices_win():
    assert build_config("smollm2-135m", DATA, sets=["learning_rate=3e-4"]).learning_rate == pytest.approx(3e-4)
    by_epochs = build_config("smollm2-135m", DATA, sets=["epochs=1"])
    assert (by_epochs.epochs, by_epochs.min_steps) == (1, 0)
    assert build_config("smollm2-135m", DATA, max_steps=5).min_steps == 0


def test_tiny_random_classifiers_and_preference_rounds_are_not_sized():
    assert build_config("tiny-random", DATA).min_steps == 0
    assert build_config("smollm2-135m", DATA, task="classification", labels=["a", "b"]).min_steps == 0
    assert build_config("smollm2-135m", DATA, method="dpo").learning_rate < 1e-3


def test_the_reproduce_command_carries_the_sized_values():
    cfg = build_config("smollm2-135m", DATA)
    line = reproduce_command(cfg, "/tmp/run")
    assert "--set learning_rate=0.001" in line
    assert f"--set min_steps={MIN_STEPS}" in line


def test_min_steps_repeats_a_small_dataset_in_the_plan():
    from tools.train.planning import plan_batches

    lengths = [100] * 40
    plain = build_config("tiny-random", DATA, batch_size=4, packing=False)
    _, steps, per_epoch = plan_batches(lengths, plain, 1)
    assert steps == 30
    assert per_epoch == 10
    longer = plain.model_copy(update={"min_steps": 72})
    plan, steps, _ = plan_batches(lengths, longer, 1)
    assert steps == 72
    assert len(plan) == 72
    capped = longer.model_copy(update={"max_steps": 5})
    assert plan_batches(lengths, capped, 1)[1] == 5  # a step cap is the run's length


def test_the_plan_says_what_was_sized_and_why():
    cfg = build_config("smollm2-135m", DATA)
    note = recipe_note(cfg, 5.5)
    assert "learning rate 0.001" in note
    assert "at least 72 steps" in note
    assert "5.5 passes" in note
    assert recipe_note(build_config("smollm2-135m", DATA, sets=["learning_rate=2e-4", "epochs=3"]), 3.0) == ""
