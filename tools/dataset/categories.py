"""Coverage per category of a project, against the guide's targets, with the nudge to draft what is thin."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tools.dataset.coverage import CATEGORIES, classify, classify_keywords
from tools.dataset.draft import BATCH
from tools.dataset.model import Example
from tools.dataset.spans import bio_spans
from tools.project import ProjectSpec

ESSENTIAL_GROUPS = ("requirements", "planning", "communication", "analytics")
"""The guide's essential categories; go-to-market and process improvement are its advanced ones."""
ESSENTIAL_TARGET = (20, 30)
ADVANCED_TARGET = (10, 20)
Level = Literal["essential", "advanced"]
TableKind = Literal["tasks", "labels", "entities"]


@dataclass(frozen=True)
class CategoryRow:
    """One category of the project: how many examples it has and how many the guide asks for."""

    key: str
    """A PM task kind key (tools/dataset/coverage.py), a class label, or an entity type."""
    name: str
    level: Level
    count: int
    target: tuple[int, int]
    focus: str
    """What an example of this category is, in one sentence: handed to the drafter to write more of it."""
    in_scope: bool
    """Part of this project: it has examples, or the project's purpose names it (labels and types always are)."""

    @property
    def needed(self) -> int:
        """Examples still missing to reach the low end of the target."""
        return max(0, self.target[0] - self.count)

    @property
    def status(self) -> str:
        """'below target', 'on target' or 'above target'."""
        if self.count < self.target[0]:
            return "below target"
        return "above target" if self.count > self.target[1] else "on target"


@dataclass(frozen=True)
class Nudge:
    """The suggestion under the table: its sentence, and what a 'yes' drafts."""

    text: str
    key: str
    n: int
    focus: str


@dataclass
class CoverageTable:
    """Counts per category with targets, ready for the chat to render as a table."""

    kind: TableKind
    rows: list[CategoryRow]
    unclassified: int
    """Examples no category could be named for (task kinds only)."""
    nudge: Nudge | None

    def shown(self) -> list[CategoryRow]:
        """The rows worth showing: the project's own categories, or every one when none is known yet."""
        own = [r for r in self.rows if r.in_scope]
        return own or list(self.rows)

    def table(self) -> list[dict[str, str | int]]:
        """The shown rows as plain table rows: Category, Examples, Target, Status."""
        return [{"Category": r.name, "Examples": r.count, "Target": f"{r.target[0]}–{r.target[1]}",
                 "Status": r.status} for r in self.shown()]


def _plain(name: str) -> str:
    """'Status updates' → 'status updates', but 'PRDs and specs' stays as written."""
    return name if name[1:2].isupper() else name[:1].lower() + name[1:]


def _counted(kind: TableKind, row: CategoryRow, n: int) -> str:
    if kind == "labels":
        return f"{n} '{row.name}' example{'s' * (n != 1)}"
    if kind == "entities":
        return f"{n} {row.name} mention{'s' * (n != 1)}"
    return f"{n} {_plain(row.name)}" if n != 1 else f"1 example of {_plain(row.name)}"


def _ask(kind: TableKind, row: CategoryRow, n: int) -> str:
    if kind == "labels":
        return f"draft {n} '{row.name}' example{'s' * (n != 1)}?"
    if kind == "entities":
        return f"draft {n} text{'s' * (n != 1)} mentioning {row.name}?"
    return f"draft {n} {_plain(row.name)}?" if n != 1 else f"draft 1 more example of {_plain(row.name)}?"


def nudge(kind: TableKind, rows: Sequence[CategoryRow]) -> Nudge | None:
    """'12 user stories, 2 status updates — draft 5 status updates?': the thinnest category next to the fullest.

    None when every category of the project has reached its target.
    """
    own = [r for r in rows if r.in_scope] or list(rows)
    thin = [r for r in own if r.needed]
    if not thin:
        return None
    weakest = min(thin, key=lambda r: (r.count / r.target[0], -r.target[0], r.name))
    fullest = max(own, key=lambda r: (r.count, r.name))
    n = min(weakest.needed, BATCH)
    shown = [fullest, weakest] if fullest is not weakest else [weakest]
    where = ", ".join(_counted(kind, r, r.count) for r in shown)
    if fullest is weakest:
        where += f" (the guide asks for {weakest.target[0]}–{weakest.target[1]})"
    return Nudge(text=f"{where} — {_ask(kind, weakest, n)}", key=weakest.key, n=n, focus=weakest.focus)


def named_kinds(text: str) -> set[str]:
    """PM task kinds a project description names ("launch plans and user stories" → go_to_market, user_story)."""
    clauses = re.split(r"[,;.]|\band\b|\bor\b", text, flags=re.IGNORECASE)
    return {k for k in (classify_keywords(c) for c in clauses) if k}


def category_coverage(examples: Sequence[Example], spec: ProjectSpec, *, use_embeddings: bool = False
                      ) -> CoverageTable:
    """Counts per category of the project against the guide's targets (20–30 per essential, 10–20 per advanced).

    Generation projects count the guide's PM task kinds; classifiers their labels; taggers entity mentions per type.
    """
    if spec.task_type == "classification":
        labels = Counter(str(ex.label) for ex in examples if ex.label is not None)
        rows = [CategoryRow(key=lab, name=lab, level="essential", count=labels.get(lab, 0), target=ESSENTIAL_TARGET,
                            focus=f"a text whose label is '{lab}'.", in_scope=True)
                for lab in [*spec.labels, *sorted(set(labels) - set(spec.labels))]]
        return CoverageTable("labels", rows, 0, nudge("labels", rows))
    if spec.task_type == "entity_extraction":
        mentions = Counter(t for ex in examples if ex.tags for _, _, t in bio_spans(ex.tags))
        rows = [CategoryRow(key=t, name=t, level="essential", count=mentions.get(t, 0), target=ESSENTIAL_TARGET,
                            focus=f"a text that mentions at least one {t} entity.", in_scope=True)
                for t in [*spec.entity_types, *sorted(set(mentions) - set(spec.entity_types))]]
        return CoverageTable("entities", rows, 0, nudge("entities", rows))
    kinds = classify([ex.prompt() for ex in examples], use_embeddings=use_embeddings)
    counts = Counter(k for k in kinds if k)
    named = named_kinds(f"{spec.name}, {spec.purpose}")
    rows = [CategoryRow(key=c.key, name=c.name, level="essential" if c.group in ESSENTIAL_GROUPS else "advanced",
                        count=counts.get(c.key, 0),
                        target=ESSENTIAL_TARGET if c.group in ESSENTIAL_GROUPS else ADVANCED_TARGET,
                        focus=c.description, in_scope=counts.get(c.key, 0) > 0 or c.key in named)
            for c in CATEGORIES]
    return CoverageTable("tasks", rows, sum(1 for k in kinds if k is None), nudge("tasks", rows))
