"""Rubric judging: an Ollama model scores each answer 1-5 per criterion, blinded and one answer at a time."""

from __future__ import annotations

import random
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.errors import StructuredOutputError
from tools.evaluate.suite import TestPrompt
from tools.llm_protocol import StructuredLLM

CRITERIA = ("accuracy", "format", "relevance", "completeness", "tone")
T = TypeVar("T", bound=BaseModel)


class CriterionScore(BaseModel):
    """One criterion's score and the reason for it."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, description="1 = poor, 3 = acceptable, 5 = excellent")
    justification: str = Field(min_length=1, description="One or two sentences on why this score")


class RubricScores(BaseModel):
    """The judge's verdict on one answer: 1-5 on each rubric criterion, each with its justification."""

    model_config = ConfigDict(extra="forbid")

    accuracy: CriterionScore
    format: CriterionScore
    relevance: CriterionScore
    completeness: CriterionScore
    tone: CriterionScore

    def scores(self) -> dict[str, int]:
        """Criterion → score."""
        return {c: getattr(self, c).score for c in CRITERIA}

    def mean(self) -> float:
        """Average over the five criteria."""
        return sum(self.scores().values()) / len(CRITERIA)


SYSTEM = (
    "You review answers written for product managers. Score the ONE answer you are shown on five criteria, "
    "each from 1 (poor) to 5 (excellent), with a one-sentence justification: accuracy (facts and reasoning are "
    "right), format (the structure the request asks for, e.g. a user story has 'As a / I want / So that' and "
    "acceptance criteria), relevance (answers this request, not another), completeness (covers what was asked), "
    "tone (clear, professional, fits the audience). Judge only the text; length alone is not quality."
)


def judge_prompt(p: TestPrompt, answer: str) -> str:
    """The request, what a good answer needs, and the single answer to score (nothing says who wrote it)."""
    parts = [f"Request:\n{p.prompt}"]
    if p.reference:
        parts.append(f"A reference answer (for comparison; other wordings can be just as good):\n{p.reference}")
    if p.format == "user_story":
        parts.append("Expected format: a user story (As a / I want / So that) with acceptance criteria.")
    elif p.format == "list":
        parts.append(f"Expected format: a list of {p.list_items or 3} items.")
    elif p.format == "update":
        parts.append("Expected format: a short stakeholder update naming the situation, impact and next steps.")
    parts.append(f"Answer to score:\n<<<\n{answer}\n>>>")
    return "\n\n".join(parts)


class OllamaStructured:
    """StructuredLLM over the user's Ollama: `format=` the JSON schema (constrained decoding), one re-ask."""

    def __init__(self, model: str, *, retries: int = 1, options: dict[str, Any] | None = None) -> None:
        self.model = model
        self.retries = retries
        # greedy and a fixed seed: the same answer gets the same score on a re-run
        self.options = options or {"temperature": 0, "seed": 0}

    def structured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """Ask until the reply validates against `schema`; StructuredOutputError after the retries."""
        import httpx
        import ollama

        from tools import ollama_api

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        last = ""
        for _ in range(self.retries + 1):
            try:
                reply = ollama_api.client().chat(model=self.model, messages=messages, stream=False,
                                                 format=schema.model_json_schema(), options=self.options)
            except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
                raise ollama_api.translate(exc, self.model) from exc
            content = reply.message.content or ""
            try:
                return schema.model_validate_json(content)
            except ValidationError as exc:
                last = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
                messages += [{"role": "assistant", "content": content},
                             {"role": "user", "content": f"That did not fit the required JSON shape ({last}). "
                                                         "Answer again with only the JSON object."}]
        raise StructuredOutputError(
            f"The judge model '{self.model}' did not return valid scores ({last}).",
            "Try a larger judge model (e.g. `--judge qwen2.5:7b`), or score the answers yourself in the UI.",
        )


def score_answer(llm: StructuredLLM, p: TestPrompt, answer: str) -> RubricScores:
    """Score one answer on its own (no other answer in view, so its position cannot sway the judge)."""
    return llm.structured(judge_prompt(p, answer), RubricScores, system=SYSTEM)


def score_all(llm: StructuredLLM, items: list[tuple[TestPrompt, dict[str, str]]], *, seed: int = 0
              ) -> dict[tuple[str, str], RubricScores]:
    """Score every (prompt, variant) answer separately and blinded, in a shuffled order.

    Each request holds one answer and never names the model behind it; the order is shuffled (seeded) so
    neither variant is always judged first if the judge drifts over a session.
    """
    jobs = [(p, variant, text) for p, answers in items for variant, text in answers.items()]
    random.Random(seed).shuffle(jobs)
    return {(p.id, variant): score_answer(llm, p, text) for p, variant, text in jobs}
