"""Examples from the user's own documents: text out of PDF, DOCX, Markdown, HTML or text, split into passages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tools.dataset.checks import privacy_issues, redact_secrets
from tools.dataset.model import Example, Issue
from tools.errors import UsageError

SUFFIXES = (".pdf", ".docx", ".md", ".markdown", ".html", ".htm", ".txt")
MAX_WORDS = 220
"""A passage is at most this many words: enough context for a question, small enough for a 4k-token prompt."""
MIN_WORDS = 12
"""Shorter passages (a lone heading, a page number) are merged into the next one or dropped."""
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class Passage:
    """One piece of a document the assistant drafts from; shown next to every draft made from it."""

    source: str
    """The document's file name."""
    index: int
    """1-based position among the document's passages."""
    where: str
    """Where it sits, in the user's words: 'page 3', "section 'Goals'", or '' for a plain text file."""
    text: str

    @property
    def label(self) -> str:
        """'passage 3 (page 2) of spec.pdf'."""
        return f"passage {self.index}{f' ({self.where})' if self.where else ''} of {self.source}"


@dataclass
class Document:
    """A read document: its passages and the private data found in them, to show before any drafting."""

    name: str
    passages: list[Passage]
    privacy: list[Issue] = field(default_factory=list)
    """One issue per passage holding an email, a phone number or a secret; `line` is the passage index."""
    redacted: int = 0
    """Secrets replaced by <SECRET> before drafting (the model never sees them)."""

    def flagged(self) -> set[int]:
        """Indices of passages with private data."""
        return {i.line for i in self.privacy if i.line is not None}


# ---------------------------------------------------------------- extraction (the I/O edge, one reader per format)


def extract_blocks(path: str | Path) -> list[tuple[str, str]]:
    """(where, text) blocks of a document: one per page for a PDF, one for the whole of any other format.

    Headings come out as Markdown '# ' lines so the splitter can name sections whatever the format.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"{p.name}: '{suffix or 'no extension'}' is not a document type the wizard reads.",
                         "Upload a PDF, Word (.docx), Markdown, HTML or plain text file; save other formats as PDF.")
    if not p.is_file():
        raise UsageError(f"{p} does not exist.", "Check the path, or upload the file again.")
    if suffix == ".pdf":
        blocks = _pdf_pages(p)
    elif suffix == ".docx":
        blocks = [("", _docx_text(p))]
    elif suffix in (".html", ".htm"):
        blocks = [("", _html_text(_decode(p)))]
    else:
        blocks = [("", _decode(p))]
    if not any(text.strip() for _, text in blocks):
        hint = (" It is probably scanned pages (images); the wizard reads the text layer only." if suffix == ".pdf"
                else "")
        raise UsageError(f"{p.name} has no text the wizard could read.{hint}",
                         "Export it again with selectable text (or paste the text into a .txt file) and upload that.")
    return blocks


def _decode(p: Path) -> str:
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Windows editors still save cp1252; every byte decodes, so nothing is lost silently
        return raw.decode("cp1252", errors="replace")


def _pdf_pages(p: Path) -> list[tuple[str, str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(p)
        if reader.is_encrypted:
            raise UsageError(f"{p.name} is password-protected.",
                             "Save an unprotected copy (Print → Save as PDF) and upload that.")
        return [(f"page {i}", page.extract_text() or "") for i, page in enumerate(reader.pages, start=1)]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UsageError(f"{p.name} is not a PDF the wizard can read ({exc}).",
                         "Open it and save it again as PDF, or upload it as text.") from exc


def _docx_text(p: Path) -> str:
    import zipfile

    from docx import Document as open_docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        doc = open_docx(str(p))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError) as exc:
        raise UsageError(f"{p.name} is not a Word .docx file (an old .doc or a renamed file?).",
                         "Open it in Word or LibreOffice and save it as .docx, or as PDF.") from exc
    parts = []
    for para in doc.paragraphs:
        text = para.text.strip()
        style = (para.style.name if para.style is not None else "") or ""
        if text:
            parts.append(f"# {text}" if style.startswith(("Heading", "Title")) else text)
    for table in doc.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                parts.append(" | ".join(cells))
    return "\n\n".join(parts)


_BLOCK_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd",
               "figcaption")


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    parts = []
    for el in soup.find_all(_BLOCK_TAGS):
        # a <p> inside an <li> is read once, with its parent
        if el.find_parent(_BLOCK_TAGS) is not None:
            continue
        text = el.get_text(" ", strip=True)
        if text:
            parts.append(f"# {text}" if el.name[0] == "h" and el.name[1:].isdigit() else text)
    return "\n\n".join(parts) if parts else soup.get_text("\n", strip=True)


# ---------------------------------------------------------------- splitting and privacy (pure)


def _paragraphs(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paras = [re.sub(r"[ \t]+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    out = []
    for para in paras:
        # a heading glued to its first paragraph by a single newline still starts a new section
        lines = para.split("\n")
        if len(lines) > 1 and _HEADING.match(lines[0]):
            out += [lines[0], "\n".join(lines[1:])]
        elif para:
            out.append(para)
    return out


def _pieces(para: str, max_words: int) -> list[str]:
    """A paragraph longer than a passage, cut at sentence ends (or every max_words words when it has none)."""
    if len(para.split()) <= max_words:
        return [para]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(para):
        words = sentence.split()
        while len(words) > max_words:
            pieces.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and len(current) + len(words) > max_words:
            pieces.append(" ".join(current))
            current = []
        current += words
    if current:
        pieces.append(" ".join(current))
    return pieces


def _block_chunks(page: str, text: str, max_words: int) -> list[tuple[str, str]]:
    """(where, body) chunks of one page or file: whole paragraphs, closed at each heading or when full."""
    chunks: list[tuple[str, list[str]]] = [(page, [])]
    for para in _paragraphs(text):
        heading = _HEADING.match(para)
        if heading:
            chunks.append((", ".join(w for w in (page, f"section '{heading.group(1).strip()}'") if w), []))
            continue
        for piece in _pieces(para, max_words):
            where, current = chunks[-1]
            if current and len(" ".join(current).split()) + len(piece.split()) > max_words:
                chunks.append((where, []))
            chunks[-1][1].append(piece)
    return [(where, "\n\n".join(paras)) for where, paras in chunks if paras]


def split_passages(blocks: list[tuple[str, str]], source: str, *, max_words: int = MAX_WORDS,
                   min_words: int = MIN_WORDS) -> list[Passage]:
    """Passages of whole paragraphs (up to `max_words`), never across a heading or a page; tiny leftovers merged."""
    merged: list[tuple[str, str]] = []
    for where, body in (c for page, text in blocks for c in _block_chunks(page, text, max_words)):
        if merged and len(merged[-1][1].split()) < min_words and merged[-1][0] == where:
            merged[-1] = (where, merged[-1][1] + "\n\n" + body)
        else:
            merged.append((where, body))
    kept = [(w, b) for w, b in merged if len(b.split()) >= min_words or len(merged) == 1]
    return [Passage(source=source, index=i, where=w, text=b) for i, (w, b) in enumerate(kept, start=1)]


def passage_privacy(passages: list[Passage]) -> list[Issue]:
    """The project's own privacy checks on each passage, reworded to name the passage instead of a line."""
    out = []
    for p in passages:
        for issue in privacy_issues(Example.chat(("user", p.text))):
            # privacy_issues opens with "An example" (no line); a passage is what the user can find and fix
            message = p.label[0].upper() + p.label[1:] + issue.message.removeprefix("An example")
            out.append(issue.model_copy(update={"line": p.index, "message": message}))
    return out


def read_document(path: str | Path, *, max_words: int = MAX_WORDS) -> Document:
    """Extract, split and scan a document: passages ready for drafting, secrets already replaced.

    Emails and phone numbers are flagged, not changed: the user decides whether the model may learn them.
    """
    p = Path(path)
    passages = split_passages(extract_blocks(p), p.name, max_words=max_words)
    privacy = passage_privacy(passages)
    redacted = 0
    clean = []
    for passage in passages:
        text = redact_secrets(passage.text)
        redacted += text != passage.text
        clean.append(passage if text == passage.text else Passage(passage.source, passage.index, passage.where,
                                                                  text))
    return Document(name=p.name, passages=clean, privacy=privacy, redacted=redacted)
