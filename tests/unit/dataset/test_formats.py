"""Every format people bring: detected, named, checked, kept through --fix; written in the shapes of public files."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.dataset.conftest import jsonl
from tools.dataset.checks import check_file
from tools.dataset.fix import fix_dataset
from tools.dataset.readers import read_dataset

runner = CliRunner()

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}}


def openai_tool_row(i: int, name: str = "get_weather", args: str = '{"city": "Paris"}') -> dict:
    return {"messages": [
        {"role": "user", "content": f"What is the weather in Paris on day {i}?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": f"call_{i}", "content": f'{{"temp_c": {10 + i}}}'},
        {"role": "assistant", "content": f"It is {10 + i} degrees in Paris on day {i}."}],
        "tools": [WEATHER_TOOL]}


def glaive_row(i: int) -> dict:
    tools = json.dumps([{"name": "convert_currency", "description": "Convert money",
                         "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}}}])
    return {"conversations": [
        {"from": "human", "value": f"Convert {i * 10} USD to EUR please."},
        {"from": "function_call", "value": json.dumps({"name": "convert_currency", "arguments": {"amount": i * 10}})},
        {"from": "observation", "value": json.dumps({"converted": i * 9})},
        {"from": "gpt", "value": f"{i * 10} USD is about {i * 9} EUR."}], "tools": tools}


def test_openai_tool_calls_are_read_checked_and_round_trip(write, tmp_path):
    path = write("tools.jsonl", jsonl([openai_tool_row(i) for i in range(12)]))
    report = check_file(path)
    assert report.format == "messages"
    assert report.examples == 12
    assert report.ok, report.issues
    out = fix_dataset(path, tmp_path / "clean.jsonl", validation_share=0.2)
    again = read_dataset(out.train_path).examples + read_dataset(out.validation_path).examples
    assert len(again) == 12
    first = next(ex for ex in again if ex.line == 1) if any(ex.line == 1 for ex in again) else again[0]
    call = first.messages[1]
    assert call.tool_calls
    assert call.tool_calls[0].name == "get_weather"
    assert first.tools == [WEATHER_TOOL]
    assert first.messages[2].role == "tool"
    assert first.messages[2].tool_call_id == call.tool_calls[0].id


def test_tool_calls_that_break_the_rules_are_errors(write):
    rows = [openai_tool_row(0, name="get_stock"), openai_tool_row(1, args="{city: Paris"),
            {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"},
                          {"role": "assistant", "content": "ok"}]}]
    report = check_file(write("bad_tools.jsonl", jsonl(rows)))
    by_line = {(i.line, i.code) for i in report.issues if i.severity == "error"}
    assert (1, "unknown_tool") in by_line
    assert (2, "bad_tool_arguments") in by_line
    assert (3, "tool_order") in by_line
    named = next(i for i in report.issues if i.code == "unknown_tool" and i.severity == "error")
    assert "get_stock" in named.message
    assert "get_weather" in named.message


def test_sharegpt_function_call_and_observation_with_tools_column(write):
    result = read_dataset(write("glaive.json", json.dumps([glaive_row(i) for i in range(1, 11)], indent=1)))
    assert result.format == "sharegpt"
    assert len(result.examples) == 10
    ex = result.examples[0]
    assert [m.role for m in ex.messages] == ["user", "assistant", "tool", "assistant"]
    assert ex.messages[1].tool_calls[0].name == "convert_currency"
    assert json.loads(ex.messages[1].tool_calls[0].arguments) == {"amount": 10}
    assert ex.tools
    assert ex.tools[0]["function"]["name"] == "convert_currency"
    assert check_file(write("g.jsonl", jsonl([glaive_row(i) for i in range(1, 11)]))).ok


def test_content_parts_joined_and_media_skipped_and_counted(write):
    text = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise"},
                                                      {"type": "text", "text": "this memo"}]},
                         {"role": "assistant", "content": [{"type": "text", "text": "A summary."}]}]}
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}},
                                                       {"type": "text", "text": "What is shown?"}]},
                          {"role": "assistant", "content": "A cat."}]}
    sharegpt_image = {"conversations": [{"from": "human", "value": "<image>What is it?"},
                                        {"from": "gpt", "value": "A dog."}], "images": ["dog.jpg"]}
    result = read_dataset(write("parts.jsonl", jsonl([text, image, text])))
    assert [ex.messages[0].content for ex in result.examples] == ["Summarise\nthis memo"] * 2
    media = [i for i in result.issues if i.code == "media_skipped"]
    assert len(media) == 1
    assert media[0].line == 2
    assert "1 example" in media[0].message
    assert "text only" in media[0].message
    assert read_dataset(write("sg.jsonl", jsonl([sharegpt_image]))).examples == []


def test_dolly_context_system_and_history_are_kept(write, tmp_path):
    dolly = [{"instruction": f"When was the company in passage {i} founded?",
              "context": f"Acme was founded in {1900 + i}.", "response": f"In {1900 + i}.", "category": "closed_qa"}
             for i in range(12)]
    path = write("dolly.jsonl", jsonl(dolly))
    result = read_dataset(path)
    assert result.format == "dolly"
    assert "Acme was founded in 1900." in result.examples[0].messages[0].content
    out = fix_dataset(path, tmp_path / "c.jsonl", validation_share=0.1)
    assert all("Acme was founded" in ex.messages[0].content for ex in read_dataset(out.train_path).examples)
    alpaca = {"instruction": "And in French?", "input": "", "output": "Bonjour.", "system": "You translate.",
              "history": [["Say hello", "Hello."]]}
    ex = read_dataset(write("a.jsonl", jsonl([alpaca]))).examples[0]
    assert [(m.role, m.content) for m in ex.messages] == [
        ("system", "You translate."), ("user", "Say hello"), ("assistant", "Hello."),
        ("user", "And in French?"), ("assistant", "Bonjour.")]


def test_weight_zero_and_loss_weight_turns_are_kept_but_not_taught(write):
    row = {"messages": [{"role": "user", "content": "Draft a status update"},
                        {"role": "assistant", "content": "Bad draft", "weight": 0},
                        {"role": "user", "content": "Shorter please"},
                        {"role": "assistant", "content": "Good short draft", "weight": 1}]}
    ex = read_dataset(write("w.jsonl", jsonl([row]))).examples[0]
    assert [m.taught() for m in ex.messages] == [False, False, False, True]
    silent = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "loss_weight": 0}]}
    report = check_file(write("z.jsonl", jsonl([silent] * 12)))
    assert any(i.code == "no_assistant" and "weight 0" in i.message for i in report.issues)


def test_dpo_is_named_says_how_it_trains_and_fix_keeps_only_chosen(write, tmp_path):
    rows = [{"conversations": [{"from": "human", "value": f"Write a tagline for product {i}"}],
             "chosen": {"from": "gpt", "value": f"Product {i}: work, simplified."},
             "rejected": {"from": "gpt", "value": f"REJECTED tagline {i}"}} for i in range(12)]
    path = write("dpo.jsonl", jsonl(rows))
    report = check_file(path)
    assert report.format == "dpo"
    assert report.ok
    issue = next(i for i in report.issues if i.code == "preference_data")
    assert "preference data" in issue.message
    assert "--method dpo" in issue.fix
    assert "--fix" in issue.fix
    assert sum(i.code == "preference_data" for i in report.issues) == 1
    assert "role_order" not in report.codes()
    out = fix_dataset(path, tmp_path / "chosen.jsonl", validation_share=0.1)
    written = (tmp_path / "chosen.jsonl").read_text() + (out.validation_path.read_text() if out.validation_path else "")
    assert "REJECTED" not in written
    assert written.count("work, simplified") == 12
    assert check_file(out.train_path).ok


def test_kto_says_how_it_trains_and_fix_never_keeps_undesirable_answers(write, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Reply to customer {i}"},
                          {"role": "assistant", "content": f"{'Rude reply' if i % 2 else 'Polite reply'} {i}"}],
             "label": i % 2 == 0} for i in range(24)]
    path = write("kto.jsonl", jsonl(rows))
    report = check_file(path)
    assert report.format == "kto"
    assert report.ok
    assert "--method kto" in next(i for i in report.issues if i.code == "preference_data").fix
    out = fix_dataset(path, tmp_path / "good.jsonl", validation_share=0.1)
    written = out.train_path.read_text() + (out.validation_path.read_text() if out.validation_path else "")
    assert "Rude" not in written
    assert written.count("Polite") == 12
    assert any("undesirable" in c for c in out.changes)


def test_conll_file_read_as_entity_tagging(write):
    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
            "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n-DOCSTART- -X- -X- O\n\nBRUSSELS NNP B-NP B-LOC\n")
    result = read_dataset(write("train.txt", text))
    assert result.format == "ner"
    assert result.container == "conll"
    assert [ex.tokens for ex in result.examples] == [["EU", "rejects", "German"], ["Peter", "Blackburn"],
                                                     ["BRUSSELS"]]
    assert result.examples[1].tags == ["B-PER", "I-PER"]
    assert result.examples[1].line == 7
    assert not [i for i in result.issues if i.severity == "error"]


def test_plain_text_and_dataset_registry_are_named_with_what_to_do(write):
    prose = "The quarterly roadmap focuses on onboarding.\nWe will ship the new billing page in May.\n"
    report = check_file(write("corpus.txt", prose))
    assert report.format == "plain_text"
    assert not report.ok
    assert [i.code for i in report.issues if i.severity == "error"] == ["plain_text"]
    registry = {"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
                "glaive_toolcall_en_demo": {"file_name": "glaive.json", "formatting": "sharegpt",
                                            "columns": {"messages": "conversations", "tools": "tools"}}}
    report = check_file(write("dataset_info.json", json.dumps(registry, indent=2)))
    assert report.format == "dataset_registry"
    errors = [i for i in report.issues if i.severity == "error"]
    assert len(errors) == 1
    assert "registry" in errors[0].message
    assert "--dataset-info" in errors[0].fix


def test_data_wrapper_and_one_line_array_name_records(write):
    rows = [{"instruction": f"Task {i}", "input": "", "output": f"Done {i}"} for i in range(12)]
    wrapped = write("wrapped.json", json.dumps({"data": rows}, indent=2))
    assert len(read_dataset(wrapped).examples) == 12
    rows[4]["output"] = ""
    report = check_file(write("one_line.json", json.dumps(rows)))
    empty = next(i for i in report.issues if i.code == "empty_field")
    assert empty.line == 5
    assert empty.message.startswith("Record 5")


def test_map_names_columns_for_check_and_train_data(write):
    rows = "".join(f"{'spam' if i % 3 == 0 else 'ham'}\tmessage number {i} about lunch\n" for i in range(30))
    path = write("spam.tsv", "Label\tSMS\n" + rows)
    assert check_file(path).format == "unknown"
    report = check_file(path, column_map={"text": "SMS", "label": "Label"})
    assert report.format == "classification"
    assert report.examples == 30
    result = runner.invoke(app, ["check", str(path), "--map", "text=SMS", "--map", "label=Label"])
    assert "30 examples" in result.output
    qa = write("qa.jsonl", jsonl([{"question": f"Q{i}?", "answer": f"A{i}.", "passage": f"P{i}."}
                                 for i in range(12)]))
    ex = read_dataset(qa, column_map={"prompt": "question", "response": "answer", "context": "passage"}).examples[0]
    assert [(m.role, m.content) for m in ex.messages] == [("user", "Q0?\n\nP0."), ("assistant", "A0.")]
    bad = runner.invoke(app, ["check", str(path), "--map", "text=Message"])
    assert bad.exit_code == 1
    assert "no column" in bad.output


def test_dataset_info_entry_maps_columns(write, tmp_path):
    rows = [{"q": f"Question {i}?", "a": f"Answer {i}."} for i in range(12)]
    data = write("mine.json", json.dumps(rows))
    info = write("dataset_info.json", json.dumps({"mine": {"file_name": "mine.json",
                                                          "columns": {"prompt": "q", "response": "a"}}}))
    result = runner.invoke(app, ["check", str(data), "--dataset-info", str(info), "--dataset", "mine", "--json"])
    doc = json.loads(result.output)
    assert doc["format"] == "alpaca"
    assert doc["examples"] == 12


def test_csv_text_spilling_into_unnamed_columns_is_reported(write):
    path = write("sms.csv", "class,message,,,\nham,Hello there,,,\nspam,Win cash, now, call,today\n")
    result = read_dataset(path, column_map={"label": "class", "text": "message"})
    assert len(result.examples) == 1
    spilled = next(i for i in result.issues if i.code == "extra_columns")
    assert spilled.line == 3
    assert "without a name" in spilled.message
