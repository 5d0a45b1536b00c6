"""The wizard's flow as declared: every route exists, every node is reached, the code goes only where it says, and
the drawing in docs/ is the graph's own."""

from __future__ import annotations

import ast
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph

from assistant import graph
from assistant.conversation import go
from assistant.nodes import ANSWER, ROUTES, TABLE_BACK, TRY_BACK, Node, UndeclaredRoute

ROOT = Path(__file__).resolve().parents[3]
MODULES = ["assistant.conversation",
           *sorted(f"assistant.stages.{p.stem}" for p in (ROOT / "assistant/stages").glob("*.py")
                   if p.stem != "__init__")]
LOOP = {Node.listen, Node.understand}
"""The two nodes of the conversation loop: plain edges in assistant/graph.py, no `@routes`."""
HELD = {"table_back": TABLE_BACK, "try_back": TRY_BACK}
"""State fields that hold a node to go back to, and the nodes the `@routes` reading them declare."""


@dataclass
class Moves:
    """Where one function's code can go: go(...) targets, ask(then=...) handlers, the functions it calls."""

    goes: set[str] = field(default_factory=set)
    asks: set[str] = field(default_factory=set)
    dynamic: bool = False
    """A target read from the state (`Node(state.get(...) or Node.x)`): only the default is visible here."""
    unresolved: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    held: dict[str, set[str]] = field(default_factory=dict)


def _nodes_in(expr: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(expr)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "Node"}


def _assignments(body: ast.AST) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for n in ast.walk(body):
        if isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None:
            for t in n.targets if isinstance(n, ast.Assign) else [n.target]:
                if isinstance(t, ast.Name):
                    found.setdefault(t.id, []).append(n.value)
    return found


def _scan() -> dict[tuple[str, str], Moves]:
    """Every function of the stage modules (and the conversation loop), read from its source."""
    found: dict[tuple[str, str], Moves] = {}
    for module in MODULES:
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        imported: dict[str, tuple[str, str]] = {}  # name -> (module, function) or (module, "") for a module
        for n in ast.walk(tree):  # function-level imports too: their Commands are returned all the same
            if isinstance(n, ast.ImportFrom) and n.module:
                for a in n.names:
                    if n.module in MODULES:
                        imported[a.asname or a.name] = (n.module, a.name)
                    elif f"{n.module}.{a.name}" in MODULES:
                        imported[a.asname or a.name] = (f"{n.module}.{a.name}", "")
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        top = _assignments(ast.Module(body=[n for n in tree.body if isinstance(n, ast.Assign | ast.AnnAssign)],
                                      type_ignores=[]))
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            moves = found.setdefault((module, fn.name), Moves())
            local = _assignments(fn)
            for n in ast.walk(fn):
                if isinstance(n, ast.Dict):
                    for k, v in zip(n.keys, n.values, strict=True):
                        if isinstance(k, ast.Constant) and k.value in HELD:
                            moves.held.setdefault(k.value, set()).update(_nodes_in(v))
                if not isinstance(n, ast.Call):
                    continue
                f = n.func
                if isinstance(f, ast.Name) and f.id == "go" and n.args:
                    exprs = [n.args[0]]
                    exprs += [v for name in ast.walk(n.args[0]) if isinstance(name, ast.Name)
                              for v in local.get(name.id, top.get(name.id, []))]
                    targets = set().union(*map(_nodes_in, exprs))
                    moves.goes |= targets
                    moves.dynamic |= any(isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                                         and c.func.id == "Node" for e in exprs for c in ast.walk(e))
                    if not targets:
                        moves.unresolved.append(ast.unparse(n))
                elif isinstance(f, ast.Name) and f.id == "ask":
                    for k in n.keywords:
                        if k.arg == "then":
                            moves.asks |= _nodes_in(k.value)
                            if not _nodes_in(k.value):
                                moves.unresolved.append(ast.unparse(n))
                elif isinstance(f, ast.Name) and f.id in defined:
                    moves.calls.append((module, f.id))
                elif isinstance(f, ast.Name) and imported.get(f.id, ("", ""))[1]:
                    moves.calls.append(imported[f.id])
                elif (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in imported
                      and not imported[f.value.id][1]):
                    moves.calls.append((imported[f.value.id][0], f.attr))
    return found


def _reach(found: dict[tuple[str, str], Moves], key: tuple[str, str]) -> Moves:
    """A node's moves with those of the functions it calls (their Commands are returned as the node's own)."""
    out, seen, todo = Moves(), set(), [key]
    while todo:
        k = todo.pop()
        if k in seen or k not in found:
            continue
        seen.add(k)
        m = found[k]
        out.goes |= m.goes
        out.asks |= m.asks
        out.dynamic |= m.dynamic
        out.unresolved += m.unresolved
        todo += m.calls
    return out


FOUND = _scan()
NODES = {Node(fn.__name__): (fn.__module__, fn.__name__) for fn in graph.NODES}


def test_the_graph_has_exactly_the_named_nodes_and_each_declares_its_routes() -> None:
    assert set(graph.builder.nodes) == set(Node)
    assert set(ROUTES) == set(Node) - LOOP  # listen and understand move by the edges in graph.py
    for node, destinations in ROUTES.items():
        assert destinations, f"{node} declares nowhere to go"
        assert set(destinations) <= set(Node), node


def test_every_declared_destination_exists_and_understand_reaches_every_handler() -> None:
    drawn = graph.builder.compile().get_graph()  # compiling refuses a destination that is not a node
    edges = {(e.source, e.target) for e in drawn.edges}
    for node, destinations in ROUTES.items():
        for to, label in destinations.items():
            assert (node, to) in edges, f"{node} -> {to} is declared but not drawn"
            if label == ANSWER:
                assert (Node.understand, to) in edges, f"understand cannot send an answer to {to}"


def test_every_node_is_reachable_from_start() -> None:
    drawn = graph.builder.compile().get_graph()
    nxt: dict[str, set[str]] = {}
    for e in drawn.edges:
        nxt.setdefault(e.source, set()).add(e.target)
    seen, todo = {START}, deque([START])
    while todo:
        for to in nxt.get(todo.popleft(), set()) - seen:
            seen.add(to)
            todo.append(to)
    assert set(Node) - seen == set()


@pytest.mark.parametrize("node", sorted(set(Node) - LOOP))
def test_every_move_in_a_nodes_code_is_declared_beside_it(node: Node) -> None:
    moves = _reach(FOUND, NODES[node])
    declared = ROUTES[node]
    goes = {str(to) for to, label in declared.items() if label != ANSWER}
    asks = {str(to) for to, label in declared.items() if label == ANSWER}
    assert moves.unresolved == [], "a target the code names without Node.x cannot be checked"
    assert moves.goes - goes == set(), f"{node} goes there without declaring it in @routes"
    assert moves.asks - asks == set(), f"{node} asks questions answered there without `asks=` in @routes"
    if not moves.dynamic:  # a target read from the state is checked against HELD below
        assert goes - moves.goes - {Node.listen} == set(), f"{node} declares routes its code never takes"
        assert asks == moves.asks


def test_nodes_kept_in_the_state_to_go_back_to_are_the_declared_ones() -> None:
    held: dict[str, set[str]] = {}
    for moves in FOUND.values():
        for key, nodes in moves.held.items():
            held.setdefault(key, set()).update(nodes)
    for key, declared in HELD.items():
        assert held[key] <= set(declared), f"{key} is set to a node the @routes reading it do not declare"


class _Tiny(TypedDict, total=False):
    seen: str


def _wrong_turn(monkeypatch: pytest.MonkeyPatch, strict: bool) -> dict[str, Any]:
    """A graph whose `note_stale` (declared: back to listen) goes to choose_data instead."""
    if strict:
        monkeypatch.setenv("MTW_STRICT_ROUTES", "1")
    else:
        monkeypatch.delenv("MTW_STRICT_ROUTES", raising=False)
    tiny = StateGraph(_Tiny)
    tiny.add_node(Node.note_stale.value, lambda state: go(Node.choose_data))
    tiny.add_node(Node.choose_data.value, lambda state: {"seen": "choose_data"})
    tiny.add_edge(START, Node.note_stale.value)
    return tiny.compile().invoke({})


def test_a_move_a_node_did_not_declare_stops_the_run_in_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UndeclaredRoute, match="note_stale went to choose_data"):
        _wrong_turn(monkeypatch, strict=True)


def test_a_move_a_node_did_not_declare_is_logged_and_taken_for_users(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mtw.graph"):
        assert _wrong_turn(monkeypatch, strict=False) == {"seen": "choose_data"}
    assert "does not declare" in caplog.text


def test_the_drawing_in_docs_is_the_graph_as_it_is() -> None:
    committed = (ROOT / "docs" / "wizard-graph.md").read_text(encoding="utf-8")
    assert committed == graph.drawing(), (
        "docs/wizard-graph.md is out of date: run `.venv/bin/python -m assistant.graph > docs/wizard-graph.md`")
