"""RUN_DIR/eval/report.json as a typed model, and its one loader (the registry, the next round and the chat read it).

The keys are the ones tools/evaluate/run.build_report writes. Every field has a default and unknown keys are kept:
a report written by an older version loads, with what it lacks left empty, as the readers always treated it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Loose(BaseModel):
    # a report is our own output, read back: keys this version does not know are kept, never refused
    model_config = ConfigDict(extra="allow")


class JudgeScore(_Loose):
    """The judge's score of one answer on one criterion (accuracy, format, relevance, completeness, tone)."""

    score: int


class Answer(_Loose):
    """One model's answer to a test prompt, with its checks and the judge's scores."""

    answer: str = ""
    stopped: bool | None = None
    """It ended by itself rather than at the token cap."""
    format_ok: bool | None = None
    judge: dict[str, JudgeScore] | None = None
    """Criterion → score; None without a judge, or when the judge's scores were left out."""
    judge_mean: float | None = None
    judge_left_out: str | None = None
    """Why the judge's scores for this answer were left out."""


class PromptRow(_Loose):
    """One test prompt, answered by the base and the tuned model."""

    id: str = ""
    category: str = "other"
    prompt: str = ""
    base: Answer = Answer()
    tuned: Answer = Answer()


class HeldOut(_Loose):
    """One model's numbers on the held-out validation rows (loss; a classifier's accuracy, per-label F1, matrix)."""

    accuracy: float | None = None
    labels: list[str] = []
    confusion: list[list[int]] = []
    per_label: dict[str, dict[str, float]] = {}
    """Label → precision / recall / f1."""


class EvalReport(_Loose):
    """The evaluation of one run: base vs tuned, in numbers and side by side, and the verdict in words."""

    run_dir: str = ""
    model: str = ""
    task: str = "causal"
    data: str | None = None
    judge_model: str | None = None
    base_source: str = "local"
    tuned_source: str = "local"
    """Where the tuned answers came from: "local" or "ollama:NAME"."""
    generation: dict[str, Any] | None = None
    created: str = ""
    training: dict[str, Any] = {}
    heldout: dict[str, Any] = {}
    """"base" / "tuned" (see held_out()), and a classifier's "majority" baseline."""
    summary: dict[str, Any] | None = None
    prompts: list[PromptRow] = []
    judge_left_out: dict[str, Any] | None = None
    """{"n", "of", "reasons"} when the judge's scores were left out for some answers."""
    diagnoses: list[dict[str, Any]] = []
    agreement: dict[str, Any] | None = None
    verdict: str = ""
    notes: list[str] = []
    charts: dict[str, str] = {}
    """Chart name → file name in the report's folder."""

    def held_out(self, variant: str) -> HeldOut:
        """The base's or the tuned model's held-out numbers (empty when the run kept no validation rows)."""
        return HeldOut.model_validate(self.heldout.get(variant) or {})

    def answered(self) -> list[PromptRow]:
        """The test prompts both models answered (an empty answer has nothing to compare)."""
        return [p for p in self.prompts if p.base.answer and p.tuned.answer]

    def as_json(self) -> dict[str, Any]:
        """The report as its file holds it: only the keys it was read with, in that file's shape."""
        return self.model_dump(mode="json", exclude_unset=True)


def report_path(run_dir: str | Path) -> Path:
    """Where a run's evaluation is saved (an Ollama model's own evaluation is in eval/ollama/NAME/)."""
    return Path(run_dir) / "eval" / "report.json"


def load_report(run_dir: str | Path) -> EvalReport | None:
    """The run's saved evaluation; None when it has not been evaluated.

    Raises ValueError (a pydantic ValidationError is one) when the file is not a report.
    """
    path = report_path(run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return EvalReport.model_validate_json(text)
