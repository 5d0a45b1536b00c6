"""Modelfiles: render one from a spec, the way Ollama reads it (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.errors import UsageError

MESSAGE_ROLES = ("system", "user", "assistant")
# Ollama's Modelfile syntax has no escape character: a value ends at the first newline where the text
# read so far is a complete (quoted) string, so a line of user text ending in `"""` would cut it short.
TRIPLE = '"""'
TRIPLE_STANDIN = "'''"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class ModelfileSpec:
    """Everything a Modelfile says, in the order it is written."""

    from_: str
    """The base: an Ollama tag, or a path (`./model.gguf`, a safetensors folder)."""
    adapter: str | None = None
    """A LoRA adapter applied on top of FROM (path), or None."""
    parameters: list[tuple[str, str | int | float]] = field(default_factory=list)
    """PARAMETER lines in order; a key may repeat (stop)."""
    system: str | None = None
    """The SYSTEM prompt."""
    template: str | None = None
    """The TEMPLATE, in Ollama's Go-template syntax."""
    messages: list[tuple[str, str]] = field(default_factory=list)
    """Few-shot MESSAGE lines as (role, content)."""
    license: str | None = None
    """LICENSE text."""


def clean_text(text: str) -> str:
    """User text made safe for a Modelfile: CRLF → LF, control characters dropped, `\"\"\"` replaced by `'''`."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return text.replace(TRIPLE, TRIPLE_STANDIN)


def quote(text: str) -> str:
    """A value Ollama's parser reads back as `text`: bare when that is unambiguous, else in triple quotes."""
    text = clean_text(text)
    if text and "\n" not in text and text == text.strip() and not text.startswith('"'):
        return text
    return f"{TRIPLE}{text}{TRIPLE}"


def _number(value: str | int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def render_modelfile(spec: ModelfileSpec) -> str:
    """The Modelfile text for `spec`: FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETERs, MESSAGEs, LICENSE."""
    lines = [f"FROM {quote(spec.from_)}"]
    if spec.adapter:
        lines.append(f"ADAPTER {quote(spec.adapter)}")
    if spec.template:
        lines.append(f"TEMPLATE {quote(spec.template)}")
    if spec.system:
        lines.append(f"SYSTEM {quote(spec.system)}")
    for key, value in spec.parameters:
        shown = quote(value) if isinstance(value, str) else _number(value)
        if key == "stop" and isinstance(value, str):
            shown = f'"{value}"' if '"' not in value and "\n" not in value and value == clean_text(value) else shown
        lines.append(f"PARAMETER {key} {shown}")
    for role, content in spec.messages:
        if role not in MESSAGE_ROLES:
            raise UsageError(f"A few-shot message has the role '{role}'.",
                             f"Use one of {', '.join(MESSAGE_ROLES)} for MESSAGE lines.")
        lines.append(f"MESSAGE {role} {quote(content)}")
    if spec.license:
        lines.append(f"LICENSE {quote(spec.license)}")
    return "\n".join(lines) + "\n"


# ---- parsing: the same grammar Ollama uses, so a round trip proves Ollama reads what we wrote ----
