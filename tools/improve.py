"""Round 2 and after: the weakest categories (judge scores, your ratings, coverage) and how many examples to draft."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tools.dataset.categories import CategoryRow, category_coverage
from tools.dataset.coverage import category_name, classify_keywords
from tools.dataset.draft import BATCH
from tools.dataset.model import Example
from tools.evaluate.playground import Rating
from tools.evaluate.report_model import EvalReport
from tools.project import ProjectSpec

TARGET_SCORE = 4.0
"""The guide's target: an average of 4 or more out of 5."""
WEAK_F1 = 0.7
"""A classifier label below this F1 on the held-out texts needs more examples."""
MAX_AREAS = 3
"""A round works on a few areas at a time, the weakest first."""
Round = Literal["foundation", "weak areas", "polish"]
ROUNDS: dict[Round, tuple[int, int]] = {"foundation": (50, 100), "weak areas": (25, 50), "polish": (10, 25)}
"""The guide's rounds: a foundation of 50–100 examples, then +25–50 on weak areas, then +10–25 polish."""


@dataclass
class WeakArea:
    """One category to work on, why, and how many examples to draft for it."""

    key: str
    name: str
    focus: str
    """What an example of it is: hand it to draft_examples(focus=...)."""
    reasons: list[str] = field(default_factory=list)
    severity: float = 0.0
    """0..1, how far below target it is on its worst measure."""
    draft: int = 0


@dataclass
class RoundPlan:
    """The next round: which kind, how many examples in all, and the areas they go to, weakest first."""

    round: Round
    total: int
    areas: list[WeakArea]

    def summary(self) -> str:
        """'Round "weak areas": draft 30 examples — 20 status updates (…), 10 user stories (…).'."""
        parts = [f"{a.draft} {a.name.lower() if a.name[1:2].islower() else a.name} ({'; '.join(a.reasons)})"
                 for a in self.areas]
        low, high = ROUNDS[self.round]
        return (f"Next round, {self.round} (the guide's {low}–{high}): draft {self.total} examples — "
                + ", ".join(parts) + ".")


def _area(areas: dict[str, WeakArea], key: str, name: str, focus: str) -> WeakArea:
    if key not in areas:
        areas[key] = WeakArea(key=key, name=name, focus=focus)
    return areas[key]


def _judged(report: EvalReport, areas: dict[str, WeakArea], rows: dict[str, CategoryRow]) -> None:
    """Judge scores of the tuned answers, grouped by the PM task kind of each test prompt."""
    scores: dict[str, list[float]] = defaultdict(list)
    criteria: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    texts: dict[str, str] = {}
    for row in report.prompts:
        tuned = row.tuned
        if tuned.judge_mean is None:
            continue
        key = classify_keywords(row.prompt) or f"test:{row.category}"
        scores[key].append(tuned.judge_mean)
        texts.setdefault(key, row.prompt)
        for c, v in (tuned.judge or {}).items():
            criteria[key][c].append(v.score)
    for key, vals in scores.items():
        mean = sum(vals) / len(vals)
        if mean >= TARGET_SCORE:
            continue
        area = _area(areas, key, *_name_focus(key, rows, texts[key]))
        worst = min(criteria[key].items(), key=lambda kv: sum(kv[1]) / len(kv[1]), default=None)
        weakest = f", weakest on {worst[0]} ({sum(worst[1]) / len(worst[1]):.1f})" if worst else ""
        area.reasons.append(f"the judge scored the tuned answers {mean:.1f}/5{weakest}; the target is 4 or more")
        area.severity = max(area.severity, (TARGET_SCORE - mean) / (TARGET_SCORE - 1))


def _rated(ratings: Sequence[Rating], areas: dict[str, WeakArea], rows: dict[str, CategoryRow]) -> None:
    """The user's own ratings of the tuned model's answers, grouped the same way."""
    by: dict[str, list[int]] = defaultdict(list)
    texts: dict[str, str] = {}
    for r in ratings:
        if r.variant != "tuned":
            continue
        key = classify_keywords(r.prompt) or "test:your prompts"
        by[key].append(r.score)
        texts.setdefault(key, r.prompt)
    for key, vals in by.items():
        mean = sum(vals) / len(vals)
        if mean >= TARGET_SCORE:
            continue
        poor = sum(1 for v in vals if v <= 2)
        area = _area(areas, key, *_name_focus(key, rows, texts[key]))
        area.reasons.append(f"you rated {poor} of {len(vals)} answer{'s' * (len(vals) != 1)} poorly "
                            f"(average {mean:.1f}/5)")
        area.severity = max(area.severity, (TARGET_SCORE - mean) / (TARGET_SCORE - 1))


def _labels(report: EvalReport, areas: dict[str, WeakArea], rows: dict[str, CategoryRow]) -> None:
    """A classifier's labels with a low F1 on the held-out texts."""
    for label, prf in report.held_out("tuned").per_label.items():
        f1 = float(prf.get("f1", 0.0))
        if f1 >= WEAK_F1:
            continue
        area = _area(areas, label, label, rows[label].focus if label in rows else f"a text whose label is '{label}'.")
        area.reasons.append(f"F1 {f1:.2f} on the held-out texts (aim for {WEAK_F1:.1f} or more)")
        area.severity = max(area.severity, (WEAK_F1 - f1) / WEAK_F1)


def _name_focus(key: str, rows: dict[str, CategoryRow], prompt: str) -> tuple[str, str]:
    if key in rows:
        return rows[key].name, rows[key].focus
    if key.startswith("test:"):
        words = key.removeprefix("test:").replace("_", " ")
        return words.capitalize(), f"requests like this one: {prompt}"
    return category_name(key), prompt


def _allocate(areas: list[WeakArea], budget: int) -> None:
    """Split `budget` over the areas by severity, in whole batches where it can, at least one batch each."""
    weights = [max(a.severity, 0.05) for a in areas]
    total = sum(weights)
    for a, w in zip(areas, weights, strict=True):
        a.draft = max(BATCH, round(budget * w / total / BATCH) * BATCH)
    # the weakest area absorbs the rounding so the plan adds up to the budget
    areas[0].draft = max(BATCH, areas[0].draft + budget - sum(a.draft for a in areas))


def plan_round(spec: ProjectSpec, examples: Sequence[Example], *,
               report: EvalReport | Mapping[str, Any] | None = None, ratings: Sequence[Rating] = ()) -> RoundPlan:
    """The next round of the guide's iterative rounds: the weakest areas, each with its reasons and a draft count.

    `report` is RUN_DIR/eval/report.json, as loaded or as its JSON (judge scores per test prompt; a classifier's
    per-label F1), `ratings` what the user rated while trying the model (tools/evaluate/playground.load_ratings),
    and coverage comes from the dataset itself. Fewer than 50 examples is still the foundation round.
    """
    cov = category_coverage(examples, spec)
    rows = {r.key: r for r in cov.rows}
    areas: dict[str, WeakArea] = {}
    if report:
        report = report if isinstance(report, EvalReport) else EvalReport.model_validate(report)
        _judged(report, areas, rows)
        _labels(report, areas, rows)
    _rated(ratings, areas, rows)
    for row in cov.shown():
        if row.needed:
            area = _area(areas, row.key, row.name, row.focus)
            area.reasons.append(f"only {row.count} example{'s' * (row.count != 1)}; the guide asks for "
                                f"{row.target[0]}–{row.target[1]}")
            area.severity = max(area.severity, row.needed / row.target[0])
    n = len(examples)
    kind: Round = "foundation" if n < ROUNDS["foundation"][0] else "weak areas" if areas else "polish"
    low, high = ROUNDS[kind]
    if kind == "foundation":
        budget = ROUNDS["foundation"][0] - n
    elif kind == "weak areas":
        budget = min(high, max(low, sum(max(rows[a.key].needed if a.key in rows else 0, 2 * BATCH)
                                        for a in areas.values())))
    else:
        budget = low
    if not areas:
        # nothing below target: polish the categories with the fewest examples
        for row in sorted(cov.shown(), key=lambda r: (r.count, r.name))[:MAX_AREAS]:
            _area(areas, row.key, row.name, row.focus).reasons.append(
                f"{row.count} examples, on target; a few more keep it sharp")
    chosen = sorted(areas.values(), key=lambda a: (-a.severity, a.name))[:MAX_AREAS]
    if chosen:
        _allocate(chosen, budget)
    return RoundPlan(round=kind, total=sum(a.draft for a in chosen), areas=chosen)
