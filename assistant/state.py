"""The wizard's state: data only, one docstring per field."""

from __future__ import annotations

from typing import Any, TypedDict


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

    table_back: str
    """Where "Go on" at the dataset table returns to."""

    opened: str
    """The id of the dataset example opened from the table."""

    document: dict[str, Any]
    """The document being drafted from: path (kept in the project), name, passages, next, include_flagged."""

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

    evaluated: bool
    """The finished run was compared with its base in this conversation."""

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

    models_action: str
    """What "My models" is doing: compare, promote or delete."""

    models_picked: list[str]
    """The registered models picked for that action so far."""

    comparing: list[str]
    """Two registered models shown side by side (after a comparison: the better one first)."""

    round_areas: list[dict[str, Any]]
    """The weak areas of the next round still to draft for (tools.improve.WeakArea as dicts), weakest first."""

    checked_export: bool
    """The exported model was evaluated as Ollama serves it."""

    score_index: int
    """Which of the tuned model's answers the user is scoring."""

    score_criterion: int
    """Which rubric criterion of that answer is being scored."""

    score_prompts: int
    """How many answers are being scored."""
