"""The knowledge base: every entry is complete, retrieval finds the right one, `mtw explain` answers."""

import json

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tools.troubleshoot.kb import load_entries, parse_entry, search
from tools.troubleshoot.monitor import diagnose

runner = CliRunner()


def flat(text):
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())

CODES = ["flat_loss", "diverging", "nan_loss", "overfitting", "memorizing", "oom", "too_slow", "too_few_examples"]


def test_every_entry_has_title_symptoms_cause_fix():
    entries = load_entries()
    assert len(entries) >= 15
    for e in entries:
        assert e.title, e.id
        assert e.symptoms, e.id
        assert e.cause, e.id
        assert e.fix, e.id


@pytest.mark.parametrize("code", CODES)
def test_asking_about_a_diagnosis_code_prints_the_entry_written_for_it(code):
    # the code a run's diagnosis carries is enough for `mtw explain` to show its page (here without Ollama)
    (entry,) = [e for e in load_entries() if e.code == code]
    res = runner.invoke(app, ["explain", code])
    assert res.exit_code == 0, res.output
    shown = flat(res.output)
    assert shown.index(entry.title) < shown.index("Symptoms")  # the page printed in full is this one
    assert f"({entry.id})" in shown


def test_an_entry_without_a_fix_section_is_rejected_by_name():
    with pytest.raises(ValueError, match="broken.md lacks section.*fix"):
        parse_entry("broken", "# Title\n\n## Symptoms\nx\n\n## Cause\ny\n")


@pytest.mark.parametrize(("question", "expected"), [
    ("ran out of memory", "out-of-memory"),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", "out-of-memory"),
    ("why is my loss flat?", "loss-flat"),
    ("the loss is not falling", "loss-flat"),
    ("what is an epoch?", "training-terms"),
    ("my model never stops talking in ollama", "never-stops"),
    ("it prints <|im_end|> at the end", "never-stops"),
    ("the answers are generic", "generic-answers"),
    ("training won't start: KeyError 'text'", "training-wont-start"),
    ("answers are too verbose", "wrong-length-format-tone"),
    ("validation loss going up", "overfitting"),
    ("loss is nan", "loss-nan"),
    ("ollama create says unsupported architecture", "export-fails"),
    ("how many examples do I need?", "too-few-examples"),
    ("is my tuned model better than the base?", "is-tuned-better"),
    ("training is very slow", "too-slow"),
    ("my laptop ran out of memory", "out-of-memory"),
    ("it keeps repeating my training data", "memorizing"),
    ("the model makes things up", "makes-things-up"),
    ("the weights are not on this machine, how do I download the base model?", "base-model-missing"),
    ("llama is gated, what do I do?", "base-model-missing"),
])
def test_bm25_puts_the_right_entry_first(question, expected):
    assert search(question, 3)[0].id == expected


@pytest.mark.parametrize("question", ["zebra quartz", "how do I make a pizza?", "what's the weather"])
def test_off_topic_questions_find_nothing(question):
    # an everyday word shared with an entry ('make') is not enough to show that entry
    assert search(question, 3) == []


@pytest.mark.slow
def test_minilm_and_hybrid_retrieval_find_the_oom_entry():
    # MiniLM matches meaning, not words: "the machine ran out of RAM" shares little text with the entry title
    assert "out-of-memory" in [e.id for e in search("my laptop ran out of RAM while training", 3, method="embed")]
    assert search("ran out of memory", 3, method="hybrid")[0].id == "out-of-memory"
    # auto: BM25 finds no entry sharing enough words, so MiniLM answers
    assert search("my PC crashed during fine tuning, RAM full", 3, method="bm25") == []
    assert search("my PC crashed during fine tuning, RAM full", 3, method="auto")[0].id == "out-of-memory"
    assert search("how do I bake bread", 3, method="auto") == []


def test_explain_without_ollama_prints_the_best_entry_and_says_why():
    res = runner.invoke(app, ["explain", "ran out of memory"])
    assert res.exit_code == 0
    assert "Ollama is not running" in flat(res.output)
    assert "Training runs out of memory" in res.output
    assert "batch_size=1" in res.output


def test_explain_with_ollama_answers_grounded_in_the_entries_and_cites_them(ollama):
    ollama.enqueue("Lower the batch size to 1 and use context 2048 [out-of-memory].")
    res = runner.invoke(app, ["explain", "ran out of memory"])
    assert res.exit_code == 0, res.output
    assert "Lower the batch size to 1" in res.output
    assert "out-of-memory" in res.output
    assert "phi4-mini" in res.output
    body = ollama.requests_to("/api/chat")[-1].body
    assert body["model"] == "phi4-mini"
    user = body["messages"][-1]["content"]
    # grounded: the retrieved entry's own text is in the prompt, labelled with its id
    assert "[out-of-memory]" in user
    assert "gradient checkpointing" in user.lower()
    assert "ran out of memory" in user


def test_explain_with_the_assistant_model_missing_falls_back_to_entries(ollama):
    ollama.models = []
    res = runner.invoke(app, ["explain", "why is my loss flat?"])
    assert res.exit_code == 0
    assert "ollama pull phi4-mini" in flat(res.output)
    assert "The training loss is flat" in res.output


def test_explain_with_no_match_exits_1():
    res = runner.invoke(app, ["explain", "zebra quartz"])
    assert res.exit_code == 1
    assert "Nothing in the knowledge base" in res.output


def test_explaining_a_diagnosis_shows_its_page_with_the_settings_it_changes():
    events = [{"type": "failed", "code": "oom", "message": "out of memory"}]
    d = diagnose(events)[0]
    assert d.fix  # the diagnosis offers settings to change
    res = runner.invoke(app, ["explain", d.message])
    assert res.exit_code == 0, res.output
    shown = flat(res.output)
    assert "Training runs out of memory" in shown
    # what the page tells the user to do names every setting the diagnosis would change
    fix_part = shown[shown.index("Fix"):]
    assert [key for key in d.fix if key not in fix_part] == [], (d.fix, fix_part)
    assert json.loads(json.dumps(d.as_event()))["code"] == "oom"
