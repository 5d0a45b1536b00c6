"""`mtw eval` on real run folders: tiny-random (base vs adapter side by side) and a MiniLM classifier."""

import json

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tools.evaluate.run import evaluate_run

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_report(tiny_run, tmp_path_factory):
    """One evaluation of the tiny run with the user's own prompts file (short answers keep it quick)."""
    prompts = tmp_path_factory.mktemp("prompts") / "mine.txt"
    prompts.write_text("Write a release note for dark mode\n", encoding="utf-8")
    return evaluate_run(tiny_run, prompts_file=prompts, max_new_tokens=32)


def test_tuned_adapter_answers_differently_and_fits_held_out_data_better(tiny_report):
    held = tiny_report["heldout"]
    assert held["tuned"]["val_loss"] < held["base"]["val_loss"]
    assert held["tuned"]["perplexity"] < held["base"]["perplexity"]
    rows = tiny_report["prompts"]
    assert sum(r["base"]["answer"] != r["tuned"]["answer"] for r in rows) == len(rows)
    assert {r["category"] for r in rows} >= {"format_consistency", "domain_knowledge", "contextual_understanding",
                                              "creative_problem_solving", "validation"}
    assert all(r["reference"] for r in rows if r["category"] == "validation")


def test_report_folder_has_json_markdown_and_charts(tiny_run, tiny_report):
    out = tiny_run / "eval"
    saved = json.loads((out / "report.json").read_text())
    assert saved["verdict"] == tiny_report["verdict"]
    assert "loss fell from" in saved["verdict"]
    assert "tiny-random" in saved["verdict"]
    md = (out / "report.md").read_text()
    assert md.count("**base**") == md.count("**tuned**") == len(saved["prompts"])
    for f in ("loss.png", "scores.png", "loss.plotly.json", "scores.plotly.json"):
        assert (out / f).stat().st_size > 0, f


def test_own_prompts_are_answered_last(tiny_report):
    assert tiny_report["prompts"][-1]["prompt"] == "Write a release note for dark mode"
    assert tiny_report["prompts"][-1]["category"] == "your_prompts"


def test_classifier_run_gets_accuracy_f1_and_confusion(minilm_run):
    res = runner.invoke(app, ["eval", str(minilm_run), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    held = report["heldout"]
    assert report["task"] == "classification"
    assert report["prompts"] == []
    for v in ("base", "tuned"):
        h = held[v]
        assert sum(map(sum, h["confusion"])) == h["n"]
        assert h["correct"] == sum(h["confusion"][i][i] for i in range(3))
        assert h["accuracy"] == pytest.approx(h["correct"] / h["n"])
    assert held["tuned"]["confusion"] != held["base"]["confusion"]
    assert f"labels {held['tuned']['correct']} of {held['tuned']['n']} held-out texts correctly" in report["verdict"]
    # the commonest training label, scored on the held-out texts, is named next to the model's score
    m = held["majority"]
    assert m["label"] in ("bug", "feature", "question")
    gold_count = sum(held["tuned"]["confusion"][held["tuned"]["labels"].index(m["label"])])
    assert m["accuracy"] == pytest.approx(gold_count / held["tuned"]["n"])
    assert f"Always answering '{m['label']}' would score {m['accuracy']:.3f}" in report["verdict"]
    assert (minilm_run / "eval" / "scores.png").exists()
    human = runner.invoke(app, ["eval", str(minilm_run)])
    assert human.exit_code == 0
    assert "Verdict" in human.output
    assert "accuracy" in human.output


def test_missing_run_folder_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert "not a folder" in res.output


def test_folder_without_config_says_it_is_not_a_run(tmp_path):
    res = runner.invoke(app, ["eval", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a training run" in res.output


def test_compare_and_judge_flags_reach_the_evaluation(monkeypatch, tmp_path):
    calls = []

    def fake(run_dir, *, prompts_file=None, judge_model=None, ollama_model=None, progress=None):
        calls.append((str(run_dir), judge_model))
        loss = 3.0 if str(run_dir).endswith("v1") else 2.0
        return {"run_dir": str(run_dir), "model": "m", "task": "causal", "heldout": {"tuned": {"val_loss": loss}},
                "summary": None, "verdict": "ok"}

    monkeypatch.setattr("tools.evaluate.run.evaluate_run", fake)
    (tmp_path / "v1").mkdir()
    res = runner.invoke(app, ["eval", str(tmp_path / "v1"), "--compare", str(tmp_path / "v2"), "--judge", "qwen"])
    assert res.exit_code == 0, res.output
    assert calls == [(str(tmp_path / "v1"), "qwen"), (str(tmp_path / "v2"), "qwen")]
    assert "v2 is better on 1 of 1 measures" in " ".join(res.output.split())
    assert json.loads((tmp_path / "v1" / "eval" / "compare.json").read_text())["metrics"][0]["better"] == "b"


def test_moved_training_data_is_a_note_not_a_crash(minilm_run, tmp_path):
    import shutil

    import yaml

    run = tmp_path / "copy"
    shutil.copytree(minilm_run, run, ignore=shutil.ignore_patterns("eval"))
    text = (run / "config.yaml").read_text()
    head, body = text.split("\n", 1)
    cfg = yaml.safe_load(body)
    cfg["data"] = str(tmp_path / "moved.jsonl")
    (run / "config.yaml").write_text(head + "\n" + yaml.safe_dump(cfg))
    prompts = tmp_path / "p.txt"
    prompts.write_text("Write a PRD\n")
    report = evaluate_run(run, prompts_file=prompts)
    assert report["heldout"] == {}
    assert any("moved.jsonl is no longer there" in n for n in report["notes"])
    assert any("--prompts was not used" in n for n in report["notes"])
    assert "> Note:" in (run / "eval" / "report.md").read_text()


def test_mtw_eval_shows_each_phase_and_records_the_cap_it_chose(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    res = runner.invoke(app, ["eval", str(run), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)  # the progress goes to stderr: the JSON stays clean
    n = len(report["prompts"])
    shown = res.stderr.splitlines()
    for line in ("Loading the model …", "Held-out examples …", f"Base answers: {n} of {n}",
                 f"Tuned answers: {n} of {n}", "Writing the report …"):
        assert line in shown, shown
    assert shown.index(f"Base answers: {n} of {n}") < shown.index(f"Tuned answers: {n} of {n}")
    # while no answer ends, the tokens made so far show that it is moving
    assert any(line.startswith(f"Tuned answers (32 of up to {report['generation']['max_new_tokens']} tokens): ")
               for line in shown)
    # the cap follows the run's own answers, and the report says which it was and why
    g = report["generation"]
    assert g["engine"] == "pytorch"
    assert g["max_new_tokens"] >= 1.5 * g["longest_training_answer"]
    assert g["cap_reason"].startswith("1.5 × your longest training answer") or g["max_new_tokens"] == 128
    md = (run / "eval" / "report.md").read_text()
    assert f"each up to {g['max_new_tokens']} new tokens" in md
