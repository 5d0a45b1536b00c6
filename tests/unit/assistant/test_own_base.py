"""A base the user already has, chosen in the chat: a folder or a .gguf file typed, or the model in their Ollama,
offered before any download."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.ollama_double import OllamaDouble
from tests.fakes.real_model import SMOLLM2_TAG, require_smollm2
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.assistant.test_conversation import to_data_choice, to_plan


async def to_offer(s: Session) -> dict:
    """From the start to the plan's first question: the recommended base is not on this machine."""
    await to_data_choice(s)
    await s.send("sample")
    q = await s.send("continue")
    assert q["then"] == "on_base_offer"
    return q


async def test_the_model_in_the_users_ollama_comes_before_any_download(ollama: OllamaDouble):
    ollama.pull_gguf(SMOLLM2_TAG, require_smollm2())
    s = Session(ScriptedLLM(ok=False))
    q = await to_offer(s)
    assert list(q["choices"])[0] == "ollama"
    assert q["choices"]["ollama"] == "Train on the smollm2:135m already in your Ollama — nothing to download"
    assert q["text"].startswith("You already have **smollm2:135m** in your Ollama")
    q = await s.click("ollama")
    assert q["then"] == "on_confirm_training"
    assert any("Training on the **smollm2:135m** already in your Ollama — nothing to download" in t for t in s.said)
    assert any("**Plan:** LoRA on **smollm2-135m**" in t for t in s.said)
    assert (await s.state())["train_model"] == "smollm2-135m"


async def test_without_such_a_model_in_ollama_the_download_offer_stands_alone(ollama: OllamaDouble):
    s = Session(ScriptedLLM(ok=False))
    q = await to_offer(s)
    assert "ollama" not in q["choices"]
    assert {"download", "tiny"} <= set(q["choices"])


async def test_a_gguf_file_typed_at_the_plan_is_the_base(ollama: OllamaDouble):
    gguf = require_smollm2()
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.send(f"use the model in {gguf}")
    assert q["then"] == "on_confirm_training"
    assert any(f"Training on the GGUF file `{gguf.resolve()}`" in t for t in s.said)
    assert (await s.state())["train_model"] == str(gguf.resolve())


async def test_a_folder_typed_at_the_plan_is_the_base_and_a_wrong_path_says_so(tmp_path: Path):
    from tools.models.catalog import build_tiny_random, tiny_random_tokenizer

    folder = tmp_path / "My Model"
    build_tiny_random(seed=0).save_pretrained(folder)
    tiny_random_tokenizer().save_pretrained(folder)
    s = Session(ScriptedLLM(ok=False))
    await to_plan(s)
    q = await s.send(f"use the model in {tmp_path}/nothing-here")
    assert "There is nothing at" in s.said[-1]
    assert q["then"] == "on_confirm_training"  # the plan stands
    q = await s.send({"settings": {"base_model": str(folder)}})  # the settings panel's text field says the same
    assert any(f"Training on the model folder `{folder.resolve()}`" in t for t in s.said)
    assert (await s.state())["train_model"] == str(folder.resolve())


def test_the_settings_panel_takes_a_model_you_already_have():
    from tools.train.setting import panel, panel_changes

    field = next(item for item in panel() if item["id"] == "base_path")
    assert field["kind"] == "text"
    before = {item["id"]: item["initial"] for item in panel()}
    assert panel_changes(before, {**before, "base_path": " ~/models/m.gguf "}) == {"base_model": "~/models/m.gguf"}
    assert panel_changes(before, {**before, "base_path": ""}) == {}
    # the panel hands an untouched, empty text field back as None: not a model called "None"
    assert panel_changes(before, {**before, "base_path": None, "epochs": 1.0}) == {"epochs": "1"}
