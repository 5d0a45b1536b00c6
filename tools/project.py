"""A project: what the user wants their model to do (the interview's answers), saved in MTW_HOME."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.db import connect
from tools.errors import UsageError, WorkspaceError
from tools.fileio import atomic_write_json
from tools.settings import get_settings
from tools.vocabulary import DEFAULT_PRESET, PresetName

TaskType = Literal["generation", "classification", "entity_extraction"]
TASK_TYPES: tuple[TaskType, ...] = ("generation", "classification", "entity_extraction")


DEFAULT_BASE = "phi4-mini"
"""The guide's base. A project that keeps it gets the best base for the machine it trains on
(tools/train/recommend.py: phi-4-mini where it fits and trains in time, a smaller one otherwise)."""


class ProjectSpec(BaseModel):
    """What the model is for; drives drafting, training presets, evaluation and the Modelfile."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", description="Short project name, e.g. 'PM user stories'.")
    purpose: str = Field(default="", description="What the model is for, in the user's words.")
    task_type: TaskType | None = Field(default=None, description="generation, classification or entity_extraction.")
    audience: str = Field(default="", description="Who reads the model's output.")
    house_style: str = Field(default="", description="Tone, structure and length the output should have.")
    samples: list[str] = Field(default_factory=list, description="Real samples of the user's own writing.")
    never_do: list[str] = Field(default_factory=list, description="Things the model must never do.")
    labels: list[str] = Field(default_factory=list, description="Class names (classification only).")
    entity_types: list[str] = Field(default_factory=list, description="Entity kinds (entity extraction only).")
    base_model: str = Field(default=DEFAULT_BASE, description="Catalog key, Hugging Face id or local folder; the "
                                                              "guide's base means 'the best for this machine'.")
    preset: PresetName = DEFAULT_PRESET

    def missing(self) -> list[str]:
        """The slots the interview still has to fill, in the order it asks them."""
        gaps = [f for f in ("purpose", "task_type", "audience", "house_style") if not getattr(self, f)]
        if self.task_type == "classification" and not self.labels:
            gaps.append("labels")
        if self.task_type == "entity_extraction" and not self.entity_types:
            gaps.append("entity_types")
        return gaps


def slugify(name: str) -> str:
    """A folder-safe id for a project name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "project"


def project_dir(slug: str) -> Path:
    """The folder of one project in MTW_HOME."""
    return get_settings().projects_dir / slug


def _ensure_table() -> None:
    with connect() as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS projects (slug TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "spec_path TEXT NOT NULL, thread_id TEXT, created TEXT NOT NULL, updated TEXT NOT NULL)"
        )


def save_spec(spec: ProjectSpec, thread_id: str | None = None) -> Path:
    """Save the spec atomically as projects/<slug>/spec.json and record the project; returns the path."""
    slug = slugify(spec.name or spec.purpose[:40] or "project")
    path = project_dir(slug) / "spec.json"
    try:
        atomic_write_json(path, spec.model_dump())
    except OSError as exc:
        raise WorkspaceError(f"Could not save the project to {path}: {exc.strerror}.",
                             "Set MTW_HOME to a folder you can write to; your answers are kept in this chat.") from exc
    _ensure_table()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with connect() as db:
        db.execute(
            "INSERT INTO projects (slug, name, spec_path, thread_id, created, updated) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(slug) DO UPDATE SET name=excluded.name, spec_path=excluded.spec_path, "
            "thread_id=COALESCE(excluded.thread_id, projects.thread_id), updated=excluded.updated",
            (slug, spec.name or slug, str(path), thread_id, now, now),
        )
    return path


def load_spec(project: str) -> ProjectSpec:
    """Load a spec by project name/slug (from MTW_HOME) or from a path to a spec JSON file."""
    candidates = [Path(project), Path(project) / "spec.json", project_dir(slugify(project)) / "spec.json"]
    for path in candidates:
        if path.is_file():
            try:
                return ProjectSpec.model_validate(json.loads(path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise UsageError(f"The project spec {path} is not valid: {exc}.",
                                 "Fix the field named above, or redo the interview in the wizard.") from exc
    raise UsageError(f"No project called '{project}' (looked in {get_settings().projects_dir}).",
                     "Give a project name from the wizard, or the path to a spec.json file.")


OPTIONAL_SLOTS = ("samples", "never_do")
LIST_SLOTS = ("samples", "never_do", "labels", "entity_types")
MAX_FIELD_CHARS = 4000
SKIP_WORDS = {"skip", "none", "no", "nothing", "n/a", "-", "nope", "no rules", "none really"}


def next_slot(spec: ProjectSpec, asked: list[str], left_open: list[str] | tuple[str, ...] = ()) -> str | None:
    """The next slot to ask: required gaps first (except those the user chose to leave open), then each optional
    slot once."""
    missing = [m for m in spec.missing() if m not in left_open]
    if missing:
        return missing[0]
    for slot in OPTIONAL_SLOTS:
        if slot not in asked and not getattr(spec, slot):
            return slot
    return None


_WRITES = re.compile(r"\b(generat\w*|writ\w*|draft\w*|stor(y|ies)|emails?|updates?|summar\w*|prds?|"
                     r"replies|reports?|posts?|descriptions?|rewrit\w*|answers?|text)\b")
_WRITE_VERB = re.compile(r"\b(writ\w*|draft\w*|generat\w*|summari[sz]\w*|rewrit\w*|compos\w*|repl(y|ies)|"
                         r"answer\w*|turn\w*)\b")
_PICKS = re.compile(r"classif|label|categor")
_FINDS = re.compile(r"entit|extract")


def parse_task_type(text: str) -> TaskType | None:
    """Map a button value or an answer to the kind question ('it picks a label', 'writes text') to a task type."""
    t = text.lower()
    if _PICKS.search(t):
        return "classification"
    if _FINDS.search(t) or "ner" in t.split():
        return "entity_extraction"
    if _WRITES.search(t):
        return "generation"
    return None


def task_from_purpose(purpose: str) -> TaskType | None:
    """The kind, when the purpose says it beyond doubt ("write user stories…", "sort feedback into labels");
    None otherwise, and the kind question is asked."""
    t = purpose.lower()
    writes, picks, finds = bool(_WRITE_VERB.search(t)), bool(_PICKS.search(t)), bool(_FINDS.search(t))
    if writes + picks + finds != 1:
        return None
    return "generation" if writes else "classification" if picks else "entity_extraction"


_RULE_START = re.compile(r"(?<=[.!])\s+(?=(?:never|don'?t|do not|no|avoid|always|only|must)\b)", re.I)


def split_rules(text: str) -> list[str]:
    """Never-do rules as the user wrote them: one per line (or bullet, or ';'), or one per sentence that starts
    like a rule ("Never … . Don't …"); a comma inside a rule never splits it ("Never invent metrics, dates or
    deadlines" is one rule)."""
    parts = [p for line in re.split(r"[\n;]", text) for p in _RULE_START.split(line)]
    return [p.strip(" -•*\t") for p in parts if p.strip(" -•*\t")]


def split_items(text: str) -> list[str]:
    """Labels or entity types: one per line, ';' or comma ("bug, feature request, question")."""
    return [i.strip(" -•*\t") for i in re.split(r"[\n;]|,", text) if i.strip(" -•*\t")]


def apply_answer(spec: ProjectSpec, slot: str, answer: str) -> ProjectSpec:
    """Guided-form mode (no LLM): put the answer into the slot it was asked for, as typed.

    'skip', 'none' and 'not sure' fill nothing: an answer the user does not have is never stored as one.
    """
    from tools.sense import unsure

    text = answer.strip()[:MAX_FIELD_CHARS]
    if not text or text.lower().strip(" .!") in SKIP_WORDS or unsure(text):
        return spec
    if slot == "task_type":
        return spec.model_copy(update={"task_type": parse_task_type(text)})
    if slot in LIST_SLOTS:
        items = [text] if slot == "samples" else split_rules(text) if slot == "never_do" else split_items(text)
        return spec.model_copy(update={slot: [i for i in items if i]})
    if slot in ProjectSpec.model_fields:
        return spec.model_copy(update={slot: text})
    return spec


_NAME_BREAK = frozenset("from into for with to of about by and that which who so in on at as the a an like when while "
                        "using".split())


def short_name(purpose: str, words: int = 5) -> str:
    """A project name from its purpose: the whole of a short one, else up to a natural break ("Write user stories"
    for "write user stories from one-line feature ideas"), never a phrase cut in the middle ("… feature idea into")."""
    if len(purpose.split()) <= words + 1:
        name = purpose.strip().strip(".,;:!?")
        return name[:1].upper() + name[1:]
    picked: list[str] = []
    for word in purpose.strip().split():
        bare = word.strip(".,;:!?()\"'“”").lower()
        if len(picked) >= 2 and bare in _NAME_BREAK:
            break
        picked.append(word.strip(".,;:!?()\"“”"))
        if len(picked) >= words or word.endswith((",", ".", ";", ":")):
            break
    while len(picked) > 1 and picked[-1].lower() in _NAME_BREAK:
        picked.pop()
    name = " ".join(picked).strip()
    return name[:1].upper() + name[1:] if name else ""


def describe(spec: ProjectSpec) -> str:
    """The spec as a short Markdown summary for confirmation."""
    kinds = {"generation": "writes text", "classification": "picks a label", "entity_extraction": "finds entities"}
    rows = [
        ("Name", spec.name or "—"),
        ("What it does", spec.purpose or "—"),
        ("Kind", kinds.get(spec.task_type or "", "—")),
        ("Audience", spec.audience or "—"),
        ("House style", spec.house_style or "—"),
    ]
    if spec.labels:
        rows.append(("Labels", ", ".join(spec.labels)))
    if spec.entity_types:
        rows.append(("Entities", ", ".join(spec.entity_types)))
    rows.append(("Samples", f"{len(spec.samples)} pasted" if spec.samples else "none"))
    rows.append(("Never", "; ".join(spec.never_do) if spec.never_do else "no rules"))
    return "\n".join(f"- **{k}:** {v}" for k, v in rows)


def project_owner(name: str) -> tuple[bool, str | None]:
    """Whether a project of this name is saved already, and the chat thread that made it (None if unknown)."""
    slug = slugify(name)
    if not (project_dir(slug) / "spec.json").is_file():
        return False, None
    _ensure_table()
    with connect() as db:
        row = db.execute("SELECT thread_id FROM projects WHERE slug = ?", (slug,)).fetchone()
    return True, (row[0] if row else None)
