"""`mtw check`: exit codes, the JSON shape, the human view, and --fix output that checks clean."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.dataset.conftest import chat_record, jsonl, stories
from tools.dataset.checks import check_file
from tools.dataset.fix import fix_dataset, repair, split_positions
from tools.dataset.model import Example
from tools.dataset.readers import read_dataset
from tools.dataset.writers import write_messages_jsonl

runner = CliRunner()


def messy_file(write):
    rows = [chat_record(i) for i in range(40)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "")                                              # blank line
    lines.insert(5, '{"messages": [{"role": "user", "content": "x"}')  # truncated JSON
    lines.append(json.dumps(rows[0]))                                # exact duplicate
    lines.append(json.dumps({"messages": [{"role": "human", "content": "Write a PRD for SSO "},
                                          {"role": "user", "content": "for admins"},
                                          {"role": "assistant",
                                           "content": "  PRD: SSO. key sk-abcdefghijklmnopqrstu1234 "},
                                          {"role": "user", "content": "thanks"}]}))
    lines.append(json.dumps({"messages": [{"role": "user", "content": "no answer here"}]}))
    return write("messy.jsonl", "\r\n".join(lines) + "\r\n")


def test_clean_file_exits_0_with_summary(write):
    path = write("ok.jsonl", jsonl([chat_record(i) for i in range(12)]))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "12 examples, no problems to fix" in result.output


def test_problems_exit_1_and_name_lines(write):
    result = runner.invoke(app, ["check", str(messy_file(write))])
    assert result.exit_code == 1
    assert "problems to fix" in result.output
    assert "Line 6 is not valid JSON" in result.output
    assert "--fix" in result.output


def test_json_shape(write):
    result = runner.invoke(app, ["check", str(messy_file(write)), "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert set(doc) == {"format", "examples", "ok", "issues", "stats"}
    assert doc["format"] == "messages"
    assert doc["ok"] is False
    assert doc["examples"] == 43
    for issue in doc["issues"]:
        assert set(issue) == {"code", "severity", "line", "message", "fix"}
        assert issue["severity"] in ("error", "warning", "info")
    found = {i["code"] for i in doc["issues"]}
    assert {"invalid_json", "blank_line", "duplicate", "bad_role", "role_order", "secret", "no_assistant"} <= found
    assert doc["stats"]["tokens"]["max"] >= doc["stats"]["tokens"]["median"]


def test_usage_errors_exit_2(write, tmp_path):
    assert runner.invoke(app, ["check", str(tmp_path / "missing.jsonl")]).exit_code == 2
    path = write("ok.jsonl", jsonl([chat_record(0)]))
    assert runner.invoke(app, ["check", str(path), "--format", "parquet"]).exit_code == 2
    assert runner.invoke(app, ["check", str(path), "--context", "0"]).exit_code == 2
    assert runner.invoke(app, ["check", str(path), "--model", "no-such-model-xyz"]).exit_code == 2
    assert runner.invoke(app, ["check", str(path), "--fix", str(path)]).exit_code == 2


def test_context_flag_flags_long_rows(write):
    path = write("ok.jsonl", jsonl([chat_record(i) for i in range(12)]))
    result = runner.invoke(app, ["check", str(path), "--context", "30", "--json"])
    assert result.exit_code == 1
    assert {i["code"] for i in json.loads(result.output)["issues"] if i["severity"] == "error"} == {"too_long"}


def test_fix_writes_a_copy_that_checks_clean(write, tmp_path):
    src = messy_file(write)
    before = src.read_bytes()
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["check", str(src), "--fix", str(out)])
    assert result.exit_code == 1  # the input still has its problems
    assert src.read_bytes() == before  # never edited in place
    assert "Removed 1 exact duplicate" in result.output
    assert "Split off" in result.output
    report = check_file(out)
    assert report.ok, [i.message for i in report.issues if i.severity == "error"]
    assert report.stats["validation_examples"] >= 1
    fixed = read_dataset(out).examples + read_dataset(tmp_path / "clean.validation.jsonl").examples
    sso = next(ex for ex in fixed if "PRD for SSO" in ex.all_text())
    assert [m.role for m in sso.messages] == ["user", "assistant"]
    assert "<SECRET>" in sso.answer()
    assert sso.answer() == sso.answer().strip()
    assert len(fixed) == 41  # 40 rows + the repaired one; duplicate, broken and answerless rows dropped


def test_fix_json_mode_reports_changes(write, tmp_path):
    result = runner.invoke(app, ["check", str(messy_file(write)), "--fix", str(tmp_path / "c.jsonl"), "--json"])
    doc = json.loads(result.output)
    assert doc["stats"]["fix"]["ok_after"] is True
    assert doc["stats"]["fix"]["changes"]


def test_fix_drops_near_duplicates_only_when_asked(tmp_path):
    rows = stories(20)
    near = rows[0].model_copy(deep=True)
    near.messages[1].content += " Thanks."
    write_messages_jsonl([*rows, near], tmp_path / "d.jsonl")
    kept = fix_dataset(tmp_path / "d.jsonl", tmp_path / "a.jsonl")
    dropped = fix_dataset(tmp_path / "d.jsonl", tmp_path / "b.jsonl", drop_near_duplicates=True)
    assert kept.train_examples + kept.validation_examples == 21
    assert dropped.train_examples + dropped.validation_examples == 20


def test_split_is_stratified_for_classification():
    rows = [Example.classified(f"text {i}", "a") for i in range(40)]
    rows += [Example.classified(f"other {i}", "b") for i in range(20)]
    train, val = split_positions([ex.label for ex in rows], 0.1)
    assert len(train) + len(val) == 60
    assert sorted(rows[i].label for i in val) == ["a"] * 4 + ["b"] * 2


def test_split_keeps_tiny_sets_whole_and_gives_validation_one_row():
    assert split_positions([None] * 10)[1] == []
    assert len(split_positions([None] * 12)[1]) == 1


def test_repair_merges_orders_and_drops():
    ex = Example.chat(("assistant", "hi"), ("user", "a"), ("system", "s"), ("user", "b"), ("assistant", "c"),
                      ("user", "d"))
    fixed, did = repair(ex)
    assert fixed is not None
    assert [(m.role, m.content) for m in fixed.messages] == [("system", "s"), ("user", "a\n\nb"), ("assistant", "c")]
    assert repair(Example.chat(("user", "only")))[0] is None


def test_help_lists_the_flags():
    result = runner.invoke(app, ["check", "--help"])
    for flag in ("--model", "--context", "--json", "--fix"):
        assert flag in result.output


def test_fix_keeps_a_given_validation_file_and_removes_leaks(tmp_path):
    write_messages_jsonl(stories(20), tmp_path / "train.jsonl")
    write_messages_jsonl([stories(20)[2], stories(30)[25]], tmp_path / "validation.jsonl")
    assert "train_val_overlap" in check_file(tmp_path / "train.jsonl").codes()
    result = fix_dataset(tmp_path / "train.jsonl", tmp_path / "out" / "clean.jsonl")
    assert (result.train_examples, result.validation_examples) == (20, 1)
    assert any("also in the training data" in c for c in result.changes)
    assert check_file(tmp_path / "out" / "clean.jsonl").ok


def test_fix_normalises_other_formats_to_messages(write, tmp_path):
    rows = "".join(f'"Write a user story for feature {i}","As a user I want feature {i} so that work {i} is easier"\n'
                   for i in range(15))
    src = write("d.csv", "prompt,response\n" + rows)
    fix_dataset(src, tmp_path / "clean.jsonl")
    report = check_file(tmp_path / "clean.jsonl")
    assert report.ok
    assert report.format == "messages"
    assert report.examples == 13


def test_change_list_and_messages_read_as_plain_english(write):
    lines = [json.dumps(chat_record(i)) for i in range(20)]
    lines.insert(1, '{"messages": [{"role": "user", "content": "unterminated')
    path = write("one_bad.jsonl", "\n".join(lines) + "\n")
    fixed = fix_dataset(path, path.with_name("clean.jsonl"))
    assert any("(line 2)" in change for change in fixed.changes)
    message = next(i.message for i in check_file(path).issues if i.code == "invalid_json")
    assert "at at" not in message
    assert message.startswith("Line 2 ")
    assert message.count("Line 2") == 1


def read_only(monkeypatch, under):
    """The OS refuses every new file under UNDER (a read-only disk: EROFS); everything else is written as usual."""
    import errno
    import tempfile
    from pathlib import Path

    real = tempfile.mkstemp

    def refusing(*args, dir=None, **kwargs):  # test double for the disk
        if dir is not None and Path(dir).resolve().is_relative_to(Path(under).resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(Path(dir) / ".new.tmp"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refusing)


def test_fix_into_a_read_only_place_is_one_sentence_with_the_fix(write, tmp_path, monkeypatch):
    path = messy_file(write)
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(monkeypatch, ro)
    result = runner.invoke(app, ["check", str(path), "--fix", str(ro / "clean.jsonl")])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"{ro} cannot be written (the folder is read-only or not yours)" in said
    assert "Make it writable (or use a folder you own), then run the same command again" in said
    assert "Traceback" not in said
    assert list(ro.iterdir()) == []
    # the same fix into a folder that can be written works
    ok = runner.invoke(app, ["check", str(path), "--fix", str(tmp_path / "clean.jsonl")])
    assert "Cleaned copy" in ok.output
