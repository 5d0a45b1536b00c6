"""The wizard's state: data, one docstring per field, and the typed accessors its nodes read it through.

The conversation's own fields (the open question, the reply, the spec) are top-level; each stage keeps its fields in
its own sub-state (`state["train"]["run_dir"]`). A node's update may name a sub-state with only the fields it
changes — `{"train": {"run_dir": ...}}` — and `merge` keeps the others; `nest` files flat field names under their
stage (updates written flat, and conversations checkpointed before the sub-states: assistant.checkpoints).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any, TypedDict, TypeVar

from tools.project import ProjectSpec

log = logging.getLogger(__name__)


class InterviewState(TypedDict, total=False):
    """The interview: which slots were asked, and where the confirmed spec was saved."""

    asked_slots: list[str]
    """Slots asked at least once (optional ones are asked once, then left)."""

    attempts: dict[str, int]
    """How many times each slot was asked (the second time is a follow-up)."""

    left_open: list[str]
    """Required slots the user chose to leave open ("skip", or "not sure" twice): not asked again."""

    force_slot: str
    """A slot the user chose to change at confirmation; asked next even if filled."""

    spec_path: str
    """Where the confirmed spec was saved."""


class DatasetState(TypedDict, total=False):
    """The dataset: the file the project trains on, its last check, the table and a document drafted from."""

    adding: bool
    """The next upload adds to the current dataset instead of replacing it."""

    data_path: str
    """The dataset file the project trains on (inside the project folder; uploads are copied there)."""

    data_ok: bool
    """The last check found no errors."""

    data_errors: int
    """How many errors the last check found."""

    too_few: bool
    """The only errors of the last check are too few examples."""

    data_examples: int
    """How many examples the last check read."""

    table_back: str
    """Where "Go on" at the dataset table returns to."""

    opened: str
    """The id of the dataset example opened from the table."""

    document: dict[str, Any]
    """The document being drafted from: path (kept in the project), name, passages, next, include_flagged."""


class DraftingState(TypedDict, total=False):
    """Drafting examples: the drafts under review, what they are about, the next round's weak areas."""

    drafts: list[dict[str, Any]]
    """Examples the assistant drafted, waiting for keep / drop."""

    better_model: str
    """The bigger assistant model offered when drafting failed (pulled and used from the next message on)."""

    draft_index: int
    """Which draft is being reviewed."""

    draft_sources: list[dict[str, Any]]
    """For each draft, the passage it was written from ({label, text}), or {} for drafts from the spec."""

    draft_focus: dict[str, Any]
    """What the next batch of drafts is about ({label, focus, n}: a thin category or a weak area); {} = anything."""

    nudge: dict[str, Any]
    """The coverage nudge shown last ({text, label, focus, n}): a click drafts for its category."""

    editing: dict[str, Any]
    """The example being edited as text: {"id": a dataset example id} or {"draft": index of a draft}."""

    round_areas: list[dict[str, Any]]
    """The weak areas of the next round still to draft for (tools.improve.WeakArea as dicts), weakest first."""


class TrainState(TypedDict, total=False):
    """Training: the base, the changed settings, the plan and the run."""

    train_model: str
    """The base model the run trains (catalog key, Hugging Face id, folder, tiny-random or minilm)."""

    train_sets: dict[str, str]
    """Settings the user changed (TrainConfig `--set` values, max_steps too); applied to the plan and the run."""

    preset: str
    """The preset the user chose by talking; empty = the project's preset."""

    plan_changed: str
    """What the last setting change changed, in words, shown with the next plan."""

    base_offer: dict[str, Any]
    """What downloading the base takes: repo, size in bytes, cache folder, gated, or why the Hub is away."""

    run_dir: str
    """The run folder of the training job."""

    events_since: int
    """Where in events.jsonl the current attempt of the run starts (a resumed run appends to the same file)."""

    train_outcome: dict[str, Any]
    """How the run ended (tools.jobs.run_outcome): status, step, message, fix_text, fix_sets, resumable …"""


class EvaluateState(TypedDict, total=False):
    """Evaluating: the comparison with the base, the scores, and "My models"."""

    evaluated: bool
    """The finished run was compared with its base in this conversation."""

    checked_export: bool
    """The exported model was evaluated as Ollama serves it."""

    score_index: int
    """Which of the tuned model's answers the user is scoring."""

    score_criterion: int
    """Which rubric criterion of that answer is being scored."""

    score_prompts: int
    """How many answers are being scored."""

    models_action: str
    """What "My models" is doing: compare, promote or delete."""

    models_picked: list[str]
    """The registered models picked for that action so far."""

    comparing: list[str]
    """Two registered models shown side by side (after a comparison: the better one first)."""


class DeployState(TypedDict, total=False):
    """Deploying: the Ollama model made from the run (exported or the quick path's)."""

    exported_name: str
    """The Ollama model this conversation created from the run (a real export, not a dry run)."""

    export_name: str
    """The name an export waiting for Ollama will use."""

    export_suggested: str
    """The name suggested for the export (the registry's next version)."""

    export_quant: str
    """The quantisation chosen for the export: "" (none, as trained), q8_0 or q4_K_M."""

    quick_name: str
    """The styled model the quick path makes (or made) in Ollama."""

    quick_made: bool
    """The quick path created its model in Ollama."""


class PlaygroundState(TypedDict, total=False):
    """Trying the model, and the ratings and preference rounds made from trying it."""

    try_ollama: str
    """The Ollama model "Try it" asks (the quick path's); empty = the export, or the run's adapter here."""

    try_back: str
    """Where "Done trying" returns to."""

    try_last: dict[str, Any]
    """The last answer shown while trying: prompt, answer, which (tuned or base), source; ratings refer to it."""

    try_pair: dict[str, Any]
    """Two answers to one prompt shown while trying ({first, second}, each like try_last): "which is better?"."""

    wanted_for: dict[str, Any]
    """The answer rated down whose better version the user is asked to write (like try_last, plus its judgement
    id)."""

    judge_index: int
    """Which test prompt of the comparison the user is judging (left: base, right: tuned)."""

    pref_from: str
    """The run a preference round started from (its adapter was the round's start and reference)."""


_Sub = TypeVar("_Sub", InterviewState, DatasetState, DraftingState, TrainState, EvaluateState, DeployState,
               PlaygroundState)


def merge(old: _Sub | None, new: _Sub | None) -> _Sub:
    """The reducer of every sub-state: the fields an update names replace theirs, the others stay."""
    return {**(old or {}), **(new or {})}  # type: ignore[return-value]


class WizardState(TypedDict, total=False):
    """What the graph remembers for one conversation (checkpointed after every node)."""

    question: dict[str, Any]
    """The open question (an assistant.ui_events.Question): what `listen` shows and `understand` reads against."""

    qid: int
    """The id of the newest question; clicks carry it, so a click on an older one is ignored."""

    reply: Any
    """What came back at `listen`: typed text, a click {qid, value}, a file {path, name}, a run's {outcome} or
    {ended: run_dir}; or, given at a turn's start while no question was open, {late: any of those, stopped}."""

    intent: dict[str, Any]
    """The reply understood (an assistant.routing.Intent): answer, setting, navigate, question, status …"""

    suggested: str
    """A choice that starts work, suggested by the assistant model's reading; a "yes" confirms it."""

    spec: dict[str, Any]
    """The project spec so far (a tools.project.ProjectSpec as a dict)."""

    llm_ok: bool
    """Whether the assistant model answers; False means the wizard runs as a guided form."""

    llm_note: str
    """Why the assistant model is not available, in plain words with the fix."""

    model_missing: bool
    """Ollama runs but the assistant model is not pulled (the wizard offers the download)."""

    interview: Annotated[InterviewState, merge]
    """The interview: which slots were asked, and where the confirmed spec was saved."""

    dataset: Annotated[DatasetState, merge]
    """The dataset: the file the project trains on, its last check, the table and a document drafted from."""

    drafting: Annotated[DraftingState, merge]
    """Drafting examples: the drafts under review, what they are about, the next round's weak areas."""

    train: Annotated[TrainState, merge]
    """Training: the base, the changed settings, the plan and the run."""

    evaluate: Annotated[EvaluateState, merge]
    """Evaluating: the comparison with the base, the scores, and "My models"."""

    deploy: Annotated[DeployState, merge]
    """Deploying: the Ollama model made from the run (exported or the quick path's)."""

    playground: Annotated[PlaygroundState, merge]
    """Trying the model, and the ratings and preference rounds made from trying it."""


SUBSTATES: dict[str, Any] = {"interview": InterviewState, "dataset": DatasetState, "drafting": DraftingState,
                             "train": TrainState, "evaluate": EvaluateState, "deploy": DeployState,
                             "playground": PlaygroundState}
"""Each stage's sub-state of WizardState, by its key."""

STAGE_OF: dict[str, str] = {field: name for name, sub in SUBSTATES.items() for field in sub.__annotations__}
"""The sub-state each stage field belongs to, by the field's name."""


def nest(update: Mapping[str, Any]) -> dict[str, Any]:
    """An update (or a checkpoint's values) with each stage field filed under its sub-state; sub-states given
    whole merge with the fields named flat; everything else stays as it is."""
    out: dict[str, Any] = {}
    for key, value in update.items():
        if key in STAGE_OF:
            out[STAGE_OF[key]] = {**out.get(STAGE_OF[key], {}), key: value}
        elif key in SUBSTATES:
            out[key] = {**out.get(key, {}), **(value or {})}
        else:
            out[key] = value
    return out


FIELDS = frozenset(WizardState.__annotations__) | frozenset(STAGE_OF)
"""Every name an update may use: the top-level fields, the sub-states, and each stage field by itself."""


def filed(update: Mapping[str, Any]) -> dict[str, Any]:
    """A node's update, nested; a name the state does not have would be dropped by LangGraph without a word, so it
    is logged, and raises where MTW_STRICT_ROUTES is set (the tests)."""
    unknown = sorted(set(update) - FIELDS)
    if unknown:
        message = f"An update names {', '.join(unknown)}, which WizardState does not have; add it to a sub-state."
        if os.environ.get("MTW_STRICT_ROUTES"):
            raise KeyError(message)
        log.warning(message)
    return nest(update)


def flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """The state as one flat dict of fields (the sub-states' fields beside the conversation's own): for reading."""
    out = {key: value for key, value in values.items() if key not in SUBSTATES}
    for name in SUBSTATES:
        out.update(values.get(name) or {})
    return out


def spec_of(state: WizardState) -> ProjectSpec:
    """The project spec so far, typed (empty fields until the interview fills them)."""
    return ProjectSpec(**state.get("spec", {}))


def interview_of(state: WizardState) -> InterviewState:
    """The interview's fields (empty before it starts)."""
    return state.get("interview") or {}


def dataset_of(state: WizardState) -> DatasetState:
    """The dataset stage's fields."""
    return state.get("dataset") or {}


def drafting_of(state: WizardState) -> DraftingState:
    """The drafting fields (drafts under review, focus, weak areas)."""
    return state.get("drafting") or {}


def train_of(state: WizardState) -> TrainState:
    """The training stage's fields (base, settings, run)."""
    return state.get("train") or {}


def evaluate_of(state: WizardState) -> EvaluateState:
    """The evaluation stage's fields (comparison, scores, "My models")."""
    return state.get("evaluate") or {}


def deploy_of(state: WizardState) -> DeployState:
    """The deploy stage's fields (the model made in Ollama)."""
    return state.get("deploy") or {}


def playground_of(state: WizardState) -> PlaygroundState:
    """The fields of trying the model and rating its answers."""
    return state.get("playground") or {}
