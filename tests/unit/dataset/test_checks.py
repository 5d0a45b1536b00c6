"""Checks: each code fires on the problem it names (with the line and a fix) and stays quiet otherwise."""

from __future__ import annotations

import pytest

from tests.unit.dataset.conftest import stories, story
from tools.dataset.analysis import size_issues
from tools.dataset.checks import analyse, check_file, privacy_issues, row_issues
from tools.dataset.coverage import classify, classify_keywords
from tools.dataset.model import Example, Message


def codes(issues):
    return [i.code for i in issues]


def check_examples(rows, **kw):
    """The issues `mtw check` reports for these rows (the same pass check_file runs over a file)."""
    return analyse(rows, **kw)[0]


def only(issues, *wanted):
    return [(i.code, i.line) for i in issues if i.code in wanted]


def test_clean_rows_have_no_issues():
    assert check_examples(stories(60)) == []


def test_every_issue_names_line_message_and_fix():
    rows = stories(12) + [Example.chat(("user", "a"), ("user", "b"), line=40)]
    for issue in check_examples(rows):
        assert issue.message
        assert issue.fix
    role = [i for i in check_examples(rows) if i.code == "role_order"]
    assert role
    assert role[0].line == 40
    assert "two user turns in a row" in role[0].message


@pytest.mark.parametrize(("turns", "code"), [
    ([("user", "  "), ("assistant", "ok")], "empty_field"),
    ([("user", "a"), ("user", "b"), ("assistant", "c")], "role_order"),
    ([("user", "a"), ("assistant", "b"), ("user", "c")], "role_order"),
    ([("assistant", "a"), ("user", "b"), ("assistant", "c")], "role_order"),
    ([("user", "a"), ("assistant", "b"), ("system", "late")], "role_order"),
    ([("system", "s"), ("user", "a")], "no_assistant"),
])
def test_row_problems(turns, code):
    assert code in codes(row_issues(Example.chat(*turns, line=3)))


@pytest.mark.parametrize("turns", [
    [("user", "a"), ("assistant", "b")],
    [("system", "s"), ("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")],
])
def test_good_rows_pass(turns):
    assert row_issues(Example.chat(*turns)) == []


def test_classification_and_ner_rows():
    assert codes(row_issues(Example.classified("", "okr"))) == ["empty_field"]
    assert codes(row_issues(Example.classified("Write OKRs", " "))) == ["empty_field"]
    assert row_issues(Example.classified("Write OKRs", "okr")) == []
    assert codes(row_issues(Example(tokens=["a", "b"], tags=["O"]))) == ["tag_mismatch"]
    assert codes(row_issues(Example(tokens=["a", "b"], tags=["O", "I-ORG"]))) == ["tag_mismatch"]
    assert row_issues(Example(tokens=["Acme", "Corp"], tags=["B-ORG", "I-ORG"])) == []


@pytest.mark.parametrize(("text", "code"), [
    ("Mail jane.doe@acme-corp.io about it", "pii_email"),
    ("Call me at (415) 723-4567 tomorrow", "pii_phone"),
    ("Call +44 20 7946 0958", "pii_phone"),
    ("use key sk-proj-abcdefghijklmnopqrstuvwxyz012345", "secret"),
    ("AKIAIOSFODNN7EXAMPLE is the id", "secret"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "secret"),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "secret"),
    ("password = hunter2hunter2", "secret"),
])
def test_privacy_positive(text, code):
    assert code in codes(privacy_issues(Example.chat(("user", "q"), ("assistant", text), line=5)))


@pytest.mark.parametrize("text", [
    "Ship on 2025-03-14, budget 10,000 users, v2.3.1 release",
    "Write to name@example.com for the demo",
    "Revenue grew 12.5% to 1,250,000 in Q3 2024",
    "Ticket PROJ-1234 and sprint 42",
])
def test_privacy_negative(text):
    assert privacy_issues(Example.chat(("user", "q"), ("assistant", text))) == []


def test_exact_and_near_duplicates_point_at_the_first_copy():
    rows = stories(20)
    for i, ex in enumerate(rows, start=1):
        ex.line = i
    twin = rows[3].model_copy(update={"line": 30})
    near = rows[5].model_copy(deep=True, update={"line": 31})
    near.messages[1].content += " Thanks!"
    issues = [i for i in check_examples([*rows, twin, near]) if "duplicate" in i.code]
    assert [(i.code, i.line) for i in issues] == [("duplicate", 30), ("near_duplicate", 31)]
    assert "line 4" in issues[0].message
    assert "line 6" in issues[1].message


def test_distinct_rows_are_not_near_duplicates():
    assert only(check_examples(stories(40)), "duplicate", "near_duplicate") == []


def test_near_duplicates_can_be_switched_off():
    rows = stories(5)
    near = rows[0].model_copy(deep=True)
    near.messages[1].content += " Thanks."
    assert only(check_examples([*rows, near], near_duplicates=False), "near_duplicate") == []
    assert only(check_examples([*rows, near]), "near_duplicate") == [("near_duplicate", 6)]


def test_train_val_overlap():
    train = stories(20)
    val = [story(3).model_copy(update={"line": 2}), story(99)]
    assert only(check_examples(train, validation=val), "train_val_overlap") == [("train_val_overlap", 2)]
    assert only(check_examples(train, validation=[story(99)]), "train_val_overlap") == []


def test_too_long_uses_context():
    rows = [Example.chat(("user", "q"), ("assistant", "word " * 4000), line=1), story(1)]
    assert only(check_examples(rows, context=4096), "too_long") == [("too_long", 1)]
    assert only(check_examples(rows, context=8192), "too_long") == []
    issues, stats = analyse(rows, context=1024)
    assert "too_long" in codes(issues)
    assert stats["context"] == 1024


def test_too_few_examples():
    assert [(i.code, i.severity) for i in size_issues(9)] == [("too_few_examples", "error")]
    assert [(i.code, i.severity) for i in size_issues(30)] == [("too_few_examples", "info")]
    assert size_issues(50) == []
    assert only(check_examples(stories(9)), "too_few_examples") == [("too_few_examples", None)]


def test_label_imbalance_and_unseen_labels():
    rows = [Example.classified(f"request {i}", "prd") for i in range(20)]
    rows += [Example.classified(f"ask number {i} about goals", "okr") for i in range(3)]
    assert only(check_examples(rows), "label_imbalance", "unseen_label") == [("label_imbalance", None)]
    balanced = rows[:10] + [Example.classified(f"ask number {i} about goals", "okr") for i in range(8)]
    assert only(check_examples(balanced), "label_imbalance", "unseen_label") == []
    val = [Example.classified("what", "roadmap", line=4)]
    assert only(check_examples(balanced, validation=val), "unseen_label") == [("unseen_label", 4)]
    assert codes(check_examples(balanced, labels=["prd"])).count("unseen_label") == 8


def test_length_outliers():
    rows = stories(15)
    rows.append(Example.chat(("user", "Write a user story for exports"), ("assistant", "OK."), line=16))
    assert only(check_examples(rows), "length_outlier") == [("length_outlier", 16)]
    assert only(check_examples(stories(15)), "length_outlier") == []


def test_stats_shape():
    rows = stories(12) + [Example.classified("Plan the roadmap", "roadmap")]
    _, stats = analyse(rows)
    assert stats["examples"] == 13
    assert set(stats["tokens"]) == {"min", "median", "p95", "max", "total"}
    assert stats["tokens"]["min"] <= stats["tokens"]["median"] <= stats["tokens"]["p95"] <= stats["tokens"]["max"]
    assert stats["roles"]["assistant"] == 12
    assert stats["labels"] == {"roadmap": 1}
    assert stats["coverage"]["kinds"]["user_story"] == 12


def test_coverage_keywords_name_pm_task_kinds():
    assert classify_keywords("Write a user story for password reset") == "user_story"
    assert classify_keywords("Draft a PRD for offline mode") == "prd"
    assert classify_keywords("We are 2 weeks behind; write a stakeholder status update") == "status_update"
    assert classify_keywords("What is the difference between OKRs and KPIs?") == "okr"
    assert classify_keywords("Compare our pricing page with competitors") == "competitive_analysis"
    assert classify_keywords("Tell me a joke about cats") is None


def test_thin_category_note():
    rows = stories(30) + [Example.chat(("user", "Write Q3 OKRs for the growth team"), ("assistant", "Objective..."))]
    issues = check_examples(rows)
    thin = [i for i in issues if i.code == "thin_category"]
    assert thin
    assert "OKRs" in thin[0].message


def test_tokenizer_path_counts_with_the_chat_template():
    rows = stories(3)
    _, est = analyse(rows)
    _, real = analyse(rows, model="tiny-random")
    assert real["token_counting"] == "tokenizer of tiny-random"
    assert real["tokens"]["max"] > 0
    assert real["tokens"] != est["tokens"]


def test_tokenizer_path_with_minilm_folder():
    from tools.embeddings import minilm_path

    issues, stats = analyse(stories(3), model=str(minilm_path()))
    assert stats["tokens"]["min"] > 10
    # MiniLM reads 512 tokens at most, so the check holds rows to that context
    assert stats["context"] == 512


def test_embeddings_place_requests_keywords_miss():
    texts = ["Give me ideas to reduce the time new customers need before they see value",
             "Tell me a joke about cats"]
    assert classify(texts) == [None, None]
    kinds = classify(texts, use_embeddings=True)
    assert kinds[0] is not None


def test_check_file_reports_format_and_ok(tmp_path):
    from tools.dataset.writers import write_messages_jsonl

    write_messages_jsonl(stories(12), tmp_path / "d.jsonl")
    report = check_file(tmp_path / "d.jsonl")
    assert report.ok
    assert report.format == "messages"
    assert report.examples == 12
    assert set(report.model_dump()) == {"format", "examples", "ok", "issues", "stats"}


def test_check_file_finds_validation_next_to_it(tmp_path):
    from tools.dataset.writers import write_messages_jsonl

    write_messages_jsonl(stories(12), tmp_path / "train.jsonl")
    write_messages_jsonl([story(2)], tmp_path / "validation.jsonl")
    report = check_file(tmp_path / "train.jsonl")
    assert not report.ok
    assert "train_val_overlap" in report.codes()


def test_message_model_rejects_unknown_roles():
    with pytest.raises(ValueError, match="role"):
        Message(role="function", content="x")  # type: ignore[arg-type]


def test_a_large_file_checked_in_a_worker_gets_the_same_report(tmp_path, monkeypatch):
    import json

    import tools.dataset.checks as checks

    rows = [ex.model_dump(include={"messages"}) for ex in stories(60)]
    near = json.loads(json.dumps(rows[5]))
    near["messages"][1]["content"] += " Thanks!"
    short = {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello you"}]}
    email = {"messages": [{"role": "user", "content": "Mail ana.lopez@example.com the roadmap"},
                          {"role": "assistant", "content": "Sent the roadmap to Ana."}]}
    lines = [json.dumps(r) for r in [*rows, rows[3], near, short, short, email]] + ["{broken", json.dumps(rows[7])]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")

    alone = check_file(path).model_dump()
    monkeypatch.setattr(checks, "_PARALLEL_BYTES", 0)
    monkeypatch.setattr(checks, "_WORKER_MIN_ROW_BYTES", 0)
    monkeypatch.setattr(checks, "_WORKER_BATCH", 7)
    monkeypatch.setattr("threading.active_count", lambda: 1)  # as from the command line, whatever else this runs
    used = []
    in_worker = checks._add_in_worker
    monkeypatch.setattr(checks, "_add_in_worker", lambda run, rows: used.append(1) or in_worker(run, rows))
    assert check_file(path).model_dump() == alone
    assert used == [1]  # the worker path really ran
    assert {"duplicate", "near_duplicate", "invalid_json"} <= {i["code"] for i in alone["issues"]}


def _a_worker_that_dies(*args):
    import os

    os._exit(137)  # as the kernel's out-of-memory killer would end it


def test_a_worker_that_dies_leaves_the_check_to_finish_in_one_process(tmp_path, monkeypatch):
    import json

    import tools.dataset.checks as checks

    rows = [ex.model_dump(include={"messages"}) for ex in stories(30)]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*rows, rows[2]]) + "\n")
    alone = check_file(path).model_dump()
    monkeypatch.setattr(checks, "_PARALLEL_BYTES", 0)
    monkeypatch.setattr(checks, "_WORKER_MIN_ROW_BYTES", 0)
    monkeypatch.setattr("threading.active_count", lambda: 1)
    monkeypatch.setattr(checks, "batch_facts", _a_worker_that_dies)

    report = check_file(path).model_dump()

    assert report == alone  # the same findings, no BrokenProcessPool traceback
    assert report["examples"] == 31


def test_tiny_rows_or_a_threaded_caller_keep_the_check_in_one_process(tmp_path, monkeypatch):
    import threading

    import tools.dataset.checks as checks

    monkeypatch.setattr(checks, "_PARALLEL_BYTES", 1000)
    long_rows, tiny_rows = tmp_path / "long.jsonl", tmp_path / "tiny.jsonl"
    long_rows.write_text(("x" * 1500 + "\n") * 10)
    tiny_rows.write_text(("x" * 50 + "\n") * 300)
    with monkeypatch.context() as alone:
        alone.setattr("threading.active_count", lambda: 1)  # as from the command line
        assert checks._worth_a_worker(long_rows)
        assert not checks._worth_a_worker(tiny_rows)
    # the chat server runs other threads: forking it could copy a lock one of them holds
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not checks._worth_a_worker(long_rows)
    finally:
        stop.set()
        other.join()
