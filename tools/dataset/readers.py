"""Read every dataset format users bring into canonical rows, streaming, without ever crashing."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from tools.dataset.model import ROLES, Example, Issue, Message
from tools.errors import UsageError
from tools.fileio import atomic_write_text

FORMATS = ("messages", "alpaca", "sharegpt", "prompt_completion", "classification", "ner")
"""Record formats `--format` accepts and the reader detects."""

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "bot": "assistant", "model": "assistant", "chatgpt": "assistant"}
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant",
                 "ai": "assistant", "chatgpt": "assistant", "customer": "user", "developer": "system"}
_PROMPT_KEYS = ("prompt", "question", "input", "query")
_COMPLETION_KEYS = ("completion", "response", "answer", "output", "chosen")
# csv headers people use, mapped onto the JSON keys the record formats read
_CSV_ALIASES = {
    "prompt": "prompt", "question": "prompt", "query": "prompt", "user": "prompt", "request": "prompt",
    "completion": "completion", "response": "completion", "answer": "completion", "assistant": "completion",
    "reply": "completion", "instruction": "instruction", "input": "input", "output": "output",
    "system": "system", "text": "text", "sentence": "text", "label": "label", "category": "label",
    "class": "label", "intent": "label", "tokens": "tokens", "tags": "tags", "ner_tags": "tags",
}
_DETECT_SAMPLE = 50
_CHUNK = 1 << 18
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


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

    def issues(self) -> list[Issue]:
        out: list[Issue] = []
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
                 message=f"Line {line} is not valid JSON: {exc.msg} at column {exc.colno} (near `{snippet}`).",
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


def _json_array_records(lines: Iterator[str], first: str, first_line: int, notes: FileNotes) -> Iterator[Record]:
    """Stream the elements of a top-level JSON array without loading the whole file."""
    notes.container = "json"
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
        yield Record(line, value)
        line += buf.count("\n", pos, end)
        pos = end
        if pos > _CHUNK // 2:
            # drop what was consumed so a huge array never sits in memory
            buf = buf[pos:]
            pos = 0


def _csv_records(lines: Iterator[str], first: str, first_line: int, delimiter: str,
                 notes: FileNotes) -> Iterator[Record]:
    notes.container = "tsv" if delimiter == "\t" else "csv"

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
            header = [_CSV_ALIASES.get(h.strip().lower().lstrip("\ufeff"), h.strip()) for h in row]
            continue
        if len(row) != len(header):
            yield Record(start, issue=_issue(
                "missing_field", start, f"Line {start} has {len(row)} columns but the header has {len(header)}.",
                "Quote cells that contain the separator (\"like, this\") or fill the missing columns."))
            continue
        yield Record(start, dict(zip(header, row, strict=True)))


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _records(path: Path, notes: FileNotes, container: str | None = None) -> Iterator[Record]:
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
    if container in ("csv", "tsv") or (container is None and suffix in (".csv", ".tsv", ".txt")
                                        and not head.startswith(("{", "["))):
        delim = "\t" if (container == "tsv" or suffix == ".tsv" or "\t" in first) else ","
        yield from _csv_records(lines, first, n, delim, notes)
    elif head.startswith("[") and not _whole_line_json(first):
        yield from _json_array_records(lines, first, n, notes)
    elif head.startswith("["):
        # a one-line array: the whole file, or the first record of a JSONL file that is a list by mistake
        rest = _peek_rest(lines)
        if rest is None:
            yield from _json_array_records(iter(()), first, n, notes)
        else:
            yield _parse_json_line(first.strip(), n, notes)
            yield from _jsonl_records(rest, n + 1, notes)
    else:
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


def iter_records(path: str | Path, *, notes: FileNotes | None = None) -> Iterator[Record]:
    """Stream the raw records of a JSONL / JSON-array / CSV / TSV file, one at a time.

    Records that cannot be parsed come back as a `Record` with `.issue` set; the reader never raises
    on bad content. File-level notes (encoding, BOM, blank lines) are collected in `notes`.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"No dataset file at {path}.", "Check the path; give a .jsonl, .json, .csv or .tsv file.")
    yield from _records(path, notes if notes is not None else FileNotes())


# ---------------------------------------------------------------- record formats


def detect_format(value: Any) -> str | None:
    """The record format one JSON object is in, judged by its keys; None when it matches none."""
    if not isinstance(value, dict):
        return None
    keys = set(value)
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and ("output" in keys or "response" in keys):
        return "alpaca"
    if "tokens" in keys and ("tags" in keys or "ner_tags" in keys):
        return "ner"
    if "text" in keys and ("spans" in keys or "entities" in keys):
        return "ner"
    if "text" in keys and "label" in keys:
        return "classification"
    if any(k in keys for k in _PROMPT_KEYS) and any(k in keys for k in _COMPLETION_KEYS):
        return "prompt_completion"
    return None


def _issue(code: str, line: int | None, message: str, fix: str, severity: str = "error") -> Issue:
    return Issue(code=code, severity=severity, line=line, message=message, fix=fix)  # type: ignore[arg-type]


def _text(value: Any, where: str, line: int, issues: list[Issue]) -> str | None:
    """A text field: strings pass, OpenAI content parts are joined, anything else is a reported problem."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    if value is None:
        issues.append(_issue("missing_field", line, f"Line {line}: {where} is missing (null).",
                             f"Add the text for {where}."))
        return None
    if isinstance(value, int | float | bool):
        return str(value)
    issues.append(_issue("bad_type", line, f"Line {line}: {where} should be text but is a {type(value).__name__}.",
                         f"Write {where} as a plain string in quotes."))
    return None


def _require(obj: dict[str, Any], key: str, fmt: str, line: int, issues: list[Issue]) -> bool:
    if key in obj:
        return True
    issues.append(_issue("missing_field", line,
                         f"Line {line} has no \"{key}\" field, which every {fmt} record needs "
                         f"(it has: {', '.join(sorted(map(str, obj))) or 'nothing'}).",
                         f"Add \"{key}\" to this record, or --format another format if the file is not {fmt}."))
    return False


def _role(raw: Any, line: int, turn: int, issues: list[Issue]) -> str | None:
    role = str(raw).strip().lower() if raw is not None else ""
    if role in ROLES:
        return role
    alias = _ROLE_ALIASES.get(role)
    if alias:
        issues.append(_issue("bad_role", line, f"Line {line}, message {turn}: role \"{raw}\" is not one of "
                                               f"system / user / assistant; it was read as \"{alias}\".",
                             f"Rename the role to \"{alias}\"; --fix does it for you.", "warning"))
        return alias
    issues.append(_issue("bad_role", line,
                         f"Line {line}, message {turn}: unknown role \"{raw}\" (allowed: system, user, assistant).",
                         "Use system, user or assistant; tool / function turns are not supported for training. "
                         "--fix drops this record."))
    return None


def _messages(items: Any, key_role: str, key_text: str, where: str, line: int,
              issues: list[Issue], role_map: dict[str, str] | None = None) -> list[Message] | None:
    if not isinstance(items, list):
        issues.append(_issue("bad_type", line, f"Line {line}: \"{where}\" should be a list of turns but is a "
                                               f"{type(items).__name__}.",
                             f"Write \"{where}\" as a list: [{{\"{key_role}\": ..., \"{key_text}\": ...}}, ...]."))
        return None
    out: list[Message] = []
    ok = True
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            issues.append(_issue("not_object", line, f"Line {line}, message {i} is not an object.",
                                 f"Write each turn as {{\"{key_role}\": ..., \"{key_text}\": ...}}."))
            ok = False
            continue
        for key in (key_role, key_text):
            if key not in item:
                issues.append(_issue("missing_field", line, f"Line {line}, message {i} has no \"{key}\".",
                                     f"Add \"{key}\" to message {i}."))
                ok = False
        if key_role not in item or key_text not in item:
            continue
        raw_role = item[key_role]
        if role_map is not None:
            mapped = role_map.get(str(raw_role).strip().lower())
            role = mapped if mapped else _role(raw_role, line, i, issues)
        else:
            role = _role(raw_role, line, i, issues)
        content = _text(item[key_text], f"message {i}'s \"{key_text}\"", line, issues)
        if role is None or content is None:
            ok = False
            continue
        # role and content were checked just above; skip a second validation on this hot path
        out.append(Message.model_construct(role=role, content=content))  # type: ignore[arg-type]
    return out if ok else None


def _from_messages(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not _require(obj, "messages", "messages", line, issues):
        return None
    msgs = _messages(obj["messages"], "role", "content", "messages", line, issues)
    return None if msgs is None else Example(messages=msgs, line=line)


def _from_sharegpt(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not _require(obj, "conversations", "sharegpt", line, issues):
        return None
    msgs = _messages(obj["conversations"], "from", "value", "conversations", line, issues, _SHAREGPT_ROLES)
    if msgs is None:
        return None
    system = obj.get("system")
    if isinstance(system, str) and system.strip() and not any(m.role == "system" for m in msgs):
        msgs.insert(0, Message(role="system", content=system))
    return Example(messages=msgs, line=line)


def _from_alpaca(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    out_key = "output" if "output" in obj else "response"
    if not (_require(obj, "instruction", "alpaca", line, issues) and _require(obj, out_key, "alpaca", line, issues)):
        return None
    instruction = _text(obj["instruction"], '"instruction"', line, issues)
    extra = _text(obj.get("input", ""), '"input"', line, issues)
    output = _text(obj[out_key], f'"{out_key}"', line, issues)
    if instruction is None or extra is None or output is None:
        return None
    msgs: list[Message] = []
    system = obj.get("system")
    if isinstance(system, str) and system.strip():
        msgs.append(Message(role="system", content=system))
    history = obj.get("history") or []
    if isinstance(history, list):
        for pair in history:
            if isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
                msgs += [Message(role="user", content=pair[0]), Message(role="assistant", content=pair[1])]
            else:
                issues.append(_issue("bad_type", line, f"Line {line}: a \"history\" entry is not a [question, "
                                                       "answer] pair of texts.",
                                     "Write history as [[\"earlier question\", \"earlier answer\"], ...]."))
                return None
    user = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
    msgs += [Message(role="user", content=user), Message(role="assistant", content=output)]
    return Example(messages=msgs, line=line)


def _from_prompt_completion(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    p_key = next((k for k in _PROMPT_KEYS if k in obj), "prompt")
    c_key = next((k for k in _COMPLETION_KEYS if k in obj), "completion")
    if not (_require(obj, p_key, "prompt/completion", line, issues)
            and _require(obj, c_key, "prompt/completion", line, issues)):
        return None
    prompt = _text(obj[p_key], f'"{p_key}"', line, issues)
    completion = _text(obj[c_key], f'"{c_key}"', line, issues)
    if prompt is None or completion is None:
        return None
    msgs = []
    system = obj.get("system")
    if isinstance(system, str) and system.strip():
        msgs.append(Message(role="system", content=system))
    msgs += [Message(role="user", content=prompt), Message(role="assistant", content=completion)]
    return Example(messages=msgs, line=line)


def _from_classification(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if not (_require(obj, "text", "classification", line, issues)
            and _require(obj, "label", "classification", line, issues)):
        return None
    text = _text(obj["text"], '"text"', line, issues)
    label = _text(obj["label"], '"label"', line, issues)
    if text is None or label is None:
        return None
    return Example.classified(text, label, line=line)


def _from_ner(obj: dict[str, Any], line: int, issues: list[Issue]) -> Example | None:
    if "tokens" in obj:
        tag_key = "tags" if "tags" in obj else "ner_tags"
        tokens, tags = obj.get("tokens"), obj.get(tag_key)
        if not (isinstance(tokens, list) and isinstance(tags, list)):
            issues.append(_issue("bad_type", line, f"Line {line}: \"tokens\" and \"{tag_key}\" must both be lists.",
                                 "Write them as [\"word\", ...] and [\"B-PER\", \"O\", ...], one tag per token."))
            return None
        return Example(tokens=[str(t) for t in tokens], tags=[str(t) for t in tags], line=line)
    span_key = "spans" if "spans" in obj else "entities"
    if not (_require(obj, "text", "entity extraction", line, issues)
            and _require(obj, span_key, "entity extraction", line, issues)):
        return None
    text, spans = obj["text"], obj[span_key]
    if not isinstance(text, str) or not isinstance(spans, list):
        issues.append(_issue("bad_type", line, f"Line {line}: \"text\" must be text and \"{span_key}\" a list.",
                             f"Write \"{span_key}\" as [{{\"start\": 0, \"end\": 5, \"label\": \"ORG\"}}, ...]."))
        return None
    return bio_from_spans(text, spans, span_key, line, issues)


def bio_from_spans(text: str, spans: list[Any], key: str, line: int | None, issues: list[Issue]) -> Example | None:
    """An entity row from text + character spans: whitespace tokens with BIO tags; bad spans go to `issues`."""
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    tags = ["O"] * len(words)
    for i, span in enumerate(spans, start=1):
        ok = isinstance(span, dict) and isinstance(span.get("start"), int) and isinstance(span.get("end"), int) \
            and isinstance(span.get("label"), str)
        if not ok or not (0 <= span["start"] < span["end"] <= len(text)):
            issues.append(_issue("bad_type", line, f"Line {line}: span {i} in \"{key}\" needs integer start < end "
                                                   f"within the text and a label (got {span!r}).",
                                 "Write each span as {\"start\": 0, \"end\": 5, \"label\": \"ORG\"}."))
            return None
        inside = [j for j, (s, e, _) in enumerate(words) if s < span["end"] and e > span["start"]]
        for k, j in enumerate(inside):
            tags[j] = ("B-" if k == 0 else "I-") + span["label"]
    return Example(tokens=[w for _, _, w in words], tags=tags, line=line)


_CONVERTERS = {
    "messages": _from_messages, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca,
    "prompt_completion": _from_prompt_completion, "classification": _from_classification, "ner": _from_ner,
}


def to_example(value: Any, fmt: str, line: int, issues: list[Issue]) -> Example | None:
    """Convert one raw record in format `fmt` to a canonical row; problems go to `issues`."""
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else type(value).__name__
        issues.append(_issue("not_object", line, f"Line {line} is {kind}, not a JSON object.",
                             "Each line must be one object, e.g. {\"messages\": [...]}. --fix drops this line."))
        return None
    try:
        return _CONVERTERS[fmt](value, line, issues)
    except ValidationError as exc:  # defensive: converters build models from checked values
        issues.append(_issue("bad_type", line, f"Line {line} could not be read: {exc.errors()[0]['msg']}.",
                             "Check the field types of this record."))
        return None


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


def iter_examples(path: str | Path, format: str | None = None, *,
                  issues: list[Issue] | None = None, notes: FileNotes | None = None,
                  detected: list[str] | None = None) -> Iterator[Example]:
    """Stream canonical rows from a file; every problem is appended to `issues`, nothing raises.

    The format is detected from the first records (or forced with `format`); its name is appended to
    `detected` as soon as it is known.
    """
    _check_format(format)
    issues = issues if issues is not None else []
    notes = notes if notes is not None else FileNotes()
    records = iter_records(path, notes=notes)
    sample: list[Record] = []
    fmt = format
    if fmt is None:
        for rec in records:
            sample.append(rec)
            if len(sample) >= _DETECT_SAMPLE:
                break
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
                detected.append("unknown" if sample else "empty")
            return
        fmt = max(votes, key=lambda k: votes[k])
    if detected is not None:
        detected.append(fmt)

    def all_records() -> Iterator[Record]:
        yield from sample
        yield from records

    for rec in all_records():
        notes.records += 1
        if rec.issue is not None:
            issues.append(rec.issue)
            continue
        ex = to_example(rec.value, fmt, rec.line, issues)
        if ex is not None:
            yield ex


def read_dataset(path: str | Path, format: str | None = None) -> ReadResult:
    """Read a whole dataset file into canonical rows, with the detected format and every issue found."""
    issues: list[Issue] = []
    notes = FileNotes()
    detected: list[str] = []
    examples = list(iter_examples(path, format, issues=issues, notes=notes, detected=detected))
    fmt = detected[0] if detected else (format or "empty")
    issues[:0] = notes.issues()
    return ReadResult(format=fmt, examples=examples, issues=issues, container=notes.container,
                      encoding=notes.encoding, records=notes.records)


# ---------------------------------------------------------------- writers


def to_record(ex: Example) -> dict[str, Any]:
    """The canonical JSON object for a row: messages for chat, text+label, or tokens+tags."""
    if ex.kind == "ner":
        return {"tokens": ex.tokens, "tags": ex.tags}
    if ex.kind == "classification":
        return {"text": ex.text, "label": ex.label}
    return {"messages": [m.model_dump() for m in ex.messages]}


def to_alpaca(ex: Example) -> dict[str, Any]:
    """An alpaca record; earlier turns of a multi-turn chat go to "history", a system turn to "system"."""
    if ex.kind != "chat":
        raise UsageError(f"Line {ex.line}: a {ex.kind} row cannot be written as alpaca.",
                         "Write classification and entity rows with write_messages_jsonl instead.")
    system = "\n".join(m.content for m in ex.messages if m.role == "system")
    turns = [m for m in ex.messages if m.role != "system"]
    pairs: list[list[str]] = []
    pending: str | None = None
    for m in turns:
        if m.role == "user":
            pending = m.content if pending is None else f"{pending}\n\n{m.content}"
        else:
            pairs.append([pending or "", m.content])
            pending = None
    if pending is not None:
        pairs.append([pending, ""])
    last = pairs.pop() if pairs else ["", ""]
    record: dict[str, Any] = {"instruction": last[0], "input": "", "output": last[1]}
    if system:
        record["system"] = system
    if pairs:
        record["history"] = pairs
    return record


def _write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(Path(path), "".join(line + "\n" for line in lines))
    return len(lines)


def write_messages_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write rows as JSONL in their canonical form (OpenAI messages for chat); returns the row count."""
    return _write_jsonl((to_record(ex) for ex in examples), path)


def write_alpaca(examples: Iterable[Example], path: str | Path) -> int:
    """Write chat rows as alpaca JSONL (instruction / input / output); returns the row count."""
    return _write_jsonl((to_alpaca(ex) for ex in examples), path)


def dumps_jsonl(examples: Iterable[Example]) -> str:
    """The canonical JSONL text of some rows (what write_messages_jsonl writes)."""
    buf = io.StringIO()
    for ex in examples:
        buf.write(json.dumps(to_record(ex), ensure_ascii=False) + "\n")
    return buf.getvalue()
