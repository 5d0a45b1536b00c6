"""JSON containers streamed as raw records: JSONL, a top-level array, a {"data": [...]} wrapper, one document."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from tools.dataset.model import Issue
from tools.dataset.notes import FileNotes, Record

_CHUNK = 1 << 18
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# {"data": [...]}: the record list under one of the names exporters use
WRAPPER = re.compile(r'^\s*\{\s*"(data|examples|train|rows|records|instances|items|dataset)"\s*:\s*\[')
_WHOLE_JSON_LIMIT = 64 << 20


def _too_deep(line: int) -> Issue:
    return Issue(code="invalid_json", severity="error", line=line,
                 message=f"Line {line} is nested too deeply to read (lists inside lists, thousands of levels).",
                 fix="Check how the file was produced; a training record needs only a few levels.")


def parse_json_line(text: str, line: int, notes: FileNotes) -> Record:
    try:
        return Record(line, json.loads(text))
    except RecursionError:
        return Record(line, issue=_too_deep(line))
    except json.JSONDecodeError as exc:
        repaired = _TRAILING_COMMA.sub(r"\1", text)
        if repaired != text:
            try:
                value = json.loads(repaired)
            except json.JSONDecodeError:
                pass
            else:
                notes.trailing_commas.append(line)
                return Record(line, value)
        return Record(line, issue=_invalid_json(exc, line))


def _invalid_json(exc: json.JSONDecodeError, line: int) -> Issue:
    snippet = exc.doc[max(0, exc.pos - 20): exc.pos + 20].strip().replace("\n", " ")
    hint = "Check for a missing quote, comma or bracket near that spot"
    if exc.pos >= len(exc.doc.rstrip()) - 1:
        hint = "The record looks cut off: check that it is complete and on one line"
    return Issue(code="invalid_json", severity="error", line=line,
                 message=f"Line {line} is not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno} "
                         f"(near `{snippet}`).",
                 fix=f"{hint}; each line must be one complete JSON object. --fix drops lines that cannot be read.")


def jsonl_records(lines: Iterator[str], first_line: int, notes: FileNotes) -> Iterator[Record]:
    for n, text in enumerate(lines, start=first_line):
        if text.endswith("\r\n"):
            notes.crlf = True
        stripped = text.strip()
        if not stripped:
            notes.blank_lines.append(n)
            continue
        yield parse_json_line(stripped, n, notes)


def json_array_records(lines: Iterator[str], first: str, first_line: int, notes: FileNotes,
                        numbered: bool = False) -> Iterator[Record]:
    """Stream the elements of a top-level JSON array without loading the whole file.

    `numbered`: the array sits on one line, so records are named by their number instead of the line.
    """
    notes.container = "json"
    if numbered:
        notes.numbering = "record"
    count = 0
    decoder = json.JSONDecoder()
    buf = first[first.index("[") + 1:]
    line = first_line + first[: first.index("[")].count("\n")
    eof = False

    def more() -> bool:
        nonlocal buf, eof
        chunk: list[str] = []
        size = 0
        for text in lines:
            chunk.append(text)
            size += len(text)
            if size >= _CHUNK:
                break
        if not chunk:
            eof = True
            return False
        if any(t.endswith("\r\n") for t in chunk):
            notes.crlf = True
        buf += "".join(chunk)
        return True

    pos = 0
    while True:
        # skip whitespace and the commas between elements
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buf) or not more():
                break
        if pos >= len(buf):
            yield Record(line, issue=Issue(code="invalid_json", severity="error", line=line,
                                           message="The JSON array is not closed: the file ends before the final `]`.",
                                           fix="Add the missing `]` at the end, or check the file was copied whole."))
            return
        if buf[pos] == "]":
            return
        try:
            value, end = decoder.raw_decode(buf, pos)
        except RecursionError:
            yield Record(line, issue=_too_deep(line))
            return
        except json.JSONDecodeError as exc:
            if not eof and more():
                continue
            bad_line = line + buf[pos:exc.pos].count("\n")
            yield Record(bad_line, issue=Issue(
                code="invalid_json", severity="error", line=bad_line,
                message=f"The JSON array breaks at line {bad_line}: {exc.msg}; the records after it could not be "
                        "read.",
                fix="Fix the JSON near that line (a missing comma or quote), or convert the file to JSONL, one "
                    "record per line."))
            return
        count += 1
        yield Record(count if numbered else line, value)
        line += buf.count("\n", pos, end)
        pos = end
        if pos > _CHUNK // 2:
            # drop what was consumed so a huge array never sits in memory
            buf = buf[pos:]
            pos = 0


def json_document_records(lines: Iterator[str], first: str, first_line: int, size: int,
                           notes: FileNotes) -> Iterator[Record]:
    """A file that starts with `{` but whose first line is not a whole object: a wrapper, or one pretty JSON."""
    head = [first]
    total = len(first)
    for text in lines:
        head.append(text)
        total += len(text)
        if total >= 65536:
            break
    buf = "".join(head)
    wrapper = WRAPPER.match(buf)
    if wrapper:
        # {"data": [...]}: stream the list from its "[" on
        start = wrapper.end() - 1
        yield from json_array_records(lines, buf[start:], first_line + buf[:start].count("\n"), notes)
        return
    if size <= _WHOLE_JSON_LIMIT:
        whole = buf + "".join(lines)
        try:
            value = json.loads(whole)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            notes.container = "json"
            yield Record(first_line, value)
            return
        yield from jsonl_records(iter(whole.splitlines(keepends=True)), first_line, notes)
        return
    yield from jsonl_records(chain_all(head, lines), first_line, notes)


def whole_line_json(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def peek_rest(lines: Iterator[str]) -> Iterator[str] | None:
    """The remaining lines, or None when only blank lines are left."""
    held: list[str] = []
    for text in lines:
        held.append(text)
        if text.strip():
            return chain_all(held, lines)
    return None


def chain_all(held: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from held
    yield from rest

