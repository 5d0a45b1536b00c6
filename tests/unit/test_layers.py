"""The layers hold: no import cycle among our modules, tools/ never reaches the chat, no file over 400 lines.

Every module under assistant/, tools/ and mtw/ is parsed with `ast`, imports inside functions included: an import
deferred into a function still ties the two modules together, it only hides the tie from the reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("assistant", "tools", "mtw")
MAX_LINES = 400
# the domain's packages from the bottom up: what a model is, then the examples, then training, then what uses a
# trained run; a package never imports one above it
ABOVE = {"tools.models": ("tools.dataset", "tools.train", "tools.evaluate", "tools.export"),
         "tools.dataset": ("tools.train", "tools.evaluate", "tools.export"),
         "tools.train": ("tools.evaluate", "tools.export")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


SOURCES = _sources()


def _imported(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in its file, resolved to a full dotted name."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from tools.train import sft` imports the module tools.train.sft
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _ours(imported: str) -> str | None:
    """The module of ours an import names (its longest known prefix), or None for a third-party one."""
    parts = imported.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in SOURCES:
            return candidate
        parts.pop()
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in SOURCES.items():
        edges = {_ours(imported) for imported in _imported(name, path)}
        # a package's __init__ is imported on the way to any of its modules: that tie is Python's, not ours
        graph[name] = {e for e in edges if e and e != name and not name.startswith(e + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_parser_sees_the_modules() -> None:
    # guards the checks below against passing on an empty scan
    assert "tools.train.sft" in SOURCES
    assert "assistant.graph" in SOURCES
    assert "tools.train.data" in _graph()["tools.train.sft"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_our_modules() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if n.startswith("tools")))
def test_tools_never_reach_the_chat(name: str) -> None:
    reached = sorted(
        imported
        for imported in _imported(name, SOURCES[name])
        if imported.split(".")[0] in {"assistant", "mtw", "chainlit", "langgraph"}
    )
    assert reached == [], f"{SOURCES[name].relative_to(ROOT)} imports {reached}"


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if n.startswith("tools")))
def test_tools_start_no_process_of_the_chat(name: str) -> None:
    # a command line built as text (`python -c "from assistant… import main"`) reaches the chat all the same
    tree = ast.parse(SOURCES[name].read_text(encoding="utf-8"))
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    started = [t for t in texts if re.search(r"\b(from|import) (assistant|mtw)\b|^(assistant|mtw)\.cli$", t)]
    assert started == [], f"{SOURCES[name].relative_to(ROOT)} runs {started}"


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if ".".join(n.split(".")[:2]) in ABOVE))
def test_a_lower_package_never_imports_a_higher_one(name: str) -> None:
    above = ABOVE[".".join(name.split(".")[:2])]
    reached = sorted(imported for imported in _imported(name, SOURCES[name])
                     if any(imported == a or imported.startswith(a + ".") for a in above))
    assert reached == [], f"{SOURCES[name].relative_to(ROOT)} imports {reached}: move what it needs below it"


def _lines(rel: str) -> int:
    return len((ROOT / rel).read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("rel", sorted(path.relative_to(ROOT).as_posix() for path in SOURCES.values()))
def test_no_file_over_400_lines(rel: str) -> None:
    lines = _lines(rel)
    assert lines <= MAX_LINES, f"{rel} has {lines} lines; split it by concern"
