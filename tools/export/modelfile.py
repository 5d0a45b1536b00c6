"""Modelfiles: render one from a spec, and parse one back the way Ollama reads it (pure)."""

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

_COMMANDS = {"from", "adapter", "license", "template", "system", "parameter", "message"}


def _unquote(s: str) -> tuple[str, bool]:
    if s.startswith(TRIPLE):
        if len(s) >= 6 and s.endswith(TRIPLE):
            return s[3:-3], True
        return "", False
    if s.startswith('"'):
        if len(s) >= 2 and s.endswith('"'):
            return s[1:-1], True
        return "", False
    return s, True


def parse_commands(text: str) -> list[tuple[str, str]]:
    """(command, value) pairs in order; PARAMETER and MESSAGE values keep their name first ('stop <|end|>')."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    line_no = 1
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            line_no += ch == "\n"
            i += 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        m = re.match(r"[A-Za-z]+", text[i:])
        word = m.group(0) if m else ""
        if word.lower() not in _COMMANDS or i + len(word) >= n or text[i + len(word)] not in " \t":
            raise UsageError(f"Modelfile line {line_no}: '{text[i:].splitlines()[0][:40]}' is not a command.",
                             f"Start each line with one of {', '.join(sorted(c.upper() for c in _COMMANDS))}.")
        cmd = word.lower()
        i += len(word) + 1
        head = ""
        if cmd in ("parameter", "message"):
            m = re.match(r"\s*([A-Za-z0-9_]+)[ \t]+", text[i:])
            if not m:
                raise UsageError(f"Modelfile line {line_no}: {cmd.upper()} needs a name and a value.",
                                 f"Write `{cmd.upper()} <name> <value>`.")
            head = m.group(1)
            i += m.end()
        # the value runs until a newline where the text read so far is complete: bare, or a closed quote
        start = i
        while True:
            if i >= n or text[i] in "\r\n":
                value, ok = _unquote(text[start:i].strip(" \t\r\n"))
                if ok or i >= n:
                    break
            i += 1
        if not ok:
            raise UsageError(f"Modelfile line {line_no}: a quoted {cmd.upper()} value is never closed.",
                             'Close it with the same quotes it opened with (" or """).')
        line_no += text[start:i].count("\n")
        if cmd == "message" and head not in MESSAGE_ROLES:
            raise UsageError(f"Modelfile line {line_no}: MESSAGE role '{head}' is not one Ollama knows.",
                             f"Use one of {', '.join(MESSAGE_ROLES)}.")
        out.append((cmd, f"{head} {value}" if head else value))
    return out


def _parse_number(value: str) -> str | int | float:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def parse_modelfile(text: str) -> ModelfileSpec:
    """A ModelfileSpec from Modelfile text (the inverse of render_modelfile for text it wrote)."""
    spec = ModelfileSpec(from_="")
    for cmd, value in parse_commands(text):
        if cmd == "from":
            spec.from_ = value
        elif cmd == "adapter":
            spec.adapter = value
        elif cmd == "template":
            spec.template = value
        elif cmd == "system":
            spec.system = value
        elif cmd == "license":
            spec.license = value
        elif cmd == "parameter":
            key, _, raw = value.partition(" ")
            spec.parameters.append((key, raw if key == "stop" else _parse_number(raw)))
        else:
            role, _, content = value.partition(" ")
            spec.messages.append((role, content))
    if not spec.from_:
        raise UsageError("The Modelfile has no FROM line.", "Add `FROM <base model>` as its first line.")
    return spec
