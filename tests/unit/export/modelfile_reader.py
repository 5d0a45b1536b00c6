"""Reading a Modelfile back into a ModelfileSpec: how the tests check what an export wrote (the inverse of
tools.export.modelfile.render_modelfile for text it wrote)."""

from __future__ import annotations

import re

from tools.errors import UsageError
from tools.export.modelfile import MESSAGE_ROLES, TRIPLE, ModelfileSpec

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
