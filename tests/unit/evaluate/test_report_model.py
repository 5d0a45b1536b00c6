"""report.json read back through its one loader: the keys as written, older reports, a missing or broken file."""

import json

import pytest

from tests.unit.evaluate.test_report import HELD, Judge, events, scripted
from tools.evaluate.report import write_report
from tools.evaluate.report_model import EvalReport, load_report, report_path
from tools.evaluate.run import build_report
from tools.evaluate.suite import BUILTIN
from tools.registry import run_scores


def test_a_written_report_loads_typed_and_keeps_its_keys(tmp_path):
    report = build_report(tmp_path, model="m", task="causal", events=events(), heldout=HELD, prompts=list(BUILTIN),
                          generate=scripted(), judge=Judge(low=("Sure!",)), judge_model="j")
    report["notes"] = ["a note"]
    write_report(tmp_path, report, events(), tmp_path / "eval")
    on_disk = json.loads(report_path(tmp_path).read_text(encoding="utf-8"))
    loaded = load_report(tmp_path)
    assert loaded.verdict == report["verdict"]
    assert len(loaded.prompts) == len(BUILTIN)
    first = loaded.prompts[0]
    assert first.prompt == BUILTIN[0].prompt
    assert first.base.judge["accuracy"].score == 2  # the base answers "Sure! …", which the judge scores 2
    assert first.tuned.judge_mean == 4.0
    assert loaded.held_out("tuned").model_dump(exclude_unset=True) == HELD["tuned"]
    assert loaded.as_json() == on_disk
    assert list(loaded.as_json()) == list(on_disk)
    assert run_scores(tmp_path)["summary.judge_mean"] == 4.0


def test_an_older_report_loads_with_what_it_lacks_left_empty(tmp_path):
    old = {"run_dir": str(tmp_path), "model": "m", "task": "classification", "verdict": "Better.",
           "heldout": {"tuned": {"accuracy": 0.8, "per_label": {"bug": {"f1": 0.9}}}},
           "prompts": [{"id": "p1", "prompt": "Write a story", "base": {"answer": "x"}, "tuned": {"answer": ""}}]}
    report_path(tmp_path).parent.mkdir(parents=True)
    report_path(tmp_path).write_text(json.dumps(old), encoding="utf-8")
    loaded = load_report(tmp_path)
    assert loaded.tuned_source == "local"
    assert loaded.summary is None
    assert loaded.charts == {}
    assert loaded.prompts[0].category == "other"
    assert loaded.prompts[0].tuned.judge is None
    assert loaded.answered() == []  # the tuned side has no answer to compare
    assert loaded.held_out("tuned").per_label["bug"]["f1"] == 0.9
    assert loaded.held_out("base").per_label == {}
    assert loaded.as_json() == old
    assert run_scores(tmp_path) == {"heldout.accuracy": 0.8, "heldout.per_label.bug.f1": 0.9}


def test_no_report_is_none_and_a_broken_one_says_so(tmp_path):
    assert load_report(tmp_path) is None
    assert run_scores(tmp_path) == {}
    report_path(tmp_path).parent.mkdir(parents=True)
    report_path(tmp_path).write_text('{"prompts": [', encoding="utf-8")
    with pytest.raises(ValueError, match="Invalid JSON"):
        load_report(tmp_path)
    assert run_scores(tmp_path) == {}
    report_path(tmp_path).write_text('{"prompts": "none"}', encoding="utf-8")
    with pytest.raises(ValueError, match="prompts"):
        load_report(tmp_path)
    assert EvalReport.model_validate({}).prompts == []
