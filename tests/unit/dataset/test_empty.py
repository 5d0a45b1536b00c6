"""No examples read is an error with the reason and the fix; --fix that would keep nothing writes nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tools.dataset.checks import check_file

runner = CliRunner()


@pytest.mark.parametrize(("name", "content", "why"), [
    ("empty.jsonl", "", "holds no records"),
    ("blank.jsonl", "  \n\n\t\n", "holds no records"),
    ("list.json", "[]\n", "holds no records"),
    ("broken.jsonl", "not json\n{bad\n", "could be read"),
    ("columns.jsonl", '{"foo": 1}\n{"foo": 2}\n', "known format"),
])
def test_no_examples_is_an_error_that_says_why(write, name, content, why):
    report = check_file(write(name, content))
    assert report.examples == 0
    assert not report.ok
    first = report.issues[0]
    assert first.code == "no_examples"
    assert first.severity == "error"
    assert why in first.message
    assert first.fix
    result = runner.invoke(app, ["check", str(write(name, content))])
    assert result.exit_code == 1
    assert "No examples" in result.output


def test_fix_that_keeps_nothing_writes_nothing(write, tmp_path):
    path = write("unanswered.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["check", str(path), "--fix", str(out)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # the terminal wraps long lines
    assert "would keep no examples" in said
    assert "wrote nothing" in said
    assert not out.exists()
    assert not (tmp_path / "clean.validation.jsonl").exists()
