"""Render Ollama TEMPLATEs with Go's own text/template: a few-line Go program, built once per machine into tmp."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

# the data arrives as JSON maps, so `.Role` and `$.Messages` are map lookups, as Ollama's struct fields read;
# `json` is the one helper function Ollama's own templates use
GO_SOURCE = """\
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

func main() {
	var in struct {
		Template string         `json:"template"`
		Data     map[string]any `json:"data"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl := template.Must(template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template))
	if err := tmpl.Execute(os.Stdout, in.Data); err != nil {
		panic(err)
	}
}
"""


def renderer() -> Path:
    """The built renderer; skips the calling test when Go is not installed (`make test` installs it)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (Debian: apt-get install golang-go; `make test` does it)")
    folder = Path(tempfile.gettempdir()) / f"mtw-gotemplate-{hashlib.sha256(GO_SOURCE.encode()).hexdigest()[:12]}"
    binary = folder / "render"
    if not binary.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.go").write_text(GO_SOURCE, encoding="utf-8")
        built = folder / f"render.{os.getpid()}"
        subprocess.run([go, "build", "-o", str(built), "main.go"], cwd=folder, check=True,
                       env={"GOCACHE": str(folder / "cache"), "HOME": str(folder), "PATH": "/usr/bin:/bin",
                            "GO111MODULE": "off"})
        built.replace(binary)
    return binary


def render(template: str, data: dict[str, Any]) -> str:
    """`template` executed by Go's text/template with `data` as `.`."""
    proc = subprocess.run([str(renderer())], input=json.dumps({"template": template, "data": data}),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ollama_values(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What Ollama hands a TEMPLATE for a chat (template.Execute): `.System` joined from the system turns,
    `.Messages` collated (a turn following one of the same role is merged into it, tool results excepted) with
    Go's field names (`.Role`, `.Content`, `.ToolCalls`), and `.Tools`.

    A tool's `.Function` and a call's `.Function.Arguments` stay JSON maps, so `json` writes them with their own
    lower-case keys, as Go's encoder writes Ollama's tagged structs.
    """
    system = "\n\n".join(m.get("content") or "" for m in messages if m["role"] == "system")
    collated: list[dict[str, Any]] = []
    for m in messages:
        if collated and collated[-1]["Role"] == m["role"] and m["role"] != "tool":
            collated[-1]["Content"] += "\n\n" + (m.get("content") or "")
            continue
        turn: dict[str, Any] = {"Role": m["role"], "Content": m.get("content") or ""}
        calls = [c.get("function", c) for c in m.get("tool_calls") or []]
        if calls:
            turn["ToolCalls"] = [{"Function": {"Name": c["name"], "Arguments": _arguments(c.get("arguments"))}}
                                 for c in calls]
        collated.append(turn)
    listed = [{"Type": t.get("type", "function"), "Function": t.get("function", t)} for t in tools or []]
    return {"System": system, "Messages": collated, "Tools": listed, "Prompt": "", "Response": ""}


def _arguments(arguments: Any) -> Any:
    # the API takes arguments as an object; OpenAI-style clients send them as a JSON string
    return json.loads(arguments) if isinstance(arguments, str) else (arguments or {})


def canonical_json(text: str) -> str:
    """`text` with every JSON object or array in it rewritten compact with sorted keys.

    Ollama writes tool JSON with Go's encoder (compact, keys sorted, no indent) where a Hugging Face template
    uses Python's `tojson` (spaced, in the order given, sometimes indented): the same data either way.
    """
    decoder = json.JSONDecoder()
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except ValueError:
                pass
            else:
                out.append(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
                i = end
                continue
        out.append(text[i])
        i += 1
    return "".join(out)
