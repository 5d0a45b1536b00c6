"""Read every dataset format users bring into canonical rows, streaming, without ever crashing."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tools.dataset.formats import MediaPart, bio_from_spans, detect_format, to_example
from tools.dataset.formats import issue as _issue
from tools.dataset.mapping import TAGS
from tools.dataset.model import Example, Issue
from tools.errors import UsageError
from tools.fileio import atomic_writer

FORMATS = ("messages", "alpaca", "dolly", "sharegpt", "prompt_completion", "classification", "ner", "dpo", "kto")
"""Record formats `--format` accepts and the reader detects."""
NOT_DATASETS = ("plain_text", "dataset_registry", "binary")
"""What a file can be instead of a dataset; the report names it and says what to do."""
PREFERENCE_FORMATS = ("dpo", "kto")
"""Preference data (judgements): read and checked like any dataset, trained with `mtw train --method dpo|kto`."""
MAX_EXAMPLE_CHARS = 1_000_000
"""A single example longer than this is reported as too long and not scanned in full."""

# csv headers people use, mapped onto the JSON keys the record formats read (after any --map)
_CSV_ALIASES = {
    "prompt": "prompt", "question": "prompt", "query": "prompt", "user": "prompt", "request": "prompt",
    "completion": "completion", "response": "completion", "answer": "completion", "assistant": "completion",
    "reply": "completion", "instruction": "instruction", "input": "input", "output": "output",
    "system": "system", "text": "text", "sentence": "text", "label": "label", "category": "label",
    "class": "label", "intent": "label", "tokens": "tokens", "tags": "tags", "ner_tags": "tags",
    "context": "context",
}
_DETECT_SAMPLE = 50
_CHUNK = 1 << 18
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# {"data": [...]}: the record list under one of the names exporters use
_WRAPPER = re.compile(r'^\s*\{\s*"(data|examples|train|rows|records|instances|items|dataset)"\s*:\s*\[')
_WHOLE_JSON_LIMIT = 64 << 20
_CONLL_TAG = re.compile(r"^(?:O|[BIESLU]-\S+)$")
_MAGIC = ((b"\x1f\x8b", "gzip-compressed"), (b"PK\x03\x04", "a zip archive (or an Excel / Word file)"),
          (b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"PAR1", "a Parquet file"), (b"SQLite format 3", "an SQLite database"))


@dataclass
class Record:
    """One raw record from a file: a parsed JSON value / CSV row, or the issue that stopped it."""

    line: int
    value: Any = None
    issue: Issue | None = None


@dataclass
class ReadResult:
    """What reading a file produced: the detected format, the rows, and every issue on the way."""

    format: str
    examples: list[Example] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    container: str = "jsonl"
    encoding: str = "utf-8"
    records: int = 0
    """Records seen in the file, including the ones that could not be read."""


@dataclass
class FileNotes:
    """File-level observations gathered while streaming, turned into a few issues at the end."""

    container: str = "jsonl"
    encoding: str = "utf-8"
    bom: bool = False
    crlf: bool = False
    blank_lines: list[int] = field(default_factory=list)
    bad_bytes: list[int] = field(default_factory=list)
    trailing_commas: list[int] = field(default_factory=list)
    records: int = 0
    """Records seen, readable or not."""
    kind: str | None = None
    """Set when the file is not a dataset at all: plain_text, binary."""
    what: str = ""
    """Plain words for `kind` (which binary format, how much text)."""
    numbering: str = "line"
    """"record" when records share one line (a one-line JSON array): issues then name record numbers."""
    media: list[int] = field(default_factory=list)
    """Lines of examples skipped because they hold images, audio or video."""

    def issues(self) -> list[Issue]:
        out: list[Issue] = []
        if self.kind == "binary":
            out.append(Issue(code="encoding", severity="error", line=None,
                             message=f"This is not a text file: it looks like {self.what}.",
                             fix="Give a dataset saved as text: JSONL (one JSON object per line), JSON, CSV or TSV; "
                                 "unpack or export it first."))
        if self.kind == "plain_text":
            out.append(Issue(code="plain_text", severity="error", line=None,
                             message=f"This is plain text ({self.what}), the kind used for pre-training, not "
                                     "examples of requests and answers; fine-tuning needs examples.",
                             fix="Turn it into examples: ask the wizard to draft questions and answers from it, or "
                                 "write JSONL like {\"messages\": [{\"role\": \"user\", ...}, {\"role\": "
                                 "\"assistant\", ...}]}."))
        if self.media:
            out.append(Issue(code="media_skipped", severity="warning", line=self.media[0],
                             message=f"{_count(len(self.media), 'example')} (first: line {self.media[0]}) hold "
                                     "images, audio or video; this tool trains on text only, so they were skipped.",
                             fix="Remove the media parts (or those examples) to train on the rest; --fix leaves "
                                 "them out."))
        if self.encoding.startswith("utf-16"):
            out.append(Issue(code="encoding", severity="warning", line=None,
                             message=f"The file is encoded as {self.encoding.upper()}, not UTF-8; it was decoded "
                                     "and read.",
                             fix="Save it as UTF-8 (most editors: 'Save with encoding' → UTF-8); --fix writes UTF-8."))
        if self.bom:
            out.append(Issue(code="encoding", severity="info", line=1,
                             message="The file starts with a UTF-8 byte-order mark (BOM); it was skipped.",
                             fix="Nothing needed; --fix writes the file without it."))
        if self.bad_bytes:
            out.append(Issue(code="encoding", severity="warning", line=self.bad_bytes[0],
                             message=f"{_count(len(self.bad_bytes), 'line')} (first: line {self.bad_bytes[0]}) "
                                     "are not valid UTF-8; they were read as Windows-1252 and may show odd "
                                     "characters.",
                             fix="Re-save the file as UTF-8 and check the accented characters on those lines."))
        if self.crlf:
            out.append(Issue(code="line_endings", severity="info", line=None,
                             message="The file uses Windows line endings (CRLF); they were read fine.",
                             fix="Nothing needed; --fix writes Unix line endings."))
        if self.blank_lines:
            first = self.blank_lines[0]
            out.append(Issue(code="blank_line", severity="info", line=first,
                             message=f"{_count(len(self.blank_lines), 'blank line')} between records "
                                     f"(first: line {first}); they were skipped.",
                             fix="Nothing needed; --fix drops them."))
        if self.trailing_commas:
            first = self.trailing_commas[0]
            out.append(Issue(code="invalid_json", severity="warning", line=first,
                             message=f"{_count(len(self.trailing_commas), 'record')} with a trailing comma before "
                                     f"}} or ] (first: line {first}), which JSON does not allow; read anyway.",
                             fix="Remove the comma before the closing } or ]; --fix writes valid JSON."))
        return out


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


# ---------------------------------------------------------------- raw records (streaming)


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


def _too_deep(line: int) -> Issue:
    return Issue(code="invalid_json", severity="error", line=line,
                 message=f"Line {line} is nested too deeply to read (lists inside lists, thousands of levels).",
                 fix="Check how the file was produced; a training record needs only a few levels.")


def _parse_json_line(text: str, line: int, notes: FileNotes) -> Record:
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


def _jsonl_records(lines: Iterator[str], first_line: int, notes: FileNotes) -> Iterator[Record]:
    for n, text in enumerate(lines, start=first_line):
        if text.endswith("\r\n"):
            notes.crlf = True
        stripped = text.strip()
        if not stripped:
            notes.blank_lines.append(n)
            continue
        yield _parse_json_line(stripped, n, notes)


def _json_array_records(lines: Iterator[str], first: str, first_line: int, notes: FileNotes,
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


def _csv_header(row: list[str], column_map: dict[str, str] | None) -> list[str]:
    """Column names as record keys: --map first (FIELD=COLUMN, any case), then the usual header names.

    None keeps the names exactly as written (to show them to the user).
    """
    names = [h.strip().lstrip("\ufeff") for h in row]
    if column_map is None:
        return names
    by_column = {col.strip().lower(): fld for fld, col in column_map.items() if fld not in TAGS}
    aliases = dict(_CSV_ALIASES)
    if any(n.lower() == "instruction" for n in names):
        # instruction / context / response is Dolly: keep "response" for the alpaca reader
        aliases["response"] = "response"
    return [by_column.get(n.lower()) or (aliases.get(n.lower(), n) if n else "") for n in names]


def _csv_records(lines: Iterator[str], first: str, first_line: int, delimiter: str,
                 notes: FileNotes, column_map: dict[str, str] | None) -> Iterator[Record]:
    notes.container = "tsv" if delimiter == "\t" else "csv"
    csv.field_size_limit(4 * MAX_EXAMPLE_CHARS)

    def source() -> Iterator[str]:
        for text in _chain(first, lines):
            if text.endswith("\r\n"):
                notes.crlf = True
            yield text

    reader = csv.reader(source(), delimiter=delimiter)
    header: list[str] | None = None
    while True:
        start = first_line + reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(start, issue=_issue("invalid_json", start, f"Line {start} is not a valid CSV row: {exc}.",
                                             "Check the quotes on that line: a cell with a quote inside must double "
                                             "it (\"\")."))
            return
        if not any(cell.strip() for cell in row):
            if header is not None:
                notes.blank_lines.append(start)
            continue
        if header is None:
            header = _csv_header(row, column_map)
            unnamed = [i for i, h in enumerate(header) if not h]
            continue
        if len(row) != len(header):
            yield Record(start, issue=_issue(
                "missing_field", start, f"Line {start} has {len(row)} columns but the header has {len(header)}.",
                "Quote cells that contain the separator (\"like, this\") or fill the missing columns."))
            continue
        spilled = [row[i] for i in unnamed if row[i].strip()]
        if spilled:
            yield Record(start, issue=_issue(
                "extra_columns", start, f"Line {start} has text in {_count(len(spilled), 'column')} without a name "
                                        f"(`{spilled[0][:40]}`); it would be cut off, so the row was not read.",
                "Quote the cell that contains the separator (\"like, this\") so it stays in one column; --fix drops "
                "the row.", "warning"))
            continue
        yield Record(start, {h: v for h, v in zip(header, row, strict=True) if h})


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _binary_kind(path: Path) -> str | None:
    """What a binary file is ("gzip-compressed" …), or None for text; UTF-16 text is not binary."""
    with open(path, "rb") as f:
        head = f.read(8192)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if b"\x00" in head and not _utf16(head):
        return "binary data (it contains NUL bytes)"
    return None


def _utf16(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return len(head) >= 4 and ((head[1] == 0 and head[3] == 0 and head[0] != 0)
                               or (head[0] == 0 and head[2] == 0 and head[1] != 0))


def _looks_conll(first: str) -> bool:
    """One token per line with its tag last (`EU NNP B-NP B-ORG`), or CoNLL's -DOCSTART- line."""
    if first.startswith("-DOCSTART-"):
        return True
    cells = first.split()
    return 2 <= len(cells) <= 10 and "," not in first and bool(_CONLL_TAG.match(cells[-1]))


def _looks_tabular(first: str) -> bool:
    """A header row: two or more short column names split by tabs or commas."""
    delim = "\t" if "\t" in first else ","
    cells = next(csv.reader([first], delimiter=delim), [])
    return len(cells) >= 2 and all(len(c) <= 40 and len(c.split()) <= 4 for c in cells)


def _conll_records(lines: Iterator[str], first: str, first_line: int, notes: FileNotes) -> Iterator[Record]:
    """Sentences of a CoNLL file (token ... tag per line, blank line between), streamed; -DOCSTART- skipped."""
    notes.container = "conll"
    tokens: list[str] = []
    tags: list[str] = []
    start = first_line
    for n, text in enumerate(_chain(first, lines), start=first_line):
        cells = text.split()
        if not cells or cells[0] == "-DOCSTART-":
            if tokens:
                yield Record(start, {"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        if len(cells) < 2:
            yield Record(n, issue=_issue("tag_mismatch", n, f"Line {n} has the token \"{cells[0][:40]}\" but no tag.",
                                         "Give every token its tag in the last column (O outside entities)."))
            continue
        if not tokens:
            start = n
        tokens.append(cells[0])
        tags.append(cells[-1])
    if tokens:
        yield Record(start, {"tokens": tokens, "tags": tags})


def _plain_text(lines: Iterator[str], first: str, notes: FileNotes) -> Iterator[Record]:
    notes.kind = "plain_text"
    n_lines = words = 0
    for text in _chain(first, lines):
        n_lines += 1
        words += len(text.split())
    notes.what = f"{_count(n_lines, 'line')}, {_count(words, 'word')}"
    return iter(())


def _json_document_records(lines: Iterator[str], first: str, first_line: int, size: int,
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
    wrapper = _WRAPPER.match(buf)
    if wrapper:
        # {"data": [...]}: stream the list from its "[" on
        start = wrapper.end() - 1
        yield from _json_array_records(lines, buf[start:], first_line + buf[:start].count("\n"), notes)
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
        yield from _jsonl_records(iter(whole.splitlines(keepends=True)), first_line, notes)
        return
    yield from _jsonl_records(_chain_all(head, lines), first_line, notes)


def _records(path: Path, notes: FileNotes, column_map: dict[str, str] | None) -> Iterator[Record]:
    container = None
    binary = _binary_kind(path)
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
    if not is_json and container is None and _looks_conll(first):
        yield from _conll_records(lines, first, n, notes)
    elif container in ("csv", "tsv") or (container is None and suffix in (".csv", ".tsv") and not is_json):
        delim = "\t" if (container == "tsv" or suffix == ".tsv" or "\t" in first) else ","
        yield from _csv_records(lines, first, n, delim, notes, column_map)
    elif not is_json and suffix in (".txt", ".md", ".text", ""):
        if _looks_tabular(first):
            yield from _csv_records(lines, first, n, "\t" if "\t" in first else ",", notes, column_map)
        else:
            yield from _plain_text(lines, first, notes)
    elif head.startswith("[") and not _whole_line_json(first):
        yield from _json_array_records(lines, first, n, notes)
    elif head.startswith("["):
        # a one-line array: the whole file, or the first record of a JSONL file that is a list by mistake
        rest = _peek_rest(lines)
        if rest is None:
            yield from _json_array_records(iter(()), first, n, notes, numbered=True)
        else:
            yield _parse_json_line(first.strip(), n, notes)
            yield from _jsonl_records(rest, n + 1, notes)
    elif head.startswith("{") and not _whole_line_json(first):
        yield from _json_document_records(lines, first, n, path.stat().st_size, notes)
    else:
        wrapper = _WRAPPER.match(first)
        if wrapper:
            rest = _peek_rest(lines)
            if rest is None:
                # {"data": [...]} on one line: its records, numbered
                yield from _json_array_records(iter(()), first[wrapper.end() - 1:], n, notes, numbered=True)
                return
            lines = rest
        if first.endswith("\r\n"):
            notes.crlf = True
        yield _parse_json_line(first.strip(), n, notes)
        yield from _jsonl_records(lines, n + 1, notes)


def _whole_line_json(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _peek_rest(lines: Iterator[str]) -> Iterator[str] | None:
    """The remaining lines, or None when only blank lines are left."""
    held: list[str] = []
    for text in lines:
        held.append(text)
        if text.strip():
            return _chain_all(held, lines)
    return None


def _chain_all(held: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from held
    yield from rest


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


# ---------------------------------------------------------------- the reader


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"Unknown format '{fmt}'.", f"Use one of: {', '.join(FORMATS)} (or leave it out to detect).")


def _unknown_format(sample: list[Record]) -> Issue:
    keys = sorted({str(k) for r in sample if isinstance(r.value, dict) for k in r.value})
    return Issue(code="unknown_format", severity="error", line=sample[0].line if sample else None,
                 message="Could not tell the format of this file: no record has the fields of a known format "
                         f"(fields seen: {', '.join(keys[:12]) or 'none'}).",
                 fix="Use one of: {\"messages\": [{\"role\", \"content\"}]}, "
                     "{\"instruction\", \"input\", \"output\"}, {\"conversations\": [{\"from\", \"value\"}]}, "
                     "{\"prompt\", \"completion\"}, {\"text\", \"label\"}, {\"tokens\", \"tags\"}; "
                     "for CSV name the columns prompt,completion or text,label — or pass "
                     "--format.")


def _registry_issue(value: dict[str, Any], line: int) -> Issue:
    names = list(value)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    first = value[names[0]]
    file = first.get("file_name", "FILE") if isinstance(first, dict) else "FILE"
    return _issue("dataset_registry", line,
                  "This is a dataset registry (LLaMA-Factory's dataset_info.json) listing "
                  f"{_count(len(names), 'dataset')} ({shown}), not a dataset itself.",
                  f"Check one of the datasets it lists, with its column names: mtw check {shlex.quote(str(file))} "
                  f"--dataset-info dataset_info.json --dataset {shlex.quote(str(names[0]))}")


def _missing_columns(sample: list[Record], column_map: dict[str, str]) -> list[Issue]:
    """--map names a column that no record has: say which columns there are."""
    values = [r.value for r in sample if isinstance(r.value, dict)]
    if not values or not column_map:
        return []
    seen = {str(k) for v in values for k in v}
    out = []
    for fld, col in column_map.items():
        if fld not in seen and fld not in TAGS:
            out.append(_issue("missing_field", None, f"--map {fld}={col}: there is no column \"{col}\" "
                                                     f"(columns: {', '.join(sorted(seen)[:12])}).",
                              "Spell the column exactly as in the file's header or keys."))
    return out


def iter_examples(path: str | Path, format: str | None = None, *,
                  issues: list[Issue] | None = None, notes: FileNotes | None = None,
                  detected: list[str] | None = None, column_map: dict[str, str] | None = None) -> Iterator[Example]:
    """Stream canonical rows from a file; every problem is appended to `issues`, nothing raises.

    The format is detected from the first records (or forced with `format`); its name is appended to
    `detected` as soon as it is known. `column_map` (FIELD -> COLUMN) names the columns first.
    """
    _check_format(format)
    issues = issues if issues is not None else []
    notes = notes if notes is not None else FileNotes()
    records = iter_records(path, notes=notes, column_map=column_map)
    sample: list[Record] = []
    for rec in records:
        sample.append(rec)
        if len(sample) >= _DETECT_SAMPLE:
            break
    issues += _missing_columns(sample, column_map or {})
    fmt = format
    if fmt is None:
        votes: dict[str, int] = {}
        for rec in sample:
            found = detect_format(rec.value)
            if found:
                votes[found] = votes.get(found, 0) + 1
        if not votes:
            if any(r.issue is None for r in sample):
                issues.append(_unknown_format(sample))
            issues.extend(r.issue for r in sample if r.issue)
            notes.records += len(sample)
            for rec in records:  # count the rest so the report says how many records there were
                notes.records += 1
                if rec.issue:
                    issues.append(rec.issue)
            if detected is not None:
                detected.append(notes.kind or ("unknown" if sample else "empty"))
            return
        fmt = max(votes, key=lambda k: votes[k])
    if detected is not None:
        detected.append(fmt)
    if fmt == "dataset_registry":
        registry = next(r for r in sample if detect_format(r.value) == fmt)
        notes.records += len(sample)
        issues.append(_registry_issue(registry.value, registry.line))
        return

    def all_records() -> Iterator[Record]:
        yield from sample
        yield from records

    for rec in all_records():
        notes.records += 1
        if rec.issue is not None:
            issues.append(rec.issue)
            continue
        try:
            ex = to_example(rec.value, fmt, rec.line, issues)
        except MediaPart:
            notes.media.append(rec.line)
            continue
        if ex is not None:
            yield ex


def renumber(issues: list[Issue], notes: FileNotes) -> list[Issue]:
    """Issues that say "Line N" say "Record N" when the records share one line (a one-line JSON array)."""
    if notes.numbering != "record":
        return issues
    return [i.model_copy(update={"message": re.sub(r"\b[Ll]ine (\d)", r"Record \1", i.message)}) for i in issues]


def read_dataset(path: str | Path, format: str | None = None, *,
                 column_map: dict[str, str] | None = None) -> ReadResult:
    """Read a whole dataset file into canonical rows, with the detected format and every issue found."""
    issues: list[Issue] = []
    notes = FileNotes()
    detected: list[str] = []
    examples = list(iter_examples(path, format, issues=issues, notes=notes, detected=detected,
                                  column_map=column_map))
    fmt = detected[0] if detected else (format or "empty")
    issues[:0] = notes.issues()
    return ReadResult(format=fmt, examples=examples, issues=renumber(issues, notes), container=notes.container,
                      encoding=notes.encoding, records=notes.records)


__all__ = ["bio_from_spans", "detect_format", "to_example"]
"""Re-exported: callers read formats through the reader."""

# ---------------------------------------------------------------- writers


def to_record(ex: Example) -> dict[str, Any]:
    """The canonical JSON object for a row: messages for chat, text+label, or tokens+tags."""
    if ex.kind == "ner":
        return {"tokens": ex.tokens, "tags": ex.tags}
    if ex.kind == "classification":
        return {"text": ex.text, "label": ex.label}
    record: dict[str, Any] = {"messages": [m.openai() for m in ex.messages]}
    if ex.tools:
        record["tools"] = ex.tools
    return record


def to_preference_record(ex: Example) -> dict[str, Any]:
    """A judgement as the JSON object preference files hold: TRL's prompt / chosen / rejected turns for a pair,
    a messages record with its true / false label for a single rated answer (both read back as they were)."""
    pref = ex.preference()
    if pref is None:
        raise UsageError(f"Line {ex.line}: this row is an example, not a judgement.",
                         "Write examples with write_messages_jsonl instead.")
    record: dict[str, Any] = {"messages": [m.openai() for m in ex.messages], "label": bool(ex.desirable)}
    if pref.paired:
        record = {"prompt": [m.openai() for m in pref.prompt], "chosen": [m.openai() for m in pref.chosen],
                  "rejected": [m.openai() for m in pref.rejected]}
    if ex.models:
        record["models"] = ex.models
    return record


def write_preferences_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write judgements as JSONL (DPO pairs, KTO labels); returns the row count."""
    return _write_jsonl((to_preference_record(ex) for ex in examples), path)


def _write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    n = 0
    with atomic_writer(Path(path)) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def record_line(ex: Example) -> str:
    """One row as a line of the JSONL that --fix writes (its canonical form)."""
    return json.dumps(to_record(ex), ensure_ascii=False) + "\n"


def write_messages_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write rows as JSONL in their canonical form (OpenAI messages for chat); returns the row count."""
    return _write_jsonl((to_record(ex) for ex in examples), path)


def dumps_jsonl(examples: Iterable[Example]) -> str:
    """The canonical JSONL text of some rows, as a dataset version keeps them: examples as write_messages_jsonl
    writes them, judgements whole (both answers, the label, who wrote them)."""
    buf = io.StringIO()
    for ex in examples:
        record = to_record(ex) if ex.preference() is None else to_preference_record(ex)
        buf.write(json.dumps(record, ensure_ascii=False) + "\n")
    return buf.getvalue()
