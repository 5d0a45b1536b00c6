"""Each Ollama TEMPLATE, rendered by a Go-template interpreter, gives the prompt the model was trained on."""

from __future__ import annotations

import pytest

from tests.unit.export.gotemplate import render
from tools.export.templates import TEMPLATES

CHAT = [("system", "Be brief."), ("user", "Write a user story."), ("assistant", "As a user, I want…"),
        ("user", "Another one.")]


def ollama_render(family: str, turns: list[tuple[str, str]]) -> str:
    # Ollama hands the system prompt over as .System and the rest as .Messages
    system = "".join(c for r, c in turns if r == "system")
    msgs = [{"Role": r, "Content": c} for r, c in turns if r != "system"]
    return render(TEMPLATES[family], {"System": system, "Messages": msgs, "Prompt": "", "Response": ""})


def training_render(family: str, turns: list[tuple[str, str]]) -> str:
    import jinja2

    from tools.train.catalog import CHAT_TEMPLATES

    tpl = jinja2.Environment().from_string(CHAT_TEMPLATES[family])
    return tpl.render(messages=[{"role": r, "content": c} for r, c in turns], add_generation_prompt=True,
                      bos_token="")


@pytest.mark.parametrize("family", ["phi3", "llama3", "chatml"])
@pytest.mark.parametrize("turns", [CHAT, CHAT[1:], CHAT[1:2]])
def test_ollama_prompt_equals_the_training_chat_template(family: str, turns: list[tuple[str, str]]) -> None:
    assert ollama_render(family, turns) == training_render(family, turns)


def test_gemma_puts_the_system_prompt_in_the_first_user_turn() -> None:
    assert ollama_render("gemma", CHAT) == (
        "<start_of_turn>user\nBe brief.\n\nWrite a user story.<end_of_turn>\n"
        "<start_of_turn>model\nAs a user, I want…<end_of_turn>\n"
        "<start_of_turn>user\nAnother one.<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.parametrize(("family", "expected"), [
    ("phi3", "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>"),
    ("chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
    ("llama3", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    ("gemma", "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"),
])
def test_plain_prompt_branch_opens_the_assistant_turn(family: str, expected: str) -> None:
    text = render(TEMPLATES[family], {"System": "Be brief.", "Messages": [], "Prompt": "Hi", "Response": "<R>"})
    # Ollama generates from where .Response sits
    assert text.split("<R>")[0] == expected


def test_an_unfinished_assistant_turn_is_left_open() -> None:
    turns = [("user", "Hi"), ("assistant", "Hel")]
    for family in TEMPLATES:
        assert ollama_render(family, turns).endswith("Hel")
