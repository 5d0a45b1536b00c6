"""The settings, presets and steps a user can name: the parser, the assistant model's schema and prompt, the settings
panel and the trainer all take them from one definition, so a setting, preset or step added there reaches each."""

from __future__ import annotations

from typing import get_args, get_type_hints

import pytest

from assistant import conversation, routing
from tools.project import ProjectSpec
from tools.train.config import PRESETS, TrainConfig
from tools.train.setting import LABELS, apply_settings, panel, panel_changes
from tools.vocabulary import DESTINATIONS, PRESET_NAMES, PRESET_USES, SETTING_NAMES, SETTINGS, TARGETS

OPEN: dict = {"id": 1, "kind": "question", "text": "What now?", "choices": {}}
PROMPT = routing.interpretation_prompt("hello", OPEN)
SCHEMA = routing.Interpretation.model_json_schema()["properties"]

SAID = {"epochs": ("use 2 epochs", "2"), "learning_rate": ("learning rate 1e-4", "1e-4"),
        "batch_size": ("batch size 8", "8"), "max_steps": ("max steps 30", "30"), "context": ("context 2048", "2048"),
        "lora_r": ("lora rank 8", "8"), "preset": ("use the documents preset", "documents"),
        "base_model": ("use qwen2.5-1.5b", "qwen2.5-1.5b")}
"""One message per setting, with the value the parser must read from it."""
ASKED = {"interview": "go back to the interview", "dataset": "back to the dataset", "plan": "show me the plan",
         "evaluate": "go to the evaluation", "deploy": "go to export", "models": "list my models",
         "start_over": "start over"}
"""One message per step that asks to go there."""


def test_every_setting_is_parsed_offered_to_the_model_named_and_shown_in_the_panel():
    assert set(SAID) == set(SETTING_NAMES)
    for name, (message, value) in SAID.items():
        assert routing.parse(message, OPEN) == {"text": message, "by": "parser", "kind": "setting",
                                                "value": {name: value}}
    assert SCHEMA["setting"]["enum"] == ["", *SETTING_NAMES]
    listed = PROMPT.split("changes a training setting (")[1].split(")")[0]
    assert [w.split()[0] for w in listed.split(", ")] == list(SETTING_NAMES)
    assert set(LABELS) == set(SETTING_NAMES)
    assert {f["id"] for f in panel()} == {*SETTING_NAMES, "base_path"}


def test_every_panel_field_changes_a_setting_the_chat_can_apply():
    fields = panel()
    before = {f["id"]: f["initial"] for f in fields}
    for f in fields:
        if f["id"] == "base_path":
            continue  # a path on this machine: tests/unit/assistant/test_own_base.py
        other = next(v for v in f["values"] if v != f["initial"]) if f["kind"] == "select" else (
            "1e-4" if f["kind"] == "text" else 2)
        changed = panel_changes(before, {**before, f["id"]: other})
        assert set(changed) == {f["id"]}
        sets, model, preset, said = apply_settings(changed, sets={}, model="", preset="")
        assert said.startswith(SETTINGS[f["id"]].label)


def test_the_model_names_only_settings_there_are():
    ip = routing.Interpretation(kind="setting", setting="epochs", value="2")
    assert routing.from_interpretation(ip, "two passes, so 2", OPEN)["value"] == {"epochs": "2"}
    with pytest.raises(ValueError, match="setting"):
        routing.Interpretation(kind="setting", setting="dropout", value="0.1")


def test_every_preset_is_trained_parsed_offered_to_the_model_and_shown_in_the_panel():
    assert list(PRESETS) == list(PRESET_NAMES) == list(PRESET_USES)
    for name in PRESET_NAMES:
        assert routing.parse(f"use the {name} preset", OPEN)["value"] == {"preset": name}
        assert routing.parse(f"preset: {name}", OPEN)["value"] == {"preset": name}
        assert TrainConfig(model="tiny-random", data="d.jsonl", preset=name).preset == name
        assert ProjectSpec(preset=name).preset == name
    assert f"preset {'|'.join(PRESET_NAMES)}" in PROMPT
    field = next(f for f in panel() if f["id"] == "preset")
    assert field["values"] == list(PRESET_NAMES)
    assert all(f"{name} ({use})" in field["description"] for name, use in PRESET_USES.items())
    with pytest.raises(ValueError, match="preset"):
        TrainConfig(model="tiny-random", data="d.jsonl", preset="poetry")


def test_every_step_is_parsed_offered_to_the_model_believed_and_has_a_node():
    assert set(ASKED) == set(TARGETS) == set(DESTINATIONS) == set(conversation.ENTRY)
    for target, message in ASKED.items():
        assert routing.parse(message, OPEN) == {"text": message, "by": "parser", "kind": "navigate", "value": target}
        ip = routing.Interpretation(kind="navigate", target=target)
        assert routing.from_interpretation(ip, message, OPEN)["value"] == target
    assert SCHEMA["target"]["enum"] == ["", *TARGETS]
    assert f"`target` ({', '.join(TARGETS)})" in PROMPT
    ip = routing.Interpretation(kind="navigate", target="deploy")
    assert routing.from_interpretation(ip, "what about the weather", OPEN)["kind"] == "unclear"


def test_every_reading_has_the_shape_of_its_kind():
    shapes = {kind: member for member in get_args(routing.Intent)
              for kind in get_args(get_type_hints(member)["kind"])}
    plan = {"id": 2, "kind": "question", "text": "Start?", "choices": {"start": "Start training", "edit": "Edit"}}
    readings = [routing.parse(m, plan) for m in ("yes", "Start training", "edit", "ain", "use 2 epochs", "back",
                                                 "back to the dataset", "what is lora?", "status", "")]
    readings += [routing.from_interpretation(routing.Interpretation(kind=k, choice="edit", setting="epochs",
                                                                    value="3", target="plan"), "3 more, plan", plan)
                 for k in ("choice", "setting", "navigate", "question", "status", "unclear")]
    readings += [routing.from_click({"qid": 2, "value": "start", "label": "Start training"}, plan),
                 routing.from_click({"qid": 1, "value": "start"}, plan)]
    # files, outcomes and ended runs come from the chat as such, not from reading words
    assert {r["kind"] for r in readings} == set(shapes) - {"file", "outcome", "ended"}
    for reading in readings:
        shape = shapes[reading["kind"]]
        assert shape.__required_keys__ <= set(reading) <= set(get_type_hints(shape))
