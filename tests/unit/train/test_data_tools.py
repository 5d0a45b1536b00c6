"""Tool calls and turn weights rendered with the base's chat template: its own tool format, or plain turns."""

from __future__ import annotations

import pytest

from tools.dataset.model import Example, Message, ToolCall
from tools.models.catalog import load_tokenizer
from tools.train.data import IGNORE, supports_tools, tokenize_example

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {}}}}]
# a small ChatML template with a tools branch, shaped like Qwen2.5's (definitions in the system turn,
# calls as <tool_call> JSON, results as <tool_response>)
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools:{% for t in tools %}\n{{ t['function']['name'] }}{% endfor %}"
    "<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if m['role'] == 'tool' %}<|im_start|>user\n<tool_response>{{ m['content'] }}"
    "</tool_response><|im_end|>\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% for c in m.get('tool_calls') or [] %}<tool_call>{{ c['function']['name'] }} "
    "{{ c['function']['arguments'] | tojson }}</tool_call>{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# ChatML with no tools branch, as many bases' own templates are
PLAIN_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

EXAMPLE = Example(messages=[
    Message(role="user", content="Weather in Paris?"),
    Message(role="assistant", content="", tool_calls=[ToolCall(name="get_weather", arguments='{"city": "Paris"}')]),
    Message(role="tool", content='{"temp": 21}'),
    Message(role="assistant", content="It is 21 degrees."),
], tools=TOOLS)


@pytest.fixture
def tok():
    return load_tokenizer("tiny-random")


def taught_text(tok, ex) -> str:
    return tok.decode([i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE])


def test_template_with_tools_renders_its_own_tool_format(tok):
    tok.chat_template = TOOL_TEMPLATE
    assert supports_tools(tok)
    ex = tokenize_example(tok, EXAMPLE, 512)
    text = tok.decode(ex.input_ids)
    assert "tools : get _ weather" in text.replace("\n", " ") or "get_weather" in text
    assert "tool _ response" in text or "tool_response" in text
    taught = taught_text(tok, ex)
    # the call and the final answer are taught, the tool's result is not
    assert "paris" in taught.lower()
    assert "21 degrees" in taught
    assert "temp" not in taught


def test_template_without_tools_gets_plain_turns(tok):
    tok.chat_template = PLAIN_TEMPLATE
    assert not supports_tools(tok)
    ex = tokenize_example(tok, EXAMPLE, 512)
    text = tok.decode(ex.input_ids)
    assert "get _ weather" in text or "get_weather" in text  # the definition and the call, as text
    assert "tool result" in text.lower()
    taught = taught_text(tok, ex)
    assert "paris" in taught.lower()
    assert "21 degrees" in taught
    assert "tool result" not in taught.lower()


def test_weight_zero_turns_are_read_but_not_taught(tok):
    ex = Example(messages=[Message(role="user", content="Draft it"),
                           Message(role="assistant", content="clumsy draft", weight=0),
                           Message(role="user", content="Better"),
                           Message(role="assistant", content="polished draft", weight=1)])
    out = tokenize_example(tok, ex, 512)
    assert "clumsy" in tok.decode(out.input_ids)
    taught = taught_text(tok, out)
    assert "polished draft" in taught
    assert "clumsy" not in taught
