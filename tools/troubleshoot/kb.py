"""The troubleshooting knowledge base: entries from prompts/troubleshooting/*.md and retrieval over them.

Retrieval is BM25 over the entry text (title and keywords count double); MiniLM sentence embeddings
answer when no entry shares enough words with the question (`auto`), or are fused with BM25 by
reciprocal rank (`hybrid`) when the caller can afford loading the encoder (~10 s on CPU).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

KB_DIR = Path(__file__).resolve().parents[2] / "prompts" / "troubleshooting"
Method = Literal["bm25", "embed", "hybrid", "auto"]

# BM25's usual constants: term frequency saturates around k1, length normalisation b
K1, B = 1.5, 0.75
# reciprocal-rank fusion constant; 60 is the common choice and keeps one method from dominating
RRF_K = 60
# an entry must hold at least half of the question's weighted words to count as a BM25 match
MIN_COVERAGE = 0.5
# MiniLM cosine below this is unrelated text (off-topic questions score ~0.1, real matches 0.3+)
MIN_SIMILARITY = 0.2

_STOP = set(
    "a an and are as at be but by can do does did for from has have how i if in into is it its me my no not of on "
    "or our so that the their them then there these this to was we were what when where which who why will with "
    "you your after before am been being should would could get got keep keeps make makes made use using way "
    "thing things want like just also really help know please something go going".split()
)


@dataclass(frozen=True)
class Entry:
    """One knowledge-base entry: a problem, how it shows, why, and what to do."""

    id: str
    """File name without `.md`, used when citing the entry."""
    title: str
    code: str | None
    """The diagnosis code this entry explains (`oom`, `flat_loss`, ...), if any."""
    keywords: tuple[str, ...]
    symptoms: str
    cause: str
    fix: str
    text: str = field(repr=False)
    """The whole file, as written."""

    def markdown(self) -> str:
        """The entry for a reader: title and the three sections, without the retrieval metadata."""
        return f"# {self.title}\n\n## Symptoms\n{self.symptoms}\n\n## Cause\n{self.cause}\n\n## Fix\n{self.fix}\n"


def parse_entry(entry_id: str, text: str) -> Entry:
    """Read one entry file: `# Title`, optional `Code:` / `Keywords:` lines, then the three sections."""
    title_m = re.search(r"^#\s+(.+)$", text, re.M)
    if not title_m:
        raise ValueError(f"knowledge-base entry {entry_id}.md has no '# Title' line")
    sections: dict[str, str] = {}
    for m in re.finditer(r"^##\s+(\w+)\s*\n(.*?)(?=^##\s|\Z)", text, re.M | re.S):
        sections[m.group(1).lower()] = m.group(2).strip()
    missing = [s for s in ("symptoms", "cause", "fix") if s not in sections]
    if missing:
        raise ValueError(f"knowledge-base entry {entry_id}.md lacks section(s): {', '.join(missing)}")
    code = re.search(r"^Code:\s*(\S+)", text, re.M)
    kw = re.search(r"^Keywords:\s*(.+)$", text, re.M)
    return Entry(
        id=entry_id, title=title_m.group(1).strip(), code=code.group(1) if code else None,
        keywords=tuple(k.strip() for k in kw.group(1).split(",")) if kw else (),
        symptoms=sections["symptoms"], cause=sections["cause"], fix=sections["fix"], text=text,
    )


@lru_cache(maxsize=4)
def load_entries(folder: Path = KB_DIR) -> tuple[Entry, ...]:
    """Every entry in the knowledge-base folder, sorted by id."""
    return tuple(parse_entry(p.stem, p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.md")))


def _stem(word: str) -> str:
    """A crude suffix stripper: enough to match 'memorising' with 'memorise' and 'examples' with 'example'."""
    for suffix in ("ization", "isation", "izing", "ising", "ing", "ed", "ly", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case word stems without stop words."""
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1]


def _doc_text(e: Entry) -> str:
    # title and keywords are what a question usually echoes, so they count twice
    head = f"{e.title} {' '.join(e.keywords)} {e.code or ''}"
    return f"{head} {head} {e.symptoms} {e.cause} {e.fix}"


def _idf(n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def bm25_scores(query: str, docs: list[list[str]]) -> list[float]:
    """Okapi BM25 score of each tokenised document for the query."""
    n = len(docs)
    avg = sum(map(len, docs)) / n if n else 0.0
    df = Counter(t for d in docs for t in set(d))
    tfs = [Counter(d) for d in docs]
    scores = []
    for d, tf in zip(docs, tfs, strict=True):
        s = 0.0
        for t in set(tokenize(query)):
            if t in tf:
                s += _idf(n, df[t]) * tf[t] * (K1 + 1) / (tf[t] + K1 * (1 - B + B * len(d) / avg))
        scores.append(s)
    return scores


def coverage(query: str, docs: list[list[str]]) -> list[float]:
    """Share of the question's information (idf-weighted words) each document contains.

    BM25 ranks, but one shared word gives a score; requiring half the question's weight keeps a
    question that merely brushes an entry from pulling it up.
    """
    n = len(docs)
    df = Counter(t for d in docs for t in set(d))
    # words no entry uses ('laptop', 'pizza') say nothing about which entry fits; only known words count
    terms = {t for t in tokenize(query) if df[t]}
    total = sum(_idf(n, df[t]) for t in terms)
    sets = [set(d) for d in docs]
    return [sum(_idf(n, df[t]) for t in terms if t in s) / total if total else 0.0 for s in sets]


def _embed_ranking(query: str, entries: tuple[Entry, ...]) -> list[int]:
    """Entries by cosine similarity to the question, those under MIN_SIMILARITY left out."""
    from tools.embeddings import embed

    vecs = embed([query] + [f"{e.title}. {' '.join(e.keywords)}. {e.symptoms}" for e in entries])
    sims = [float(x) for x in vecs[1:] @ vecs[0]]
    return [i for i in sorted(range(len(entries)), key=lambda i: -sims[i]) if sims[i] >= MIN_SIMILARITY]


def search(query: str, k: int = 3, *, method: Method = "bm25", entries: tuple[Entry, ...] | None = None
           ) -> list[Entry]:
    """The `k` entries most relevant to the question, best first; none when nothing is relevant enough.

    `auto` uses BM25 and loads MiniLM only when no entry shares enough words with the question.
    """
    entries = entries or load_entries()
    if method == "embed":
        return [entries[i] for i in _embed_ranking(query, entries)[:k]]
    docs = [tokenize(_doc_text(e)) for e in entries]
    scores, cover = bm25_scores(query, docs), coverage(query, docs)
    bm25_rank = [i for i in sorted(range(len(entries)), key=lambda i: -scores[i])
                 if scores[i] > 0 and cover[i] >= MIN_COVERAGE]
    if method == "bm25" or (method == "auto" and bm25_rank):
        return [entries[i] for i in bm25_rank[:k]]
    if method == "auto":
        return [entries[i] for i in _embed_ranking(query, entries)[:k]]
    fused: dict[int, float] = {}
    for ranking in (bm25_rank, _embed_ranking(query, entries)):
        for r, i in enumerate(ranking):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r + 1)
    return [entries[i] for i in sorted(fused, key=lambda i: -fused[i])[:k]]
