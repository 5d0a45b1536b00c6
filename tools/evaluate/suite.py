"""Test prompts: the guide's four categories built in, the user's own prompts file, and format checks without an LLM."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.errors import UsageError

FormatKind = Literal["user_story", "list", "update"]
StructureKind = Literal["headings", "lists"]
STRUCTURE_WORDS: dict[str, str] = {"headings": "section headings", "lists": "bulleted or numbered lists"}
SHARED = 0.6
"""A structure most training answers have (this share of them) is the dataset's format."""
CATEGORIES = ("format_consistency", "domain_knowledge", "contextual_understanding", "creative_problem_solving")


class TestPrompt(BaseModel):
    """One prompt to answer with base and tuned; also the shape of a line in a `--prompts` JSONL file."""

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # a domain class, not a pytest test

    prompt: str = Field(min_length=1)
    id: str = ""
    category: str = "your_prompts"
    reference: str | None = None
    """A reference answer (validation examples): scored with ROUGE-L."""
    format: FormatKind | None = None
    """A structure the answer must have, checked without an LLM."""
    list_items: int | None = None
    """For format=list: how many items the answer must list."""
    must_mention: list[str] = []
    """Terms a correct answer names (case-insensitive)."""
    structure: list[StructureKind] = []
    """The structure the run's training answers share that this answer needs too (e.g. headings, lists)."""


BUILTIN: tuple[TestPrompt, ...] = (
    TestPrompt(id="story-password-reset", category="format_consistency", format="user_story",
               prompt="Write a user story for a password reset feature."),
    TestPrompt(id="story-csv-export", category="format_consistency", format="user_story",
               prompt="Write a user story for exporting the monthly usage report to CSV."),
    TestPrompt(id="okrs-vs-kpis", category="domain_knowledge", must_mention=["OKR", "KPI"],
               prompt="Explain the difference between OKRs and KPIs, with one example of each."),
    TestPrompt(id="roadmap-vs-backlog", category="domain_knowledge", must_mention=["roadmap", "backlog"],
               prompt="What is the difference between a product roadmap and a backlog?"),
    TestPrompt(id="update-two-weeks-late", category="contextual_understanding", format="update",
               prompt="Our mobile release is 2 weeks behind schedule because the payment provider changed its API. "
                      "Write a short stakeholder update."),
    TestPrompt(id="saas-onboarding-ideas", category="creative_problem_solving", format="list", list_items=5,
               prompt="Give 5 ways to improve onboarding for a B2B SaaS product."),
)
"""The guide's test categories: format consistency, domain knowledge, context, creative problem solving."""


def load_prompts_file(path: str | Path) -> list[TestPrompt]:
    """Read a prompts file: JSONL (one TestPrompt object per line) or plain text (one prompt per line)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise UsageError(f"Cannot read the prompts file {path}: {exc.strerror}.",
                         fix="Give the path of a .jsonl or .txt file with one prompt per line.") from exc
    out: list[TestPrompt] = []
    problems: list[str] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix.lower() != ".jsonl" and not line.lstrip().startswith("{"):
            out.append(TestPrompt(prompt=line.strip(), id=f"prompt-{n}"))
            continue
        try:
            p = TestPrompt.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except ValidationError as exc:
            problems += [f"line {n}: {'.'.join(map(str, e['loc'])) or 'line'} — {e['msg'].lower()}"
                         for e in exc.errors()]
            continue
        out.append(p if p.id else p.model_copy(update={"id": f"prompt-{n}"}))
    if problems:
        raise UsageError(f"The prompts file {path} has problems:\n" + "\n".join(f"  - {p}" for p in problems),
                         fix='Write one prompt per line, or JSON like {"prompt": "...", "format": "user_story"}.')
    if not out:
        raise UsageError(f"The prompts file {path} has no prompts.", fix="Put one prompt per line.")
    return out


@dataclass
class CheckResult:
    """One format check on one answer."""

    name: str
    passed: bool
    detail: str = ""


_LEAK = re.compile(r"<\|[a-z_]+\|>|<s>|</s>|\[/?INST\]|<(start|end)_of_turn>", re.I)
_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)]|[a-z][.)])\s+\S", re.M)


def _has(text: str, pattern: str) -> bool:
    return re.search(pattern, text, re.I) is not None


_BENEFIT = r"\bso (?:that\b|(?:I|we|you|they|(?:my|our|the|their|his|her) \w+|\w+s) can\b)"
"""The benefit clause: "so that …", or the short form "so I can …" / "so my team can …" / "so admins can …"."""


def check_user_story(text: str) -> CheckResult:
    """As a / I want / So that (or "so I can", "so the team can": the benefit, as teams write it), and acceptance
    criteria with at least one item."""
    parts = {"'As a …'": r"\bas an?\b", "'I want …'": r"\bI want\b", "'So that …'": _BENEFIT,
             "acceptance criteria": r"acceptance criteria"}
    missing = [name for name, pat in parts.items() if not _has(text, pat)]
    after = re.split(r"acceptance criteria", text, flags=re.I, maxsplit=1)
    if not missing and not (_ITEM.search(after[-1]) or _has(after[-1], r"\bgiven\b.*\bwhen\b.*\bthen\b")):
        missing.append("at least one acceptance criterion")
    return CheckResult("user_story", not missing, "missing " + ", ".join(missing) if missing else "")


def story_shape(text: str) -> bool:
    """The user-story format as a reader sees it at a glance: "As a … I want …" and an acceptance-criteria section
    with at least one item (`check_user_story` also asks for the benefit clause)."""
    after = re.split(r"acceptance criteria", text, flags=re.I, maxsplit=1)
    return (_has(text, r"\bas an?\b") and _has(text, r"\bI want\b") and len(after) == 2
            and bool(_ITEM.search(after[1])))


def check_list(text: str, n: int) -> CheckResult:
    """At least `n` bulleted or numbered items."""
    found = len(_ITEM.findall(text))
    return CheckResult("list", found >= n, "" if found >= n else f"{found} list items, asked for {n}")


def check_update(text: str) -> CheckResult:
    """A status update names the delay or timeline and what happens next."""
    missing = []
    if not _has(text, r"\b(behind|delay|delayed|slip|late|weeks?|new date|timeline|schedule)\b"):
        missing.append("the delay or new timeline")
    if not _has(text, r"\b(next steps?|plan|will|mitigat\w*|action|we are|we're)\b"):
        missing.append("what happens next")
    return CheckResult("update", not missing, "missing " + ", ".join(missing) if missing else "")


_HEADING = re.compile(r"^\s{0,3}(?:#{1,6}\s+\S|\*\*[^*\n]{2,80}\*\*:?\s*$|\*\*[^*\n]{2,60}:\*\*|\*\*[^*\n]{2,60}\*\*:)",
                      re.M)


def structure_of(text: str) -> list[StructureKind]:
    """The structures an answer has: two or more section headings (markdown or bold lines), two or more list items."""
    found: list[StructureKind] = []
    if len(_HEADING.findall(text)) >= 2:
        found.append("headings")
    if len(_ITEM.findall(text)) >= 2:
        found.append("lists")
    return found


def dataset_structure(answers: list[str]) -> list[StructureKind]:
    """The structures most of the training answers share: the dataset's own format, beyond any one kind of text."""
    if not answers:
        return []
    seen = [structure_of(a) for a in answers]
    kinds: tuple[StructureKind, ...] = ("headings", "lists")
    return [k for k in kinds if sum(k in s for s in seen) >= SHARED * len(answers)]


def check_structure(text: str, needed: list[StructureKind]) -> CheckResult:
    """The answer has the structure the dataset's answers share (headings, lists)."""
    missing = [STRUCTURE_WORDS[k] for k in needed if k not in structure_of(text)]
    return CheckResult("dataset_format", not missing, "missing " + " and ".join(missing) if missing else "")


def check_mentions(text: str, terms: list[str]) -> CheckResult:
    """Every term named (word match, plural allowed)."""
    missing = [t for t in terms if not _has(text, rf"\b{re.escape(t)}s?\b")]
    return CheckResult("mentions", not missing, "does not mention " + ", ".join(missing) if missing else "")


def check_answer(p: TestPrompt, text: str, stopped: bool) -> list[CheckResult]:
    """Every check that applies to this prompt, with no LLM: format, terms, stopping, template leaks."""
    leak = _LEAK.search(text)
    checks = [
        CheckResult("not_empty", bool(text.strip()), "" if text.strip() else "the answer is empty"),
        CheckResult("stops", stopped, "" if stopped else "kept writing until the length limit (never ended its turn)"),
        CheckResult("no_template_text", leak is None, f"prints template text {leak.group(0)!r}" if leak else ""),
    ]
    if p.format == "user_story":
        checks.append(check_user_story(text))
    elif p.format == "list":
        checks.append(check_list(text, p.list_items or 3))
    elif p.format == "update":
        checks.append(check_update(text))
    if p.structure:
        checks.append(check_structure(text, p.structure))
    if p.must_mention:
        checks.append(check_mentions(text, p.must_mention))
    return checks


def follows_format(checks: list[CheckResult]) -> bool:
    """True when every check passed."""
    return all(c.passed for c in checks)
