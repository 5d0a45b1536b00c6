"""Ollama TEMPLATEs (Go-template syntax) and end-of-turn stop tokens for each chat-template family."""

from __future__ import annotations

from typing import Literal

Family = Literal["phi3", "llama3", "chatml", "gemma"]
FAMILIES: tuple[Family, ...] = ("phi3", "llama3", "chatml", "gemma")

# each template has a `.Messages` branch (chat, Ollama >= 0.3) and a `.Prompt` branch (plain generate);
# `$last` marks the final message so an unfinished assistant turn is left open for the model to continue.

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

_LLAMA3 = """\
{{- if .Messages }}
{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|eot_id|>{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- if .Prompt }}<|start_header_id|>user<|end_header_id|>

{{ .Prompt }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

{{ .Response }}<|eot_id|>
{{- end }}"""

_CHATML = """\
{{- if .Messages }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
{{- end }}"""

# gemma has no system turn: the system prompt opens the first user turn, as its own chat template does
_GEMMA = """\
{{- if .Messages }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $.System (eq $i 0) }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
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

TEMPLATES: dict[Family, str] = {"phi3": _PHI3, "llama3": _LLAMA3, "chatml": _CHATML, "gemma": _GEMMA}

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


def template_for(family: str) -> str:
    """The Ollama TEMPLATE for a chat-template family; UsageError naming the families we know."""
    from tools.errors import UsageError

    if family not in TEMPLATES:
        raise UsageError(f"No Ollama template for the chat-template family '{family}'.",
                         f"Use a base model whose family is one of: {', '.join(FAMILIES)}.")
    return TEMPLATES[family]  # type: ignore[index]


def stops_for(family: str, stop_tokens: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The stop tokens to write: the catalog's own when it lists them, else the family's defaults."""
    if stop_tokens:
        return list(dict.fromkeys(stop_tokens))
    return list(DEFAULT_STOPS.get(family, ()))  # type: ignore[call-overload]
