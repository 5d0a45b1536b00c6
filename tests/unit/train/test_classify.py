import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.train.conftest import DATA
from tools.train.classify import classification_metrics
from tools.train.events import read_events
from tools.train.modeling import load_tuned

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_metrics_are_macro_averaged_over_classes():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], n_labels=3)
    assert m["accuracy"] == 0.6
    # class 0: p 1/2 r 1/2; class 1: p 2/3 r 1; class 2: p 0 r 0
    assert m["precision"] == pytest.approx((0.5 + 2 / 3 + 0) / 3, abs=1e-4)
    assert m["recall"] == pytest.approx((0.5 + 1 + 0) / 3, abs=1e-4)


def test_minilm_learns_task_types_better_than_chance(tmp_path: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--data", str(DATA / "task_types.jsonl"), "--model", "minilm", "--out", str(run),
        "--set", "val_share=0.25", "--set", "learning_rate=2e-3", "--set", "batch_size=8", "--set", "eval_every=9",
        "--max-steps", "18"])
    assert result.exit_code == 0, result.output
    events = read_events(run)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [9, 18]
    for e in evals:
        assert {"val_loss", "accuracy", "precision", "recall", "f1"} <= set(e)
    # three balanced classes: chance is 1/3 on the 12 held-out rows
    assert evals[-1]["accuracy"] >= 0.6, evals
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] or evals[-1]["accuracy"] >= 0.75

    model, tok, cfg = load_tuned(run)
    assert cfg.task == "classification"
    assert cfg.labels == ["bug_report", "status_update", "user_story"]
    enc = tok(["The export page crashes with error 500 when I click save."], return_tensors="pt")
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1).item()
    assert model.config.id2label[pred] in cfg.labels


def test_token_classification_runs_and_reports_entity_scores(tmp_path: Path):
    rows = [{"tokens": ["Ship", name, "by", month], "tags": ["O", "B-FEATURE", "O", "B-DATE"]}
            for name in ("search", "billing", "export", "invites", "alerts", "login")
            for month in ("March", "June")]
    data = tmp_path / "ner.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "minilm", "--out", str(run),
                                      "--set", "val_share=0.25", "--set", "learning_rate=3e-3", "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    done = read_events(run)[-1]
    assert done["type"] == "done"
    assert {"accuracy", "f1"} <= set(done["metrics"])
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
