"""Every issue code DESIGN.md promises is detected from a real file, with its line (where it has one) and a fix."""

from __future__ import annotations

import json

import pytest

from tests.unit.dataset.conftest import chat_record, jsonl
from tools.dataset.checks import check_file

BASE = [chat_record(i) for i in range(12)]
NEAR = BASE[4]["messages"]


def msgs(*turns):
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


CASES = {
    "invalid_json": (BASE, '{"messages": [\n', 13),
    "blank_line": (BASE, "\n", 13),
    "not_object": (BASE, "[1, 2]\n", 13),
    "missing_field": (BASE, json.dumps({"msgs": []}) + "\n", 13),
    "empty_field": (BASE, json.dumps(msgs(("user", "Write a PRD"), ("assistant", " "))) + "\n", 13),
    "bad_role": (BASE, json.dumps(msgs(("narrator", "x"), ("assistant", "y"))) + "\n", 13),
    "role_order": (BASE, json.dumps(msgs(("user", "a"), ("user", "b"), ("assistant", "c"))) + "\n", 13),
    "no_assistant": (BASE, json.dumps(msgs(("user", "Write OKRs"))) + "\n", 13),
    "duplicate": (BASE, json.dumps(BASE[0]) + "\n", 13),
    "near_duplicate": (BASE, json.dumps(msgs(("user", NEAR[0]["content"]),
                                             ("assistant", NEAR[1]["content"] + " Thanks!"))) + "\n", 13),
    "too_long": (BASE, json.dumps(msgs(("user", "Write a PRD"), ("assistant", "word " * 5000))) + "\n", 13),
    "pii_email": (BASE, json.dumps(msgs(("user", "Mail the team"), ("assistant", "Sent to ana.lopez@acme.io"))) + "\n",
                  13),
    "pii_phone": (BASE, json.dumps(msgs(("user", "Who to call?"), ("assistant", "Call 415-723-4567"))) + "\n", 13),
    "secret": (BASE, json.dumps(msgs(("user", "Config?"), ("assistant", "AKIAIOSFODNN7EXAMPLE"))) + "\n", 13),
    "too_few_examples": (BASE[:5], "", None),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_design_code_is_detected_with_line_and_fix(write, code):
    rows, extra, line = CASES[code]
    report = check_file(write("data.jsonl", jsonl(rows) + extra))
    hits = [i for i in report.issues if i.code == code]
    assert hits, f"{code} not reported; got {report.codes()}"
    assert hits[0].line == line
    assert hits[0].message
    assert hits[0].fix


def test_unknown_format(write):
    report = check_file(write("d.jsonl", jsonl([{"foo": 1}] * 3)))
    assert report.format == "unknown"
    assert not report.ok
    assert "unknown_format" in report.codes()


def test_encoding_utf16_and_bad_bytes(write, tmp_path):
    path = tmp_path / "u16.jsonl"
    path.write_text(jsonl(BASE), encoding="utf-16")
    assert "encoding" in check_file(path).codes()
    latin = write("latin.jsonl", jsonl(BASE).encode() + '{"text": "café", "label": "x"}\n'.encode("cp1252"))
    hit = next(i for i in check_file(latin, format="messages").issues if i.code == "encoding")
    assert hit.line == 13
    assert "Windows-1252" in hit.message


def test_train_val_overlap_and_unseen_label(write):
    rows = [{"text": f"Write OKRs for team {i}", "label": "okr"} for i in range(8)]
    rows += [{"text": f"Draft a PRD for feature {i}", "label": "prd"} for i in range(8)]
    write("train.jsonl", jsonl(rows))
    val = write("validation.jsonl", jsonl([rows[0], {"text": "Write release notes", "label": "gtm"}]))
    report = check_file(val.with_name("train.jsonl"))
    got = {(i.code, i.line) for i in report.issues}
    assert ("train_val_overlap", 1) in got
    assert ("unseen_label", 2) in got


def test_label_imbalance(write):
    rows = [{"text": f"Write OKRs for team {i}", "label": "okr"} for i in range(20)]
    rows += [{"text": f"Draft a PRD for feature {i}", "label": "prd"} for i in range(3)]
    assert "label_imbalance" in check_file(write("c.jsonl", jsonl(rows))).codes()
