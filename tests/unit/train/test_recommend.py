"""The base model recommended for a machine: the best writer that fits and trains a first dataset in time."""

from __future__ import annotations

import pytest

from tools.train.recommend import MAX_FIRST_RUN_S, recommend_base, training_memory_mb
from tools.train.timing import tokens_per_second

GB = 1024


@pytest.mark.parametrize(("cuda", "memory_gb", "cores", "expected"), [
    (True, 80, 16, "phi-4-mini"),      # a big GPU: the guide's base
    (True, 12, 8, "phi-4-mini"),       # fits with gradient checkpointing
    (True, 6, 8, "qwen2.5-1.5b"),
    (False, 32, 8, "phi-4-mini"),      # a strong laptop CPU: within the hour, with checkpointing
    (False, 16, 8, "qwen2.5-1.5b"),    # phi-4-mini does not fit in 16 GB
    (False, 24, 2, "qwen2.5-0.5b"),    # fits everything small, but two cores take hours for the bigger ones
    (False, 4, 2, "qwen2.5-0.5b"),
])
def test_the_best_base_that_fits_and_trains_in_time(cuda, memory_gb, cores, expected):
    pick = recommend_base(cuda=cuda, memory_mb=memory_gb * GB, cores=cores)
    assert pick.model == expected
    assert pick.first_run_s <= MAX_FIRST_RUN_S
    assert pick.memory_mb <= 0.9 * memory_gb * GB
    assert "fits" in pick.reason


def test_each_better_model_passed_over_says_why():
    pick = recommend_base(cuda=False, memory_mb=24 * GB, cores=2)
    assert [p.split(" would take ")[0] for p in pick.passed_over] == ["phi-4-mini", "qwen2.5-3b", "qwen2.5-1.5b"]
    for sentence in pick.passed_over:
        assert sentence.endswith("for a first run on this computer's CPU")
        assert "hours" in sentence or "minutes" in sentence
    small = recommend_base(cuda=True, memory_mb=6 * GB, cores=8)
    assert small.passed_over[0].startswith("phi-4-mini needs about 10 GB to train; this GPU has 6 GB")


def test_too_slow_everywhere_picks_the_quickest_and_too_small_offers_tiny_random(monkeypatch):
    from tools.train import timing

    monkeypatch.setattr(timing, "CPU_FLOPS_PER_CORE", 10e9)  # an old single-core machine
    slow = recommend_base(cuda=False, memory_mb=64 * GB, cores=1)
    assert slow.model == "qwen2.5-0.5b"
    assert slow.reason.startswith("it is the quickest that fits")
    assert slow.first_run_s > MAX_FIRST_RUN_S
    none = recommend_base(cuda=True, memory_mb=1 * GB, cores=8)
    assert none.model == "tiny-random"
    assert len(none.passed_over) == 4


def test_labels_and_entities_use_the_built_in_encoder():
    assert recommend_base(cuda=False, memory_mb=8 * GB, cores=2, task="classification").model == "minilm"
    assert recommend_base(cuda=False, memory_mb=8 * GB, cores=2, task="entity_extraction").model == "minilm"


def test_bigger_models_need_more_memory_and_time_and_checkpointing_saves_memory():
    sizes = [training_memory_mb(m, cuda=True) for m in ("qwen2.5-0.5b", "qwen2.5-1.5b", "phi-4-mini")]
    assert sizes == sorted(sizes)
    assert training_memory_mb("phi-4-mini", cuda=True, checkpointing=True) < sizes[-1]
    assert training_memory_mb("qwen2.5-0.5b", cuda=False) > training_memory_mb("qwen2.5-0.5b", cuda=True)
    assert tokens_per_second(0.5, cuda=False, cores=4) == pytest.approx(2 * tokens_per_second(0.5, cuda=False, cores=2))
