"""Tables and plain text streamed as raw records: CSV / TSV with their usual headers, CoNLL, plain prose."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator

from tools.dataset.fields import issue as _issue
from tools.dataset.mapping import TAGS
from tools.dataset.notes import MAX_EXAMPLE_CHARS, FileNotes, Record, count

# csv headers people use, mapped onto the JSON keys the record formats read (after any --map)
_CSV_ALIASES = {
    "prompt": "prompt", "question": "prompt", "query": "prompt", "user": "prompt", "request": "prompt",
    "completion": "completion", "response": "completion", "answer": "completion", "assistant": "completion",
    "reply": "completion", "instruction": "instruction", "input": "input", "output": "output",
    "system": "system", "text": "text", "sentence": "text", "label": "label", "category": "label",
    "class": "label", "intent": "label", "tokens": "tokens", "tags": "tags", "ner_tags": "tags",
    "context": "context",
}
_CONLL_TAG = re.compile(r"^(?:O|[BIESLU]-\S+)$")


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


def csv_records(lines: Iterator[str], first: str, first_line: int, delimiter: str,
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
                "extra_columns", start, f"Line {start} has text in {count(len(spilled), 'column')} without a name "
                                        f"(`{spilled[0][:40]}`); it would be cut off, so the row was not read.",
                "Quote the cell that contains the separator (\"like, this\") so it stays in one column; --fix drops "
                "the row.", "warning"))
            continue
        yield Record(start, {h: v for h, v in zip(header, row, strict=True) if h})


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def looks_conll(first: str) -> bool:
    """One token per line with its tag last (`EU NNP B-NP B-ORG`), or CoNLL's -DOCSTART- line."""
    if first.startswith("-DOCSTART-"):
        return True
    cells = first.split()
    return 2 <= len(cells) <= 10 and "," not in first and bool(_CONLL_TAG.match(cells[-1]))


def looks_tabular(first: str) -> bool:
    """A header row: two or more short column names split by tabs or commas."""
    delim = "\t" if "\t" in first else ","
    cells = next(csv.reader([first], delimiter=delim), [])
    return len(cells) >= 2 and all(len(c) <= 40 and len(c.split()) <= 4 for c in cells)


def conll_records(lines: Iterator[str], first: str, first_line: int, notes: FileNotes) -> Iterator[Record]:
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


def plain_text(lines: Iterator[str], first: str, notes: FileNotes) -> Iterator[Record]:
    notes.kind = "plain_text"
    n_lines = words = 0
    for text in _chain(first, lines):
        n_lines += 1
        words += len(text.split())
    notes.what = f"{count(n_lines, 'line')}, {count(words, 'word')}"
    return iter(())

