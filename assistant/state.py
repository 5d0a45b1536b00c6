"""The wizard's state: data only, one docstring per field."""

from __future__ import annotations

from typing import Any, TypedDict


class WizardState(TypedDict, total=False):
    """What the graph remembers for one conversation (checkpointed after every node)."""

    spec: dict[str, Any]
    """The project spec so far (a tools.project.ProjectSpec as a dict)."""

    llm_ok: bool
    """Whether the assistant model answers; False means the wizard runs as a guided form."""

    llm_note: str
    """Why the assistant model is not available, in plain words with the fix."""

    model_missing: bool
    """Ollama runs but the assistant model is not pulled (the wizard offers the download)."""

    asked: str
    """The spec slot the last question was about."""

    answer: str
    """The user's answer to the last question."""

    asked_slots: list[str]
    """Slots asked at least once (optional ones are asked once, then left)."""

    attempts: dict[str, int]
    """How many times each slot was asked (the second time is a follow-up)."""

    force_slot: str
    """A slot the user chose to change at confirmation; asked next even if filled."""

    confirmed: bool
    """The user confirmed the spec."""

    spec_path: str
    """Where the confirmed spec was saved."""

    data_choice: str
    """The last choice made in the dataset and training stages (upload, sample, draft, fix, start …)."""

    data_path: str
    """The dataset file the project trains on (inside the project folder; uploads are copied there)."""

    data_ok: bool
    """The last check found no errors."""

    data_errors: int
    """How many errors the last check found."""

    drafts: list[dict[str, Any]]
    """Examples the assistant drafted, waiting for keep / drop."""

    draft_index: int
    """Which draft is being reviewed."""

    train_model: str
    """The base model the run trains (catalog key, Hugging Face id, folder, tiny-random or minilm)."""

    base_missing: bool
    """The chosen base model's weights are not on this machine (the wizard offers the download)."""

    base_offer: dict[str, Any]
    """What downloading the base takes: repo, size in bytes, cache folder, gated, or why the Hub is away."""

    run_dir: str
    """The run folder of the training job."""

    train_outcome: dict[str, Any]
    """How the run ended: status (done / stopped / failed), message, fix."""

    evaluated: bool
    """The finished run was compared with its base in this conversation."""

    exported_name: str
    """The Ollama model this conversation created from the run (a real export, not a dry run)."""

    checked_export: bool
    """The exported model was evaluated as Ollama serves it."""

    score_index: int
    """Which of the tuned model's answers the user is scoring."""

    score_criterion: int
    """Which rubric criterion of that answer is being scored."""

    scored_all: bool
    """Every answer picked for scoring has its scores."""
