"""Each Ollama TEMPLATE, rendered by Go's text/template, gives the prompt the base's own chat template gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.export.gotemplate import canonical_json, ollama_values, render
from tools.export.templates import TEMPLATES, VARIANT_TEMPLATES, template_for
from tools.models.catalog import CATALOG, TINY_RANDOM

PROMPTS = Path(__file__).with_name("golden") / "prompts"
CONVERSATIONS: dict[str, dict[str, Any]] = json.loads((PROMPTS / "conversations.json").read_text(encoding="utf-8"))

# each golden's base, as the catalog lists it: the TEMPLATE is chosen per catalog entry
BASES = {"qwen2.5": "qwen2.5-0.5b", "llama3.2": "llama-3.2-1b", "smollm2": "smollm2-360m", "phi4-mini": "phi-4-mini",
         "gemma2": "gemma-2-2b"}
GOLDENS = sorted(p.name.removesuffix(".txt") for p in PROMPTS.glob("*.txt"))


def golden(name: str) -> str:
    """The expected prompt: the file after its `---` line (above it: which base, and where its format is written)."""
    return (PROMPTS / f"{name}.txt").read_text(encoding="utf-8").split("\n---\n", 1)[1]


def ollama_render(template: str, conversation: dict[str, Any]) -> str:
    return render(template, ollama_values(conversation["messages"], conversation.get("tools")))


def test_every_catalog_base_has_goldens_for_each_conversation() -> None:
    for base in BASES:
        expected = set(CONVERSATIONS) if base in ("qwen2.5", "llama3.2") else set(CONVERSATIONS) - {"tools"}
        assert {g.split(".")[-1] for g in GOLDENS if g.rsplit(".", 1)[0] == base} == expected, base


@pytest.mark.parametrize("name", GOLDENS)
def test_ollama_template_renders_the_bases_own_prompt(name: str) -> None:
    base, conversation = name.rsplit(".", 1)
    entry = CATALOG[BASES[base]]
    text = ollama_render(template_for(entry.template_family, entry.template_variant), CONVERSATIONS[conversation])
    if conversation == "tools":
        # tool definitions, calls and results are the same JSON; Go writes it compact, Python's tojson spaced
        assert canonical_json(text) == canonical_json(golden(name))
    else:
        assert text == golden(name)


def test_a_tiny_random_export_stays_plain_chatml() -> None:
    entry = CATALOG[TINY_RANDOM]
    text = ollama_render(template_for(entry.template_family, entry.template_variant), CONVERSATIONS["no_system"])
    assert text.startswith("<|im_start|>user\nExplain OKRs vs KPIs.<|im_end|>\n")
    assert "Qwen" not in text


def training_prompt(conversation: dict[str, Any]) -> str:
    """The prompt tiny-random trains on for `conversation`: tools/train/data.py's messages in its chat template."""
    from tools.dataset.model import Example, Message, ToolCall
    from tools.models.catalog import tiny_random_tokenizer
    from tools.train.data import chat_messages, supports_tools

    tok = tiny_random_tokenizer()
    example = Example(messages=[
        Message(role=m["role"], content=m["content"],
                tool_calls=[ToolCall(name=c["function"]["name"], arguments=json.dumps(c["function"]["arguments"]))
                            for c in m.get("tool_calls") or []] or None)
        for m in conversation["messages"]], tools=conversation.get("tools"))
    messages, tools = chat_messages(example, supports_tools(tok))
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_the_exported_template_writes_what_tiny_random_trained_on(conversation: str) -> None:
    # byte for byte, tool JSON included: training writes tools the way Ollama's Go side does
    assert ollama_render(TEMPLATES["chatml"], CONVERSATIONS[conversation]) == training_prompt(
        CONVERSATIONS[conversation])


def test_tool_json_with_html_characters_is_written_as_go_writes_it() -> None:
    conversation = json.loads(json.dumps(CONVERSATIONS["tools"]).replace("Look up a ticket", "Look up <a> & ticket"))
    text = ollama_render(TEMPLATES["chatml"], conversation)
    assert "Look up \\u003ca\\u003e \\u0026 ticket" in text
    assert text == training_prompt(conversation)


def test_tools_are_listed_only_when_a_request_has_tools() -> None:
    for template in (TEMPLATES["chatml"], *VARIANT_TEMPLATES.values()):
        assert "# Tools" not in ollama_render(template, CONVERSATIONS["multi_turn"])
        assert "Given the following functions" not in ollama_render(template, CONVERSATIONS["multi_turn"])


def test_consecutive_tool_results_share_one_user_turn_as_qwen_writes_them() -> None:
    conversation = json.loads(json.dumps(CONVERSATIONS["tools"]))
    conversation["messages"][2:3] = [{"role": "tool", "content": "first"}, {"role": "tool", "content": "second"}]
    text = ollama_render(VARIANT_TEMPLATES["qwen2.5"], conversation)
    assert ("<|im_start|>user\n<tool_response>\nfirst\n</tool_response>\n<tool_response>\nsecond\n</tool_response>"
            "<|im_end|>\n<|im_start|>assistant\nPAY-42") in text
    assert ollama_render(TEMPLATES["chatml"], conversation) == training_prompt(conversation)


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
    conversation = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]}
    for template in (*TEMPLATES.values(), *VARIANT_TEMPLATES.values()):
        assert ollama_render(template, conversation).endswith("Hel")


@pytest.mark.parametrize(("marker", "family", "variant"), [
    ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.", "chatml", "qwen2.5"),
    ("<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023<|eot_id|>", "llama3",
     "llama3.2"),
    ("<|im_start|>{{ m.role }}<|im_end|>", "chatml", ""),
])
def test_a_downloaded_base_gets_the_template_its_own_chat_template_shows(tmp_path: Path, marker: str, family: str,
                                                                         variant: str) -> None:
    from tools.models.catalog import resolve

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": f"{{{{ bos_token }}}}{marker}"}))
    entry = resolve(str(tmp_path))
    assert (entry.template_family, entry.template_variant) == (family, variant)
