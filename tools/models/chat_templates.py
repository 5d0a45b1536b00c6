"""Chat templates: the families a base model's turns are written in, told from its own template, and our rendering
of each family for a tokenizer that ships none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

TemplateFamily = Literal["phi3", "llama3", "chatml", "gemma"]
TemplateVariant = Literal["", "qwen2.5", "smollm2", "llama3.2"]

# Go's JSON encoder (Ollama's `json`) escapes <, > and &; the training side writes tool JSON the same way
_GO_JSON = ("| tojson(separators=(',', ':'), sort_keys=True) | replace('<', '\\\\u003c') | replace('>', '\\\\u003e') "
            "| replace('&', '\\\\u0026')")
_CHATML = (
    "{%- set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' %}"
    "{%- if sys or tools %}<|im_start|>system\n{{ sys }}{% if tools %}{% if sys %}{{ '\\n\\n' }}{% endif %}# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{% for t in tools %}{{ '\\n' }}{\"type\": \"function\", \"function\": {{ t['function'] " + _GO_JSON + " }}}"
    "{% endfor %}"
    "{{ '\\n' }}</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}"
    "\n</tool_call>{% endif %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if m['role'] == 'system' and loop.first %}"
    "{% elif m['role'] == 'tool' %}{% if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}"
    "<|im_start|>user{% endif %}{{ '\\n' }}<tool_response>\n{{ m['content'] }}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}<|im_end|>\n{% endif %}"
    "{% elif m['role'] == 'assistant' and m['tool_calls'] %}<|im_start|>assistant"
    "{% if m['content'] %}{{ '\\n' }}{{ m['content'] }}{% endif %}"
    "{% for c in m['tool_calls'] %}{{ '\\n' }}<tool_call>\n"
    "{\"name\": \"{{ c['function']['name'] }}\", \"arguments\": {{ c['function']['arguments'] " + _GO_JSON + " }}}"
    "\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""ChatML with Qwen2.5's tool format, written the way the exported Ollama TEMPLATE writes it (tools/export)."""

CHAT_TEMPLATES: dict[str, str] = {
    "chatml": _CHATML,
    "llama3": ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
               "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
               "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"),
    "phi3": ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
             "{% if add_generation_prompt %}<|assistant|>{% endif %}"),
    "gemma": ("{{ bos_token }}{% for m in messages %}<start_of_turn>"
              "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] | trim }}<end_of_turn>\n"
              "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
}
"""Our own rendering of each family, used only when a tokenizer ships without a chat template."""

FAMILY_MARKERS: tuple[tuple[str, TemplateFamily], ...] = (
    ("<|eot_id|>", "llama3"), ("<|im_start|>", "chatml"), ("<end_of_turn>", "gemma"), ("<|end|>", "phi3"))
FAMILY_BY_TYPE: dict[str, TemplateFamily] = {"llama": "llama3", "phi3": "phi3", "gemma": "gemma",
                                               "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma"}
STOPS: dict[str, tuple[str, ...]] = {"phi3": ("<|end|>", "<|endoftext|>"), "llama3": ("<|eot_id|>",),
                                      "chatml": ("<|im_end|>",), "gemma": ("<end_of_turn>",)}


def chat_template_text(folder: Path) -> str:
    """The chat template a model folder ships (chat_template.jinja or tokenizer_config.json), "" when none."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        tok_cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    template = tok_cfg.get("chat_template") or ""
    return template if isinstance(template, str) else json.dumps(template)


VARIANT_MARKERS: tuple[tuple[str, TemplateVariant], ...] = (
    ("You are Qwen, created by Alibaba Cloud", "qwen2.5"), ("Cutting Knowledge Date", "llama3.2"),
    ("named SmolLM", "smollm2"))


def variant_from_template(template: str) -> TemplateVariant:
    """Which model of a family a chat template belongs to, from the words only its template has ("" if none)."""
    return next((variant for marker, variant in VARIANT_MARKERS if marker in template), "")


def family_from_template(template: str) -> TemplateFamily | None:
    """The template family a chat template writes (its turn markers), or None for one we do not know."""
    for marker, family in FAMILY_MARKERS:
        if marker in template:
            return family
    return None
