"""`mtw eval RUN --ollama-model NAME`: the tuned side's answers come from the model as Ollama serves it."""

import json
import shutil
import socket

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mtw.cli import app
from tools import registry
from tools.errors import UsageError
from tools.evaluate.cli import _print
from tools.evaluate.run import evaluate_run
from tools.settings import get_settings

runner = CliRunner()
SHIPPED = "PM-General-v1"


def served_answer(body):
    """What the double answers: labelled with the prompt, so every tuned answer can be traced back to it."""
    return f"Answer from the double to: {body['messages'][-1]['content']}"


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny run (its eval/ is rewritten here, the shared one stays as other tests left it)."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval"))
    return copy


def exported(name, run_dir):
    """Register `name` as `mtw export` does after creating it from `run_dir`."""
    registry.register(registry.ModelRecord(name=name, base_model="tiny-random", route="merged", ollama_tag=name,
                                           run_id=run_dir.name, run_dir=str(run_dir.resolve())))


def test_tuned_answers_come_from_the_ollama_model_and_the_report_says_so(run, ollama):
    ollama.models.append(f"{SHIPPED}:latest")
    ollama.responder = served_answer
    exported(SHIPPED, run)
    res = runner.invoke(app, ["eval", str(run), "--ollama-model", SHIPPED, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)

    chats = ollama.requests_to("/api/chat") + ollama.requests_to("/api/generate")
    assert len(chats) == len(report["prompts"]) > 4
    assert {c.body["model"] for c in chats} == {SHIPPED}
    for row in report["prompts"]:
        assert row["tuned"]["answer"] == f"Answer from the double to: {row['prompt']}"
        assert row["tuned"]["stopped"]
        assert "from the double" not in row["base"]["answer"]
    assert report["tuned_source"] == f"ollama:{SHIPPED}"
    assert report["base_source"] == "local"
    # held-out numbers are still the local adapter's
    assert report["heldout"]["tuned"]["val_loss"] < report["heldout"]["base"]["val_loss"]
    assert f"come from '{SHIPPED}' as your Ollama serves it" in report["verdict"]
    assert report["notes"] == []
    served = run / "eval" / "ollama" / SHIPPED  # beside the local comparison, never over it
    md = (served / "report.md").read_text()
    assert f"tuned answers: Ollama `{SHIPPED}`" in md
    assert f"| tuned (Ollama: {SHIPPED}) |" in md
    assert json.loads((served / "report.json").read_text())["tuned_source"] == f"ollama:{SHIPPED}"
    assert not (run / "eval" / "report.json").exists()

    console = Console(record=True, width=200)
    _print(report, console)
    printed = console.export_text()
    assert f"tuned (Ollama: {SHIPPED})" in printed
    assert "held-out (local adapter)" in printed


def test_a_local_evaluation_names_its_sources_too(run, ollama):
    report = evaluate_run(run, max_new_tokens=4, write=False)
    assert (report["base_source"], report["tuned_source"]) == ("local", "local")
    assert not ollama.requests_to("/api/chat")


def test_run_without_adapter_still_compares_the_test_prompts(run, ollama):
    shutil.rmtree(run / "adapter")
    ollama.models.append(f"{SHIPPED}:latest")
    ollama.responder = served_answer
    exported(SHIPPED, run.parent / "another-run")
    report = evaluate_run(run, ollama_model=SHIPPED, max_new_tokens=8)
    assert report["heldout"] == {}
    assert report["summary"]["tuned"]["prompts"] == len(report["prompts"]) > 4
    assert all(r["tuned"]["answer"].startswith("Answer from the double") for r in report["prompts"])
    assert any("has no adapter, so there are no held-out numbers" in n for n in report["notes"])
    # exported from another run: a warning, not a refusal
    assert any(f"'{SHIPPED}' was exported from {run.parent / 'another-run'}, not from {run}" in n
               for n in report["notes"])


def test_run_without_adapter_points_at_its_export(run):
    shutil.rmtree(run / "adapter")
    exported(SHIPPED, run)
    with pytest.raises(UsageError) as err:
        evaluate_run(run)
    assert f"--ollama-model {SHIPPED}" in err.value.fix


def test_model_not_in_ollama_says_how_to_put_it_there(run, ollama):
    res = runner.invoke(app, ["eval", str(run), "--ollama-model", SHIPPED])
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert f"The model '{SHIPPED}' is not in your Ollama" in out
    assert f"mtw export {run} --name {SHIPPED}" in out
    assert "ollama list" in out
    assert not ollama.requests_to("/api/chat")
    assert not (run / "eval").exists()


def test_model_not_in_ollama_suggests_the_name_this_run_was_exported_as(run, ollama):
    exported("PM-General-v2", run)
    res = runner.invoke(app, ["eval", str(run), "--ollama-model", "PM-General"])
    assert res.exit_code == 1
    assert "use --ollama-model PM-General-v2" in " ".join(res.output.split())


def test_ollama_not_running_is_one_sentence_with_the_fix(run, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the port is closed again: nothing listens there
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    res = runner.invoke(app, ["eval", str(run), "--ollama-model", SHIPPED])
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert f"Cannot ask '{SHIPPED}' for the tuned answers: Ollama is not running (nothing answers at " in out
    assert f"127.0.0.1:{port}" in out
    assert "ollama serve" in out
    assert "Traceback" not in res.output


def test_classifier_run_refuses_the_option_in_plain_words(tmp_path):
    from tools.train.config import TrainConfig, save_run_config

    save_run_config(tmp_path, TrainConfig(model="minilm", data=str(tmp_path / "t.jsonl"), task="classification",
                                          labels=["bug", "feature"]))
    res = runner.invoke(app, ["eval", str(tmp_path), "--ollama-model", SHIPPED])
    assert res.exit_code == 2
    assert "Ollama runs text-generation models only" in " ".join(res.output.split())
