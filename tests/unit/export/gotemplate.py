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
