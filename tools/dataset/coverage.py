"""Which product-management task kinds a dataset covers: keyword rules first, MiniLM as an optional refinement."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """One PM task kind, the guide's group it belongs to, and the words that give it away."""

    key: str
    name: str
    group: str
    keywords: tuple[str, ...]
    description: str


# groups follow the guide: essential (requirements, planning, communication, analytics) and advanced ones
CATEGORIES: tuple[Category, ...] = (
    Category("user_story", "User stories", "requirements",
             ("user story", "user stories", "acceptance criteria", "as a user", "epic", "backlog item"),
             "Write a user story with acceptance criteria for a feature."),
    Category("prd", "PRDs and specs", "requirements",
             ("prd", "product requirements", "requirements doc", "spec for", "specification", "one-pager",
              "functional requirements"),
             "Draft a product requirements document or feature spec."),
    Category("roadmap", "Roadmaps", "planning",
             ("roadmap", "quarterly plan", "now, next, later", "now/next/later", "release plan", "milestones"),
             "Plan or explain a product roadmap and its milestones."),
    Category("prioritization", "Prioritisation", "planning",
             ("prioritize", "prioritise", "prioritization", "prioritisation", "rice", "moscow", "trade-off",
              "tradeoff", "which should we build first", "technical debt", "tech debt", "urgent requests"),
             "Prioritise features or backlog items with a framework."),
    Category("okr", "OKRs and goals", "planning",
             ("okr", "okrs", "key result", "objectives and key results", "kpi", "kpis", "north star"),
             "Write or review OKRs, KPIs and goals."),
    Category("status_update", "Status updates", "communication",
             ("status update", "weekly update", "progress update", "behind schedule", "delayed", "slipped",
              "on track", "update for stakeholders"),
             "Write a project status update."),
    Category("stakeholder_email", "Stakeholder emails", "communication",
             ("email", "announce", "announcement", "message to", "note to", "reply to", "slack message",
              "executive summary", "memo"),
             "Write an email or message to stakeholders."),
    Category("meeting_notes", "Meeting notes", "communication",
             ("meeting notes", "meeting summary", "action items", "retro", "retrospective", "standup", "agenda",
              "minutes"),
             "Summarise a meeting into notes, decisions and action items."),
    Category("metrics", "Metrics and analytics", "analytics",
             ("metric", "metrics", "analytics", "funnel", "churn", "retention", "conversion", "a/b test",
              "ab test", "experiment", "dashboard", "cohort"),
             "Analyse product metrics, experiments and funnels."),
    Category("competitive_analysis", "Competitive analysis", "analytics",
             ("competitor", "competitors", "competitive", "swot", "market analysis", "compare our", "versus"),
             "Analyse competitors and the market."),
    Category("user_research", "User research", "analytics",
             ("interview", "persona", "survey", "user research", "feedback", "usability", "jobs to be done",
              "jtbd"),
             "Plan or synthesise user research, personas and feedback."),
    Category("go_to_market", "Go-to-market", "go-to-market",
             ("launch", "go-to-market", "gtm", "pricing", "positioning", "release notes", "messaging"),
             "Plan a launch, pricing, positioning or release notes."),
    Category("process", "Process improvement", "process improvement",
             ("process", "onboarding", "workflow", "improve", "bottleneck", "sprint", "velocity"),
             "Improve a team process, onboarding or workflow."),
)
_BY_KEY = {c.key: c for c in CATEGORIES}
# keywords by their first run of letters and digits: a keyword can only start where such a run of the text starts
# (its left edge must be a word edge) and equals it, so each run of the text is looked up once instead of
# searching the text for every keyword
_FIRST_RUN = re.compile(r"[^\W_]+")
_KEYWORDS: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
for _order, _category in enumerate(CATEGORIES):
    for _word in _category.keywords:
        _run = _FIRST_RUN.match(_word.lower())
        assert _run is not None, _word  # every keyword starts with a letter or digit
        _KEYWORDS[_run.group()].append((_word.lower(), _order, _category.key))


def _is_word_edge(text: str, i: int) -> bool:
    return i < 0 or i >= len(text) or not text[i].isalnum()


def classify_keywords(text: str) -> str | None:
    """The PM task kind a request is about, by the earliest / most specific keyword hit; None when none hits."""
    low = text.lower()
    best: tuple[int, int, str] | None = None
    seen: set[str] = set()
    for run in _FIRST_RUN.finditer(low):
        for word, order, key in _KEYWORDS.get(run.group(), ()):
            pos = run.start()
            if word in seen or not low.startswith(word, pos) or not _is_word_edge(low, pos + len(word)):
                continue
            seen.add(word)  # the first place a keyword stands is the one that counts
            # earlier categories in the list are the more specific ones, so they win ties on position
            score = (pos // 40, order, key)
            if best is None or score < best:
                best = score
    return best[2] if best else None


def classify(texts: list[str], *, use_embeddings: bool = False, min_similarity: float = 0.3) -> list[str | None]:
    """Task kind per request: keywords first; with `use_embeddings`, MiniLM places the rest by nearest description."""
    kinds = [classify_keywords(t) for t in texts]
    missing = [i for i, k in enumerate(kinds) if k is None and texts[i].strip()]
    if use_embeddings and missing:
        from tools.embeddings import embed

        centres = embed([c.description for c in CATEGORIES])
        vecs = embed([texts[i] for i in missing])
        sims = vecs @ centres.T
        for row, i in enumerate(missing):
            j = int(sims[row].argmax())
            if float(sims[row, j]) >= min_similarity:
                kinds[i] = CATEGORIES[j].key
    return kinds


def summarise(kinds: list[str | None], method: str = "keywords") -> dict[str, object]:
    """The coverage stats from one task kind (or None) per request."""
    counts = Counter(k for k in kinds if k)
    groups: Counter[str] = Counter()
    for key, n in counts.items():
        groups[_BY_KEY[key].group] += n
    largest = max(counts.values(), default=0)
    thin = sorted(k for k, n in counts.items() if n < max(3, largest // 4))
    return {
        "kinds": {c.key: counts.get(c.key, 0) for c in CATEGORIES},
        "groups": dict(groups),
        "unclassified": sum(1 for k in kinds if k is None),
        "thin": thin,
        "method": method,
    }


def category_name(key: str) -> str:
    """The plain name of a task kind key."""
    return _BY_KEY[key].name
