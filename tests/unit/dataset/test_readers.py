"""Readers: every format into canonical rows, messy real-world files, writers that round-trip."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from tests.unit.dataset.conftest import chat_record, jsonl, stories
from tools.dataset.model import Example, Message
from tools.dataset.readers import iter_examples, read_dataset
from tools.dataset.writers import write_messages_jsonl
from tools.errors import UsageError

PAIR = [Message(role="user", content="Write a user story for dark mode"),
        Message(role="assistant", content="As a night owl, I want dark mode, so that my eyes rest.")]


@pytest.mark.parametrize(("name", "record", "fmt"), [
    ("messages", {"messages": [m.openai() for m in PAIR]}, "messages"),
    ("alpaca", {"instruction": PAIR[0].content, "input": "", "output": PAIR[1].content}, "alpaca"),
    ("sharegpt", {"conversations": [{"from": "human", "value": PAIR[0].content},
                                    {"from": "gpt", "value": PAIR[1].content}]}, "sharegpt"),
    ("prompt", {"prompt": PAIR[0].content, "completion": PAIR[1].content}, "prompt_completion"),
])
def test_chat_formats_read_into_the_same_rows(write, name, record, fmt):
    result = read_dataset(write(f"{name}.jsonl", jsonl([record, record])))
    assert result.format == fmt
    assert [ex.messages for ex in result.examples] == [PAIR, PAIR]
    assert [ex.line for ex in result.examples] == [1, 2]
    assert not result.issues


def test_alpaca_input_system_and_history(write):
    rec = {"instruction": "Summarise", "input": "the notes", "output": "Done.", "system": "Be brief.",
           "history": [["Hi", "Hello"]]}
    ex = read_dataset(write("a.jsonl", jsonl([rec]))).examples[0]
    assert [(m.role, m.content) for m in ex.messages] == [
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"),
        ("user", "Summarise\n\nthe notes"), ("assistant", "Done.")]


def test_csv_with_header_mapping_and_multiline_cells(write):
    path = write("d.csv", 'Question,Answer\n"Write a PRD\nfor SSO",Here it is\n\nWhat is an OKR?,A goal\n')
    result = read_dataset(path)
    assert result.format == "prompt_completion"
    assert result.container == "csv"
    assert [(ex.line, ex.messages[0].content) for ex in result.examples] == [(2, "Write a PRD\nfor SSO"),
                                                                             (5, "What is an OKR?")]


def test_tsv_classification(write):
    result = read_dataset(write("d.tsv", "text\tlabel\nPlan Q3 roadmap\troadmap\nWrite OKRs\tokr\n"))
    assert result.format == "classification"
    assert result.container == "tsv"
    assert [(ex.text, ex.label) for ex in result.examples] == [("Plan Q3 roadmap", "roadmap"), ("Write OKRs", "okr")]


def test_ner_tokens_and_spans(write):
    rows = [{"tokens": ["Acme", "hired", "Ana"], "tags": ["B-ORG", "O", "B-PER"]},
            {"text": "Acme Corp hired Ana", "spans": [{"start": 0, "end": 9, "label": "ORG"}]}]
    exs = read_dataset(write("n.jsonl", jsonl(rows[:1]))).examples + read_dataset(
        write("s.jsonl", jsonl(rows[1:]))).examples
    assert exs[0].tags == ["B-ORG", "O", "B-PER"]
    assert exs[1].tokens == ["Acme", "Corp", "hired", "Ana"]
    assert exs[1].tags == ["B-ORG", "I-ORG", "O", "O"]


def test_bom_crlf_blank_lines_are_notes_not_errors(write):
    body = jsonl([chat_record(0), chat_record(1)]).replace("\n", "\r\n\r\n")
    result = read_dataset(write("w.jsonl", b"\xef\xbb\xbf" + body.encode()))
    assert len(result.examples) == 2
    assert {i.code for i in result.issues} == {"encoding", "line_endings", "blank_line"}
    assert all(i.severity == "info" for i in result.issues)


def test_utf16_is_decoded_and_said(write, tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(jsonl([chat_record(0)]), encoding="utf-16")
    result = read_dataset(path)
    assert len(result.examples) == 1
    assert result.encoding == "utf-16"
    assert [(i.code, i.severity) for i in result.issues] == [("encoding", "warning")]


def test_json_array_instead_of_jsonl(write):
    path = write("a.json", json.dumps([chat_record(0), chat_record(1), chat_record(2)], indent=2))
    result = read_dataset(path)
    assert result.container == "json"
    assert len(result.examples) == 3
    assert result.examples[1].line == 14  # each pretty-printed record starts on its own line


def test_broken_json_array_names_the_line(write):
    path = write("b.json", '[\n{"text": "a", "label": "x"},\n{"text": "b" "label": "y"}\n]')
    result = read_dataset(path)
    assert len(result.examples) == 1
    bad = [i for i in result.issues if i.code == "invalid_json"]
    assert bad
    assert bad[0].line == 3


def test_invalid_json_reports_position_and_keeps_reading(write):
    path = write("x.jsonl", jsonl([chat_record(0)]) + '{"messages": [}\n' + jsonl([chat_record(1)]))
    result = read_dataset(path)
    assert len(result.examples) == 2
    issue = next(i for i in result.issues if i.code == "invalid_json")
    assert issue.line == 2
    assert "column 15" in issue.message
    assert issue.severity == "error"


def test_trailing_comma_is_tolerated_with_a_warning(write):
    result = read_dataset(write("t.jsonl", '{"text": "a", "label": "b",}\n'))
    assert len(result.examples) == 1
    assert [(i.code, i.severity) for i in result.issues] == [("invalid_json", "warning")]


def test_not_object_missing_field_bad_role(write):
    rows = ['[1, 2]', json.dumps({"messages": [{"role": "narrator", "content": "x"}]}),
            json.dumps({"messages": [{"role": "user"}]}), json.dumps({"other": 1})]
    result = read_dataset(write("m.jsonl", "\n".join(rows) + "\n"), "messages")
    got = {(i.code, i.line) for i in result.issues}
    assert {("not_object", 1), ("bad_role", 2), ("missing_field", 3), ("missing_field", 4)} <= got
    assert result.examples == []


def test_role_aliases_are_read_with_a_warning(write):
    rec = {"messages": [{"role": "human", "content": "Hi"}, {"role": "gpt", "content": "Hello"}]}
    result = read_dataset(write("r.jsonl", jsonl([rec])))
    assert [m.role for m in result.examples[0].messages] == ["user", "assistant"]
    assert {(i.code, i.severity) for i in result.issues} == {("bad_role", "warning")}


def test_unknown_format_says_which_fields_it_saw(write):
    result = read_dataset(write("u.jsonl", jsonl([{"foo": 1, "bar": 2}])))
    assert result.format == "unknown"
    issue = result.issues[0]
    assert issue.code == "unknown_format"
    assert "foo" in issue.message
    assert "messages" in issue.fix


def test_forced_format_and_unknown_format_name(write):
    path = write("p.jsonl", jsonl([{"prompt": "a", "completion": "b"}]))
    assert read_dataset(path, "prompt_completion").format == "prompt_completion"
    assert read_dataset(path, "messages").issues[0].code == "missing_field"
    with pytest.raises(UsageError):
        read_dataset(path, "parquet")


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        read_dataset(tmp_path / "nope.jsonl")


def test_writers_round_trip(tmp_path):
    rows = stories(3) + [Example(messages=[Message(role="system", content="Be brief."), *PAIR, *PAIR])]
    path = tmp_path / "out.messages.jsonl"
    write_messages_jsonl(rows, path)
    back = read_dataset(path)
    assert back.format == "messages"
    assert [ex.messages for ex in back.examples] == [ex.messages for ex in rows]


def test_classification_and_ner_round_trip(tmp_path):
    rows = [Example.classified("Write OKRs for Q3", "okr"),
            Example(tokens=["Acme", "hired", "Ana"], tags=["B-ORG", "O", "B-PER"])]
    write_messages_jsonl(rows[:1], tmp_path / "c.jsonl")
    write_messages_jsonl(rows[1:], tmp_path / "n.jsonl")
    assert read_dataset(tmp_path / "c.jsonl").examples[0].label == "okr"
    assert read_dataset(tmp_path / "n.jsonl").examples[0].tags == rows[1].tags


def test_streaming_reader_keeps_memory_flat(tmp_path):
    record = json.dumps(chat_record(7)) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(record * 10_000)  # ~3 MB
    size = path.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in iter_examples(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 10_000
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte file"


def test_streaming_json_array_keeps_memory_flat(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + ",\n".join([json.dumps(chat_record(3))] * 15_000) + "]")
    size = path.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in iter_examples(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 15_000
    assert peak < size / 3


def test_reader_file_is_never_loaded_whole(tmp_path: Path):
    # a generator: the first row comes back before the rest of the file is parsed
    path = tmp_path / "g.jsonl"
    path.write_text(jsonl([chat_record(0)]) + "{broken\n")
    rows = iter_examples(path)
    assert next(rows).line == 1
