"""What streaming a dataset file yields besides its rows: raw records and the file-level notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.dataset.model import Issue

MAX_EXAMPLE_CHARS = 1_000_000
"""A single example longer than this is reported as too long and not scanned in full."""


@dataclass
class Record:
    """One raw record from a file: a parsed JSON value / CSV row, or the issue that stopped it."""

    line: int
    value: Any = None
    issue: Issue | None = None


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
                             message=f"{count(len(self.media), 'example')} (first: line {self.media[0]}) hold "
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
                             message=f"{count(len(self.bad_bytes), 'line')} (first: line {self.bad_bytes[0]}) "
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
                             message=f"{count(len(self.blank_lines), 'blank line')} between records "
                                     f"(first: line {first}); they were skipped.",
                             fix="Nothing needed; --fix drops them."))
        if self.trailing_commas:
            first = self.trailing_commas[0]
            out.append(Issue(code="invalid_json", severity="warning", line=first,
                             message=f"{count(len(self.trailing_commas), 'record')} with a trailing comma before "
                                     f"}} or ] (first: line {first}), which JSON does not allow; read anyway.",
                             fix="Remove the comma before the closing } or ]; --fix writes valid JSON."))
        return out


def count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"

