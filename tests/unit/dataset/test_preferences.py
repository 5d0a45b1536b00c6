"""Judgements in every shape people bring them (DPO pairs, KTO labels, LLaMA-Factory ranking and v1 files) read into
one preference row; their own checks (identical answers, contradictions, privacy in the rejected answer)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.dataset.conftest import jsonl
from tools.dataset.checks import check_file
from tools.dataset.readers import read_dataset
from tools.dataset.writers import write_preferences_jsonl

runner = CliRunner()


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in pairs]


def judged(result) -> list:
    return [ex.preference() for ex in result.examples]


def test_llama_factory_v1_text_parts_under_value_are_read_like_openai_text_parts(write):
    rows = [{"messages": [
        {"role": "user", "content": [{"type": "text", "value": f"Introduce feature {i}."}], "loss_weight": 0.0},
        {"role": "assistant", "content": [{"type": "text", "value": f"Feature {i} saves you time."}],
         "loss_weight": 1.0}]} for i in range(12)]
    result = read_dataset(write("v1_sft_demo.jsonl", jsonl(rows)))
    assert result.format == "messages"
    assert len(result.examples) == 12
    assert "bad_type" not in {i.code for i in result.issues}
    assert result.examples[3].messages[1].content == "Feature 3 saves you time."
    assert [m.taught() for m in result.examples[0].messages] == [False, True]
    openai = [{"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text",
                                                                                        "text": "there"}]},
                            {"role": "assistant", "content": "Hello"}]}]
    assert read_dataset(write("openai.jsonl", jsonl(openai))).examples[0].messages[0].content == "Hi\nthere"


def test_dpo_shapes_all_read_into_the_same_judgement(write):
    prompt = "Write a tagline for the CSV export."
    good, bad = "Your data, one click away.", "CSV export exists."
    shapes = {
        "strings": {"prompt": prompt, "chosen": good, "rejected": bad},
        "trl_conversational": {"prompt": turns(("user", prompt)), "chosen": turns(("assistant", good)),
                               "rejected": turns(("assistant", bad))},
        "trl_repeating_the_prompt": {"chosen": turns(("user", prompt), ("assistant", good)),
                                     "rejected": turns(("user", prompt), ("assistant", bad)),
                                     "prompt": turns(("user", prompt))},
        "sharegpt": {"conversations": [{"from": "human", "value": prompt}], "chosen": {"from": "gpt", "value": good},
                     "rejected": {"from": "gpt", "value": bad}},
        "alpaca_ranking": {"instruction": prompt, "input": "", "chosen": good, "rejected": bad},
        "llama_factory_v1": {
            "chosen_messages": [{"role": "user", "content": [{"type": "text", "value": prompt}], "loss_weight": 0.0},
                                {"role": "assistant", "content": [{"type": "text", "value": good}]}],
            "rejected_messages": [{"role": "user", "content": [{"type": "text", "value": prompt}],
                                   "loss_weight": 0.0},
                                  {"role": "assistant", "content": [{"type": "text", "value": bad}]}]},
    }
    for name, row in shapes.items():
        result = read_dataset(write(f"{name}.jsonl", jsonl([row])))
        assert result.format == "dpo", name
        pref = judged(result)[0]
        assert pref.paired, name
        assert [m.content for m in pref.prompt] == [prompt], name
        assert [(m.role, m.content) for m in pref.chosen] == [("assistant", good)], name
        assert [(m.role, m.content) for m in pref.rejected] == [("assistant", bad)], name


def test_kto_labels_read_as_single_judged_answers(write):
    rows = [{"messages": turns(("user", "Reply to the refund request"), ("assistant", "Happy to help.")),
             "label": True},
            {"prompt": turns(("user", "Reply to the refund request")), "completion": turns(("assistant", "No.")),
             "label": False},
            {"prompt": "Reply to the refund request", "completion": "Sure thing.", "label": True}]
    result = read_dataset(write("kto.jsonl", jsonl(rows)))
    assert result.format == "kto"
    prefs = judged(result)
    assert [p.paired for p in prefs] == [False, False, False]
    assert [(answer[0].content, good) for p in prefs for answer, good in p.unpaired()] == [
        ("Happy to help.", True), ("No.", False), ("Sure thing.", True)]
    assert all([m.content for m in p.prompt] == ["Reply to the refund request"] for p in prefs)


def test_llama_factory_ranking_and_kto_entries_read_through_dataset_info(write, tmp_path):
    info = {"dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt",
                            "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
            "orca_pairs": {"file_name": "orca.json", "ranking": True,
                           "columns": {"prompt": "question", "chosen": "chosen", "rejected": "rejected",
                                       "system": "system"}},
            "kto_en_demo": {"file_name": "kto_en_demo.json", "formatting": "sharegpt",
                            "columns": {"messages": "messages", "kto_tag": "label"},
                            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                     "assistant_tag": "assistant"}}}
    info_path = write("dataset_info.json", json.dumps(info))
    dpo = [{"conversations": [{"from": "human", "value": f"Summarise release {i}"}],
            "chosen": {"from": "gpt", "value": f"Release {i}: faster search."},
            "rejected": {"from": "gpt", "value": f"Stuff changed in {i}."}} for i in range(12)]
    orca = [{"system": "You are a PM.", "question": f"Name risk {i}", "chosen": f"Risk {i}: scope creep.",
             "rejected": f"idk {i}"} for i in range(12)]
    kto = [{"messages": turns(("user", f"Answer ticket {i}"), ("assistant", f"Reply {i}")), "label": i % 3 != 0}
           for i in range(12)]
    for name, rows, fmt in (("dpo_en_demo", dpo, "dpo"), ("orca_pairs", orca, "dpo"), ("kto_en_demo", kto, "kto")):
        data = write(f"{name}.json", json.dumps(rows, indent=2))
        result = runner.invoke(app, ["check", str(data), "--dataset-info", str(info_path), "--dataset", name,
                                     "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["format"] == fmt, name
        assert report["examples"] == 12, name
        assert any(i["code"] == "preference_data" and f"--method {fmt}" in i["fix"] for i in report["issues"]), name
    orca_rows = read_dataset(tmp_path / "orca_pairs.json", column_map={"prompt": "question"}).examples
    pref = orca_rows[0].preference()
    assert [m.role for m in pref.prompt] == ["system", "user"]
    assert pref.rejected[0].content == "idk 0"


def test_a_ranking_entry_whose_rows_lack_the_pairs_says_which_field_is_missing(write):
    info = write("dataset_info.json", json.dumps({"pairs": {"file_name": "p.json", "ranking": True}}))
    data = write("p.jsonl", jsonl([{"instruction": f"Q{i}", "output": f"A{i}"} for i in range(12)]))
    result = runner.invoke(app, ["check", str(data), "--dataset-info", str(info), "--dataset", "pairs", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["format"] == "dpo"
    assert any(i["code"] == "missing_field" for i in report["issues"])


def test_identical_answers_contradictions_and_secrets_in_the_rejected_answer_are_reported(write):
    rows = [{"prompt": f"Write update {i}", "chosen": f"Update {i}: on track.", "rejected": f"Update {i}: late."}
            for i in range(10)]
    rows.append({"prompt": "Write update 3", "chosen": "Update 3: late.", "rejected": "Update 3: on track."})
    rows.append({"prompt": "Write update 4", "chosen": "Same words.", "rejected": "same   WORDS."})
    rows.append({"prompt": "Write update 5", "chosen": "Fine.", "rejected": "Mail jane.doe@northwind-traders.com now."})
    report = check_file(write("pairs.jsonl", jsonl(rows)))
    by_code = {i.code: i for i in report.issues}
    assert by_code["conflicting_judgement"].line == 11
    assert "line 4" in by_code["conflicting_judgement"].message
    assert by_code["same_answers"].line == 12
    assert by_code["pii_email"].line == 13
    kto = [{"messages": turns(("user", f"Reply {i}"), ("assistant", f"Answer {i}")), "label": True} for i in range(10)]
    kto.append({"messages": turns(("user", "Reply 2"), ("assistant", "Answer 2")), "label": False})
    report = check_file(write("labels.jsonl", jsonl(kto)))
    clash = next(i for i in report.issues if i.code == "conflicting_judgement")
    assert clash.line == 11
    assert "rated good" in clash.message


def test_judgements_written_and_read_back_are_the_same(write, tmp_path):
    rows = [{"prompt": turns(("system", "Be brief."), ("user", f"Q{i}")), "chosen": turns(("assistant", f"A{i}")),
             "rejected": turns(("assistant", f"B{i}"))} for i in range(3)]
    first = read_dataset(write("pairs.jsonl", jsonl(rows))).examples
    write_preferences_jsonl(first, tmp_path / "again.jsonl")
    again = read_dataset(tmp_path / "again.jsonl").examples
    assert [e.preference() for e in again] == [e.preference() for e in first]
    kto = [{"messages": turns(("user", "Q"), ("assistant", "A")), "label": False}]
    first = read_dataset(write("kto.jsonl", jsonl(kto))).examples
    write_preferences_jsonl(first, tmp_path / "kto_again.jsonl")
    assert read_dataset(tmp_path / "kto_again.jsonl").examples[0].preference() == first[0].preference()
