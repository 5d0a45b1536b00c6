"""A file's raw records, streamed: its text decoded line by line, its container told apart, its columns named."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tools.dataset.jsonrecords import (
    WRAPPER,
    json_array_records,
    json_document_records,
    jsonl_records,
    parse_json_line,
    peek_rest,
    whole_line_json,
)
from tools.dataset.mapping import TAGS
from tools.dataset.notes import FileNotes, Record
from tools.dataset.sniff import binary_kind
from tools.dataset.tabular import conll_records, csv_records, looks_conll, looks_tabular, plain_text
from tools.errors import UsageError


def _open_text(path: Path, notes: FileNotes) -> IO[str] | None:
    """Open UTF-16 files as text; None means the file is UTF-8-ish and is decoded line by line."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        notes.encoding = "utf-16"
    elif len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        notes.encoding = "utf-16-le"
    elif len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        notes.encoding = "utf-16-be"
    else:
        return None
    return open(path, encoding=notes.encoding, errors="replace", newline="")


def _text_lines(path: Path, notes: FileNotes) -> Iterator[str]:
    """The file's lines as text (line ending kept), decoding each line on its own so memory stays flat."""
    text = _open_text(path, notes)
    if text is not None:
        with text:
            first = True
            for line in text:
                if first and line.startswith("\ufeff"):
                    line = line[1:]
                first = False
                yield line
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                notes.bom = True
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                notes.bad_bytes.append(n)
                yield raw.decode("cp1252", errors="replace")


def _records(path: Path, notes: FileNotes, column_map: dict[str, str] | None) -> Iterator[Record]:
    container = None
    binary = binary_kind(path)
    if binary is not None:
        notes.kind, notes.what = "binary", binary
        return
    lines = _text_lines(path, notes)
    n = 1
    first = ""
    for text in lines:
        if text.strip():
            first = text
            break
        notes.blank_lines.append(n)
        n += 1
    if not first:
        return
    notes.blank_lines.clear()  # blank lines before the first record are harmless
    suffix = path.suffix.lower()
    head = first.lstrip()
    is_json = head.startswith(("{", "["))
    if not is_json and container is None and looks_conll(first):
        yield from conll_records(lines, first, n, notes)
    elif container in ("csv", "tsv") or (container is None and suffix in (".csv", ".tsv") and not is_json):
        delim = "\t" if (container == "tsv" or suffix == ".tsv" or "\t" in first) else ","
        yield from csv_records(lines, first, n, delim, notes, column_map)
    elif not is_json and suffix in (".txt", ".md", ".text", ""):
        if looks_tabular(first):
            yield from csv_records(lines, first, n, "\t" if "\t" in first else ",", notes, column_map)
        else:
            yield from plain_text(lines, first, notes)
    elif head.startswith("[") and not whole_line_json(first):
        yield from json_array_records(lines, first, n, notes)
    elif head.startswith("["):
        # a one-line array: the whole file, or the first record of a JSONL file that is a list by mistake
        rest = peek_rest(lines)
        if rest is None:
            yield from json_array_records(iter(()), first, n, notes, numbered=True)
        else:
            yield parse_json_line(first.strip(), n, notes)
            yield from jsonl_records(rest, n + 1, notes)
    elif head.startswith("{") and not whole_line_json(first):
        yield from json_document_records(lines, first, n, path.stat().st_size, notes)
    else:
        wrapper = WRAPPER.match(first)
        if wrapper:
            rest = peek_rest(lines)
            if rest is None:
                # {"data": [...]} on one line: its records, numbered
                yield from json_array_records(iter(()), first[wrapper.end() - 1:], n, notes, numbered=True)
                return
            lines = rest
        if first.endswith("\r\n"):
            notes.crlf = True
        yield parse_json_line(first.strip(), n, notes)
        yield from jsonl_records(lines, n + 1, notes)


def iter_records(path: str | Path, *, notes: FileNotes | None = None,
                 column_map: dict[str, str] | None = None, raw_names: bool = False) -> Iterator[Record]:
    """Stream the raw records of a JSONL / JSON-array / CSV / TSV file, one at a time.

    Records that cannot be parsed come back as a `Record` with `.issue` set; the reader never raises
    on bad content. File-level notes (encoding, BOM, blank lines) are collected in `notes`.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"No dataset file at {path}.", "Check the path; give a .jsonl, .json, .csv or .tsv file.")
    column_map = column_map or {}
    notes = notes if notes is not None else FileNotes()
    for rec in _records(path, notes, None if raw_names else column_map):
        # csv headers are mapped where they are read; JSON records here
        if column_map and isinstance(rec.value, dict) and notes.container not in ("csv", "tsv"):
            rec.value = apply_column_map(rec.value, column_map)
        yield rec


def apply_column_map(value: dict[str, Any], column_map: dict[str, str]) -> dict[str, Any]:
    """A record with its columns renamed to the fields they hold (`{"text": "SMS"}` reads "SMS" as "text").

    Turn tags in the map (`role_tag`, `user_tag`, ...: LLaMA-Factory's names for a conversation's keys and roles)
    rewrite each turn of the conversation in ShareGPT's own spelling, which the ShareGPT reader then reads.
    """
    out = dict(value)
    for fld, col in column_map.items():
        if fld not in TAGS and col in out and col != fld:
            out[fld] = out.pop(col)
    tags = {k: v for k, v in column_map.items() if k in TAGS}
    if tags:
        if "conversations" not in out and isinstance(out.get("messages"), list):
            out["conversations"] = out.pop("messages")
        for fld in ("conversations", "chosen", "rejected"):
            if fld in out:
                out[fld] = _retag(out[fld], tags)
    return out


# the ShareGPT role each tag names, spelled as the ShareGPT reader knows it
_TAG_ROLES = {"user_tag": "human", "assistant_tag": "gpt", "observation_tag": "observation",
              "function_tag": "function_call", "system_tag": "system"}


def _retag(turns: Any, tags: dict[str, str]) -> Any:
    """Turns written with other keys and role names, as ShareGPT's `from` / `value` and human / gpt / ... ."""
    if isinstance(turns, dict):
        return _retag([turns], tags)[0]
    if not isinstance(turns, list):
        return turns  # not a conversation: the reader says what is wrong with it
    role_key, text_key = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    roles = {tags[k]: role for k, role in _TAG_ROLES.items() if k in tags}
    out: list[Any] = []
    for turn in turns:
        if not isinstance(turn, dict):
            out.append(turn)
            continue
        new = {k: v for k, v in turn.items() if k not in (role_key, text_key)}
        if role_key in turn:
            role = turn[role_key]
            new["from"] = roles.get(role, role) if isinstance(role, str) else role
        if text_key in turn:
            new["value"] = turn[text_key]
        out.append(new)
    return out

