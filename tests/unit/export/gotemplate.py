"""A small interpreter for the subset of Go's text/template that Ollama TEMPLATEs use, to test them offline.

Supports text with `{{- -}}` trimming, `if / else if / else / end`, `range $i, $x := …`, `$v := …`,
field access (`.Role`, `$.System`, `$v`), literals, parentheses and eq, ne, and, or, not, len, slice.
"""

from __future__ import annotations

import re
from typing import Any

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _lex(src: str) -> list[tuple[str, str]]:
    """('text', s) and ('action', body) tokens with Go's whitespace trimming applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = src[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def _parse(tokens: list[tuple[str, str]], i: int, stop: tuple[str, ...]) -> tuple[list[Any], int, str]:
    """Nodes until an action starting with one of `stop`; returns (nodes, index after it, that action)."""
    nodes: list[Any] = []
    while i < len(tokens):
        kind, body = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", body))
            continue
        word = body.split(" ", 1)[0]
        if word in stop or body in stop:
            return nodes, i, body
        if word == "if":
            branches: list[tuple[str | None, list[Any]]] = []
            cond: str | None = body[3:]
            while True:
                inner, i, ended = _parse(tokens, i, ("else", "end"))
                branches.append((cond, inner))
                if ended == "end":
                    break
                cond = ended[8:] if ended.startswith("else if ") else None
            nodes.append(("if", branches))
        elif word == "range":
            m = re.fullmatch(r"range (\$\w+), (\$\w+) := (.+)", body)
            assert m, f"unsupported range: {body}"
            inner, i, _ = _parse(tokens, i, ("end",))
            nodes.append(("range", m.group(1), m.group(2), m.group(3), inner))
        elif re.match(r"\$\w+ :=", body):
            name, expr = body.split(":=", 1)
            nodes.append(("set", name.strip(), expr.strip()))
        else:
            nodes.append(("out", body))
    return nodes, i, ""


def _split_args(expr: str) -> list[str]:
    args, depth, cur, quoted = [], 0, "", False
    for ch in expr:
        if ch == '"':
            quoted = not quoted
        if not quoted and ch == "(":
            depth += 1
        if not quoted and ch == ")":
            depth -= 1
        if ch == " " and depth == 0 and not quoted:
            if cur:
                args.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        args.append(cur)
    return args


def _truthy(v: Any) -> bool:
    return bool(v) if v is not None else False


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


def _eval(expr: str, dot: Any, scope: dict[str, Any]) -> Any:
    expr = expr.strip()
    args = _split_args(expr)
    if len(args) > 1:
        fn, rest = args[0], [_eval(a, dot, scope) for a in args[1:]]
        if fn == "eq":
            return rest[0] == rest[1]
        if fn == "ne":
            return rest[0] != rest[1]
        if fn == "and":
            return next((r for r in rest if not _truthy(r)), rest[-1])
        if fn == "or":
            return next((r for r in rest if _truthy(r)), rest[-1])
        if fn == "slice":
            return rest[0][rest[1]:]
        if fn == "not":
            return not _truthy(rest[0])
        if fn == "len":
            return len(rest[0])
        raise AssertionError(f"unsupported function: {fn}")
    (one,) = args
    if one.startswith("(") and one.endswith(")"):
        return _eval(one[1:-1], dot, scope)
    if one.startswith('"'):
        return one[1:-1]
    if one.isdigit():
        return int(one)
    if one == ".":
        return dot
    if one.startswith("$."):
        return _field(scope["$"], one[2:])
    if one.startswith("$"):
        return scope[one]
    if one.startswith("."):
        return _field(dot, one[1:])
    raise AssertionError(f"unsupported expression: {one}")


def _run(nodes: list[Any], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "out":
            out.append(str(_eval(node[1], dot, scope)))
        elif kind == "set":
            scope[node[1]] = _eval(node[2], dot, scope)
        elif kind == "if":
            for cond, inner in node[1]:
                if cond is None or _truthy(_eval(cond, dot, scope)):
                    _run(inner, dot, dict(scope), out)
                    break
        elif kind == "range":
            _, iname, vname, expr, inner = node
            for i, item in enumerate(_eval(expr, dot, scope) or []):
                _run(inner, item, {**scope, iname: i, vname: item}, out)


def render(template: str, data: dict[str, Any]) -> str:
    """Render `template` with `data` as `.` (and `$`)."""
    nodes, _, _ = _parse(_lex(template), 0, ())
    out: list[str] = []
    _run(nodes, data, {"$": data}, out)
    return "".join(out)
