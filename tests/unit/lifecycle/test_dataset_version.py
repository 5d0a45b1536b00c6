"""One dataset version from upload to evaluation: a run keeps its split, eval refuses data that changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tools.dataset.store import DatasetStore, dataset_hash
from tools.train.config import TrainConfig, save_run_config
from tools.train.inputs import DataChanged, load_split, read_training_data, save_split


def write_tickets(path: Path, n: int = 40, *, repeats: int = 0) -> Path:
    """Support tickets as text+label rows; `repeats` rows are exact copies of earlier ones (as in SMS spam)."""
    kinds = ["bug", "feature", "question"]
    rows = [{"text": f"ticket {i}: the {['export', 'login', 'search', 'billing'][i % 4]} page, case {i}",
             "label": kinds[i % 3]} for i in range(n)]
    rows += rows[:repeats]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_run(run: Path, data: Path, *, seed: int = 0) -> TrainConfig:
    """A run folder as training leaves it before the first step: config.yaml and split.json."""
    cfg = TrainConfig(model="minilm", data=str(data), task="classification", labels=["bug", "feature", "question"],
                      val_share=0.25, seed=seed)
    save_run_config(run, cfg)
    split = read_training_data(str(data), model=None, context=cfg.context, val_share=cfg.val_share, seed=cfg.seed,
                               check_model=False)
    save_split(run, split, str(data))
    return cfg


def test_a_run_records_its_version_and_which_rows_it_held_out(tmp_path):
    data = write_tickets(tmp_path / "tickets.jsonl")
    make_run(tmp_path / "run", data)
    recorded = load_split(tmp_path / "run")
    assert recorded["dataset_version"] == dataset_hash(data)
    assert len(recorded["validation_rows"]) == 10
    assert recorded["train_examples"] == 30
    assert recorded["validation_lines"] == [i + 1 for i in recorded["validation_rows"]]


def test_a_runs_split_is_reused_whatever_the_seed(tmp_path):
    from tools.evaluate.run import heldout_data

    data = write_tickets(tmp_path / "tickets.jsonl")
    run = tmp_path / "run"
    cfg = make_run(run, data, seed=0)
    held = [ex.text for ex in read_training_data(str(data), model=None, context=64, val_share=0.25, seed=0,
                                                 check_model=False).validation]
    other_seed = cfg.model_copy(update={"seed": 7})
    assert [ex.text for ex in heldout_data(run, other_seed, [], []).validation] == held
    fresh = read_training_data(str(data), model=None, context=64, val_share=0.25, seed=7, check_model=False)
    assert [ex.text for ex in fresh.validation] != held  # the seed alone would have split otherwise


def test_a_changed_file_makes_eval_refuse_with_the_reason(tmp_path):
    data = write_tickets(tmp_path / "tickets.jsonl")
    run = tmp_path / "run"
    make_run(run, data)
    before = dataset_hash(data)
    write_tickets(data, n=44)  # the user added rows to the same file
    result = CliRunner().invoke(app, ["eval", str(run)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"{data} has changed since this run used it" in said
    assert f"it was version {before}, it is now {dataset_hash(data)}" in said
    assert "train a new run on the changed data" in said


def test_resuming_on_changed_data_refuses_too(tmp_path):
    data = write_tickets(tmp_path / "tickets.jsonl")
    run = tmp_path / "run"
    make_run(run, data)
    data.write_text(data.read_text().replace("ticket 3:", "ticket three:"))
    with pytest.raises(DataChanged):
        read_training_data(str(data), model=None, context=64, val_share=0.25, seed=0, check_model=False,
                           recorded=load_split(run))


def test_eval_reads_the_version_the_run_used_when_the_project_kept_it(tmp_path):
    from tools.evaluate.run import heldout_data

    data = write_tickets(tmp_path / "tickets.jsonl")
    DatasetStore("support").import_file(data)
    run = tmp_path / "run"
    cfg = make_run(run, data)
    held = [ex.text for ex in heldout_data(run, cfg, [], []).validation]
    write_tickets(data, n=50)
    notes: list[str] = []
    again = heldout_data(run, cfg, [], notes)
    assert [ex.text for ex in again.validation] == held
    assert "held-out rows come from the version it trained on" in notes[0]


def test_duplicates_across_train_and_held_out_are_removed_and_reported(tmp_path):
    from tools.dataset.checks import fingerprint

    data = write_tickets(tmp_path / "tickets.jsonl", n=40, repeats=30)
    split = read_training_data(str(data), model=None, context=64, val_share=0.25, seed=0, check_model=False)
    train_keys = {fingerprint(ex) for ex in split.train}
    assert split.dropped_rows, "this file has 30 repeated rows: some land on both sides of a random split"
    assert not [ex for ex in split.validation if fingerprint(ex) in train_keys]
    save_split(tmp_path, split, str(data))
    assert load_split(tmp_path)["dropped_rows"] == split.dropped_rows


def test_the_file_is_parsed_at_most_twice_before_the_first_step(tmp_path, monkeypatch):
    import tools.dataset.readers as readers

    data = tmp_path / "pm.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Write a user story for feature {i} of the billing page."},
        {"role": "assistant", "content": f"As an admin I want feature {i} so that invoices {i} are right."}]}) + "\n"
        for i in range(24)), encoding="utf-8")
    parses: list[str] = []
    real = readers.iter_records

    def counting(path, **kw):
        parses.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(readers, "iter_records", counting)
    runner = CliRunner()
    first = runner.invoke(app, ["train", "--data", str(data), "--model", "tiny-random", "--out", str(tmp_path / "a"),
                                "--max-steps", "1"])
    assert first.exit_code == 0, first.output
    # one check (then cached by version) and one read shared by task detection, the estimate and training
    assert parses.count(str(data)) <= 2, parses
    parses.clear()
    second = runner.invoke(app, ["train", "--data", str(data), "--model", "tiny-random", "--out", str(tmp_path / "b"),
                                 "--max-steps", "1"])
    assert second.exit_code == 0, second.output
    assert parses.count(str(data)) <= 1, parses


def test_a_default_classifier_run_is_sized_to_the_data_and_the_machine(tmp_path):
    import math

    from tools.models.catalog import model_shape
    from tools.train.classify import ENCODER_DEFAULTS, STEP_BUDGET_S, planned_steps, sized_steps
    from tools.train.timing import rough_calibration

    # SMS-sized texts, 5,000 rows, on a CPU
    texts = [f"Hey, are we still on for dinner at {i % 12} tonight? Call me when you are free, thanks!"
             for i in range(5000)]
    cfg = TrainConfig(model="minilm", data="sms.csv", task="classification", labels=["ham", "spam"],
                      **ENCODER_DEFAULTS)
    steps = sized_steps(cfg, texts, cuda=False)
    full = math.ceil(math.ceil(4500 / cfg.batch_size) * cfg.epochs)
    planned = steps or full
    assert planned <= full
    lengths = [len(t) // 4 + 2 for t in texts]
    per_token = rough_calibration(cfg, model_shape("minilm").params_b, False, False).step_s_per_token
    step_tokens = cfg.batch_size * cfg.grad_accum * (sum(lengths) // len(lengths))
    assert planned * step_tokens * per_token <= STEP_BUDGET_S * 1.01
    # long texts on a slow machine: capped to the budget, never to nothing
    assert planned_steps(5000, batch_size=16, grad_accum=1, epochs=3, seconds_per_step=5.0) == STEP_BUDGET_S // 5
    assert planned_steps(5000, batch_size=16, grad_accum=1, epochs=3, seconds_per_step=600.0) == 50
    assert planned_steps(200, batch_size=16, grad_accum=1, epochs=3, seconds_per_step=0.5) is None


def test_mtw_train_says_when_it_caps_a_classifier_run(tmp_path, monkeypatch):
    import tools.train.classify as classify
    from tools.train.cli import _size_classifier
    from tools.train.narrate import Narrator

    data = write_tickets(tmp_path / "tickets.jsonl", n=400)
    monkeypatch.setattr(classify, "STEP_BUDGET_S", 1.0)  # a machine where ten minutes buy almost nothing
    cfg = TrainConfig(model="minilm", data=str(data), task="classification", labels=["bug", "feature", "question"],
                      **classify.ENCODER_DEFAULTS)
    narrator = Narrator(plain=True)
    narrator.console.record = True
    sized = _size_classifier(cfg, narrator)
    said = " ".join(narrator.console.export_text().split())
    assert sized.max_steps == classify.MIN_PLANNED_STEPS
    assert f"3 epochs of 400 examples would take too long on this machine: training {sized.max_steps} steps" in said
