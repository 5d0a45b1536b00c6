"""LLaMA-Factory turn tags (role_tag, content_tag, user_tag, ...): from a dataset_info.json entry or --map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.dataset.conftest import jsonl
from tools.dataset.checks import check_file
from tools.dataset.mapping import column_map, parse_map
from tools.dataset.readers import read_dataset
from tools.errors import UsageError

runner = CliRunner()

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "system_tag": "system"}
SUPPORT_TAGS = {"role_tag": "speaker", "content_tag": "text", "user_tag": "customer", "assistant_tag": "agent",
                "observation_tag": "lookup", "function_tag": "call"}
ORDER_TOOL = {"name": "find_order", "description": "Look an order up by its number",
              "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}


def support_row(i: int) -> dict:
    """A support chat in its own spelling: speaker/text turns, customer/agent/call/lookup roles."""
    return {"persona": "You are the Acme support desk.", "functions": json.dumps([ORDER_TOOL]), "dialog": [
        {"speaker": "customer", "text": f"Where is order A-{1000 + i}? It was due on day {i}."},
        {"speaker": "call", "text": json.dumps({"name": "find_order", "arguments": {"order": f"A-{1000 + i}"}})},
        {"speaker": "lookup", "text": json.dumps({"status": "shipped", "eta_days": i % 5 + 1})},
        {"speaker": "agent", "text": f"Order A-{1000 + i} has shipped and arrives in {i % 5 + 1} days."}]}


def registry(write, entries: dict) -> Path:
    return write("dataset_info.json", json.dumps(entries))


def test_openai_turns_in_a_sharegpt_entry_are_read_with_their_tags(write):
    rows = [{"messages": [{"role": "system", "content": "Answer as a PM."},
                          {"role": "user", "content": f"Draft a status update for sprint {i}."},
                          {"role": "assistant", "content": f"Sprint {i}: on track, two risks, demo Friday."}]}
            for i in range(12)]
    data = write("oa.json", json.dumps(rows))
    info = registry(write, {"oa": {"file_name": "oa.json", "formatting": "sharegpt",
                                   "columns": {"messages": "messages"}, "tags": OPENAI_TAGS}})
    report = check_file(data, column_map=column_map([], info, "oa"))
    assert report.examples == 12
    assert report.ok, [i.message for i in report.issues]
    ex = read_dataset(data, column_map=column_map([], info, "oa")).examples[3]
    assert [(m.role, m.content) for m in ex.messages] == [
        ("system", "Answer as a PM."), ("user", "Draft a status update for sprint 3."),
        ("assistant", "Sprint 3: on track, two risks, demo Friday.")]


def test_renamed_roles_keys_and_columns_keep_tool_calls_system_and_tools(write):
    data = write("support.jsonl", jsonl([support_row(i) for i in range(12)]))
    info = registry(write, {"support": {"file_name": "support.jsonl", "formatting": "sharegpt",
                                        "columns": {"messages": "dialog", "system": "persona", "tools": "functions"},
                                        "tags": SUPPORT_TAGS}})
    columns = column_map([], info, "support")
    result = read_dataset(data, column_map=columns)
    assert len(result.examples) == 12
    assert not [i for i in result.issues if i.severity == "error"]
    ex = result.examples[0]
    assert [m.role for m in ex.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert ex.messages[0].content == "You are the Acme support desk."
    call = ex.messages[2].tool_calls
    assert call is not None
    assert call[0].name == "find_order"
    assert json.loads(call[0].arguments) == {"order": "A-1000"}
    assert ex.tools is not None
    assert ex.tools[0]["function"]["name"] == "find_order"
    assert ex.messages[-1].content == "Order A-1000 has shipped and arrives in 1 days."


def test_without_the_tags_the_same_file_is_not_read(write):
    data = write("support.jsonl", jsonl([support_row(i) for i in range(12)]))
    report = check_file(data, column_map={"conversations": "dialog"})
    assert report.examples == 0
    assert not report.ok


def test_tags_on_the_command_line(write):
    rows = [{"conversations": [{"speaker": "customer", "text": f"Can I export invoice {i} as CSV?"},
                               {"speaker": "agent", "text": f"Yes: open invoice {i}, then Export, then CSV."}]}
            for i in range(12)]
    data = write("chats.jsonl", jsonl(rows))
    result = runner.invoke(app, ["check", str(data), "--map", "role_tag=speaker", "--map", "content_tag=text",
                                 "--map", "user_tag=customer", "--map", "assistant_tag=agent", "--json"])
    doc = json.loads(result.output)
    assert doc["format"] == "sharegpt"
    assert doc["examples"] == 12
    assert doc["ok"]


def test_an_alpaca_entry_ignores_tags_and_a_misspelt_tag_is_refused(write):
    rows = [{"q": f"Question {i}?", "a": f"Answer {i}."} for i in range(12)]
    data = write("qa.json", json.dumps(rows))
    info = registry(write, {"qa": {"file_name": "qa.json", "columns": {"prompt": "q", "response": "a"},
                                   "tags": {"role_tag": "q"}}})
    assert column_map([], info, "qa") == {"instruction": "q", "output": "a"}
    assert check_file(data, column_map=column_map([], info, "qa")).examples == 12
    with pytest.raises(UsageError) as err:
        parse_map(["speaker_tag=speaker"])
    assert "role_tag" in err.value.fix
