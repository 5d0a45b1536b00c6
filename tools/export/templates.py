"""Ollama TEMPLATEs (Go-template syntax) and end-of-turn stop tokens for each chat-template family."""

from __future__ import annotations

from typing import Literal

Family = Literal["phi3", "llama3", "chatml", "gemma"]
FAMILIES: tuple[Family, ...] = ("phi3", "llama3", "chatml", "gemma")

Variant = Literal["", "qwen2.5", "smollm2", "llama3.2"]
"""Bases whose own chat template adds to their family's (a default system prompt, a dated header); '' = none."""

# each template has a `.Messages` branch (chat, Ollama >= 0.3) and a `.Prompt` branch (plain generate);
# `$last` marks the final message so an unfinished assistant turn is left open for the model to continue.
# Ollama hands the system prompt over both as `.System` and inside `.Messages`: the loops skip system turns.
# Tool JSON comes from Ollama's one template function, `json` (Go's encoder: compact, map keys sorted, <>& escaped).

_PHI3 = """\
{{- if .Messages }}
{{- if .System }}<|system|>{{ .System }}<|end|>{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|user|>{{ .Content }}<|end|>
{{- else if eq .Role "assistant" }}<|assistant|>{{ .Content }}{{ if not $last }}<|end|>{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|assistant|>{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|system|>{{ .System }}<|end|>{{ end }}
{{- if .Prompt }}<|user|>{{ .Prompt }}<|end|>{{ end }}<|assistant|>{{ .Response }}<|end|>
{{- end }}"""

LLAMA32_HEADER = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
"""Llama-3.2's system header; the date is its own template's fallback, as an Ollama template has no clock."""

_LLAMA3 = """\
{{- if .Messages }}
@SYSTEM@
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}@TURN@
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- else }}
@PROMPT_SYSTEM@
{{- if .Prompt }}<|start_header_id|>user<|end_header_id|>

{{ .Prompt }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

{{ .Response }}<|eot_id|>
{{- end }}"""

_LLAMA3_SYSTEM = """\
{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}"""

# Llama-3.2 always writes its header; with tools it adds `Environment: ipython`, lists the tools in the first
# user turn, writes calls as {"name", "parameters"} and reads results in an `ipython` turn, as a JSON string
# (its template passes text through `tojson` too)
_LLAMA32_SYSTEM = ("{{- if true }}<|start_header_id|>system<|end_header_id|>\n\n{{ if .Tools }}Environment: ipython\n"
                   "{{ end }}" + LLAMA32_HEADER + "{{ .System }}<|eot_id|>{{ end }}")
_LLAMA32_TOOLS = """\
{{- if and $first $.Tools }}<|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that \
best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not \
use variables.

{{ range $.Tools }}{"type": "function", "function": {{ json .Function }}}

{{ end }}{{ .Content }}<|eot_id|>
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ json .Content }}<|eot_id|>
{{- else if .ToolCalls }}<|start_header_id|>assistant<|end_header_id|>

{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ json .Function.Arguments }}}{{ end }}\
<|eot_id|>
{{- else }}"""


_LLAMA3_TURN = """<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|eot_id|>{{ end }}"""


def _llama3(dated: bool) -> str:
    if not dated:
        return (_LLAMA3.replace("@SYSTEM@", _LLAMA3_SYSTEM).replace("@PROMPT_SYSTEM@", _LLAMA3_SYSTEM)
                .replace("@TURN@", _LLAMA3_TURN))
    prompt_system = ("{{- if true }}<|start_header_id|>system<|end_header_id|>\n\n" + LLAMA32_HEADER
                     + "{{ .System }}<|eot_id|>{{ end }}")
    # `$first` marks the first turn after the system prompt, where Llama-3.2 lists the tools
    turn = "\n" + _LLAMA32_TOOLS + _LLAMA3_TURN + "\n{{- end }}\n{{- $first = false }}"
    return (_LLAMA3.replace("@SYSTEM@", _LLAMA32_SYSTEM + "\n{{- $first := true }}")
            .replace("@PROMPT_SYSTEM@", prompt_system).replace("@TURN@", turn))


QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# Qwen2.5's tool format (Hermes style): definitions in the system turn, calls as <tool_call> JSON, results as
# <tool_response> in a user turn (consecutive results share one). Our own ChatML training template writes the same.
_CHATML_TOOLS = """\
# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ json .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML \
tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>"""

_CHATML = """\
{{- if .Messages }}
@SYSTEM@
{{- $prev := "" }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "tool" }}
{{- if ne $prev "tool" }}<|im_start|>user{{ end }}
<tool_response>
{{ .Content }}
</tool_response>
{{- if $last }}<|im_end|>
{{ else if ne (index (slice $.Messages $i) 1).Role "tool" }}<|im_end|>
{{ end }}
{{- else if and (eq .Role "assistant") .ToolCalls }}<|im_start|>assistant
{{- if .Content }}
{{ .Content }}{{ end }}
{{- range .ToolCalls }}
<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
</tool_call>
{{- end }}<|im_end|>
{{ else if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- $prev = .Role }}
{{- end }}
{{- else }}
@PROMPT_SYSTEM@
{{- if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
{{- end }}"""

_CHATML_PLAIN_SYSTEM = """\
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}"""


def _chatml(default_system: str, tools: bool) -> str:
    """ChatML; `default_system` is what the base's own template writes when a conversation has none."""
    if not default_system:
        system = ("{{- if or .System .Tools }}<|im_start|>system\n{{ .System }}{{ if .Tools }}{{ if .System }}\n\n"
                  "{{ end }}" + _CHATML_TOOLS + "{{ end }}<|im_end|>\n{{ end }}")
        return _CHATML.replace("@SYSTEM@", system).replace("@PROMPT_SYSTEM@", _CHATML_PLAIN_SYSTEM)
    own = "{{ if .System }}{{ .System }}{{ else }}" + default_system + "{{ end }}"
    listing = "{{ if .Tools }}\n\n" + _CHATML_TOOLS + "{{ end }}" if tools else ""
    # `if true` only scopes the turn, so the trimming around it leaves the turn's own newline alone
    system = "{{- if true }}<|im_start|>system\n" + own + listing + "<|im_end|>\n{{ end }}"
    prompt_system = "{{- if true }}<|im_start|>system\n" + own + "<|im_end|>\n{{ end }}"
    return _CHATML.replace("@SYSTEM@", system).replace("@PROMPT_SYSTEM@", prompt_system)


# gemma has no system turn: the system prompt opens the first user turn, as Gemma 3's own chat template does
# (Ollama also keeps the system turn in .Messages, so the first user turn is not always message 0)
_GEMMA = """\
{{- if .Messages }}
{{- $first := true }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $.System $first }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- $first = false }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}
{{- else }}<start_of_turn>user
{{ if .System }}{{ .System }}

{{ end }}{{ .Prompt }}<end_of_turn>
<start_of_turn>model
{{ .Response }}<end_of_turn>
{{- end }}"""

TEMPLATES: dict[Family, str] = {"phi3": _PHI3, "llama3": _llama3(dated=False), "chatml": _chatml("", tools=True),
                                "gemma": _GEMMA}
"""Each family as its plain chat template writes it (our own training templates, tools/models/catalog.py)."""

VARIANT_TEMPLATES: dict[Variant, str] = {
    "qwen2.5": _chatml(QWEN_SYSTEM, tools=True),
    "smollm2": _chatml(SMOLLM_SYSTEM, tools=False),
    "llama3.2": _llama3(dated=True),
}
"""Bases whose own template differs from their family's plain one, matched to it line for line."""

# used when the catalog entry lists no stop tokens of its own
DEFAULT_STOPS: dict[Family, tuple[str, ...]] = {
    "phi3": ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>"),
    "llama3": ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
    "chatml": ("<|im_end|>", "<|im_start|>", "<|endoftext|>"),
    "gemma": ("<end_of_turn>", "<start_of_turn>"),
}

# text that must never show up in a reply: it means the template and the training format disagree
TEMPLATE_MARKERS: tuple[str, ...] = (
    "<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|begin_of_text|>",
    "<start_of_turn>", "<end_of_turn>", "[INST]", "[/INST]", "<<SYS>>", "</s>",
)


def template_for(family: str, variant: str = "") -> str:
    """The Ollama TEMPLATE for a chat-template family, or for a base whose own template varies it (`variant`)."""
    from tools.errors import UsageError

    if family not in TEMPLATES:
        raise UsageError(f"No Ollama template for the chat-template family '{family}'.",
                         f"Use a base model whose family is one of: {', '.join(FAMILIES)}.")
    if variant:
        return VARIANT_TEMPLATES[variant]  # type: ignore[index]
    return TEMPLATES[family]  # type: ignore[index]


def stops_for(family: str, stop_tokens: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The stop tokens to write: the catalog's own when it lists them, else the family's defaults."""
    if stop_tokens:
        return list(dict.fromkeys(stop_tokens))
    return list(DEFAULT_STOPS.get(family, ()))  # type: ignore[call-overload]
