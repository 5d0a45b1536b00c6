"""Rubric judging: an Ollama model scores each answer 1-5 per criterion, blinded and one answer at a time.

The judge is optional and fallible: every call is bounded in tokens and time, a judgement that makes no sense
(scores without reasons, a copy of the answer, a loop) is left out and counted with its reason, and a judge that
keeps failing is stopped. Nothing a judge does ends the evaluation.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.errors import LLMTimeout, ModelNotPulled, MTWError, OllamaUnavailable, StructuredOutputError
from tools.evaluate.suite import STRUCTURE_WORDS, TestPrompt
from tools.llm_protocol import StructuredLLM

CRITERIA = ("accuracy", "format", "relevance", "completeness", "tone")
T = TypeVar("T", bound=BaseModel)
JUSTIFICATION_CHARS = 300
"""One or two sentences; the schema caps it, so constrained decoding cannot loop inside a justification."""
NUM_PREDICT = len(CRITERIA) * (JUSTIFICATION_CHARS // 3 + 25)
"""Tokens a full reply can need: five justifications at ~3 characters a token, plus the JSON around them."""
TIMEOUT_S = 120.0
"""One judgement on a small model on a busy CPU takes well under this; a judge slower than this is stuck."""
FAILURES_IN_A_ROW = 3
"""After this many failed judgements in a row the judge is not asked again: it would only add waiting."""


class CriterionScore(BaseModel):
    """One criterion's score and the reason for it."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, description="1 = poor, 3 = acceptable, 5 = excellent")
    justification: str = Field(min_length=1, max_length=JUSTIFICATION_CHARS,
                               description="One or two sentences on why this score")


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
    if p.structure:
        parts.append(f"Expected structure: {' and '.join(STRUCTURE_WORDS[k] for k in p.structure)}.")
    parts.append(f"Answer to score:\n<<<\n{answer}\n>>>")
    return "\n\n".join(parts)


class OllamaStructured:
    """StructuredLLM over the user's Ollama: `format=` the JSON schema (constrained decoding), one re-ask.

    Every call is bounded: `num_predict` tokens (sized to the rubric's schema) and `timeout` seconds.
    """

    def __init__(self, model: str, *, retries: int = 1, options: dict[str, Any] | None = None,
                 timeout: float | None = None) -> None:
        self.model = model
        self.retries = retries
        # read when made, not when defined: tests (and a slower machine) set the module's TIMEOUT_S
        self.timeout = TIMEOUT_S if timeout is None else timeout
        # greedy and a fixed seed: the same answer gets the same score on a re-run
        self.options = options or {"temperature": 0, "seed": 0, "num_predict": NUM_PREDICT}

    def structured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """Ask until the reply validates against `schema`; StructuredOutputError after the retries."""
        import httpx
        import ollama

        from tools import ollama_api

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        last = ""
        client = ollama_api.client(timeout=self.timeout)
        for _ in range(self.retries + 1):
            try:
                reply = client.chat(model=self.model, messages=messages, stream=False,
                                    format=schema.model_json_schema(), options=self.options)
            except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
                raise ollama_api.translate(exc, self.model) from exc
            content = reply.message.content or ""
            try:
                return schema.model_validate_json(content)
            except ValidationError as exc:
                last = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
                messages += [{"role": "assistant", "content": content[:2000]},
                             {"role": "user", "content": f"That did not fit the required JSON shape ({last}). "
                                                         "Answer again with only the JSON object."}]
        raise StructuredOutputError(f"The judge model '{self.model}' did not return valid scores ({last}).",
                                    "Use a larger judge model.")


NO_REASONS = "it gave scores without reasons"
COPIED = "it copied the text it was judging instead of judging it"
LOOPING = "it repeated itself"
BAD_SHAPE = "its reply did not fit the scoring form"
_WORD = re.compile(r"[^\W\d_]{3,}")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _shingles(words: list[str], n: int = 5) -> set[tuple[str, ...]]:
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


def _copied(text: str, source: str) -> bool:
    """The justification is a piece of the source, or most of its 5-word runs are the source's: a copy, not a reason."""
    words = _words(text)
    if len(" ".join(words)) >= 20 and " ".join(words) in " ".join(_words(source)):
        return True
    if len(words) < 8:
        return False
    mine = _shingles(words)
    return len(mine & _shingles(_words(source))) >= 0.6 * len(mine)


def _loops(text: str) -> bool:
    """A justification that is one phrase said over and over."""
    words = _words(text)
    return len(words) >= 12 and len(set(words)) < 0.4 * len(words)


def nonsense(r: RubricScores, answer: str, request: str) -> str | None:
    """Why this judgement cannot be trusted (completes "left out because …"), or None when it reads as a judgement.

    Scores without reasons ("5", "1.1.1.2.3.4"), a perfect score on every criterion with no more than a word or
    two of reason, a justification that copies the answer or the request, or one that loops.
    """
    texts = [getattr(r, c).justification.strip() for c in CRITERIA]
    if any(not _WORD.search(t) for t in texts):
        return NO_REASONS
    if all(s == 5 for s in r.scores().values()) and all(len(_WORD.findall(t)) < 3 for t in texts):
        return NO_REASONS
    if any(_copied(t, answer) or _copied(t, request) for t in texts):
        return COPIED
    if any(_loops(t) for t in texts):
        return LOOPING
    return None


def score_answer(llm: StructuredLLM, p: TestPrompt, answer: str) -> RubricScores:
    """Score one answer on its own (no other answer in view, so its position cannot sway the judge)."""
    return llm.structured(judge_prompt(p, answer), RubricScores, system=SYSTEM)


@dataclass
class Judgements:
    """What the judge said: the scores kept, and for every answer left out, why."""

    scores: dict[tuple[str, str], RubricScores] = field(default_factory=dict)
    left_out: dict[tuple[str, str], str] = field(default_factory=dict)
    """(prompt id, variant) → why its scores were left out (completes "left out because …")."""

    def reasons(self) -> dict[str, int]:
        """Reason → how many answers it left out, commonest first."""
        return dict(Counter(self.left_out.values()).most_common())


def _failure(exc: MTWError) -> str:
    if isinstance(exc, LLMTimeout):
        return "it did not reply in time"
    if isinstance(exc, StructuredOutputError):
        return BAD_SHAPE
    if isinstance(exc, ModelNotPulled):
        return "the judge model is not in Ollama"
    if isinstance(exc, OllamaUnavailable):
        return "Ollama did not answer"
    return f"the judge failed ({exc.message})"


def score_all(llm: StructuredLLM, items: list[tuple[TestPrompt, dict[str, str]]], *, seed: int = 0,
              progress: Callable[[str, int, int], None] | None = None) -> Judgements:
    """Score every (prompt, variant) answer separately and blinded, in a shuffled order; never raises for the judge.

    Each request holds one answer and never names the model behind it; the order is shuffled (seeded) so
    neither variant is always judged first if the judge drifts over a session. A failed or nonsensical
    judgement is left out with its reason; after FAILURES_IN_A_ROW failures (or at once when Ollama or the
    judge model is missing) the remaining answers are left out too, unasked.
    """
    jobs = [(p, variant, text) for p, answers in items for variant, text in answers.items()]
    random.Random(seed).shuffle(jobs)
    out = Judgements()
    failed, given_up = 0, ""
    for i, (p, variant, text) in enumerate(jobs):
        if progress is not None:
            progress("judging", i, len(jobs))
        key = (p.id, variant)
        if given_up:
            out.left_out[key] = given_up
            continue
        try:
            scores = score_answer(llm, p, text)
        except MTWError as exc:
            out.left_out[key] = _failure(exc)
            failed += 1
            if isinstance(exc, OllamaUnavailable | ModelNotPulled):
                given_up = out.left_out[key]
            elif failed >= FAILURES_IN_A_ROW:
                given_up = f"the judge failed {failed} times in a row, so it was not asked again"
            continue
        why = nonsense(scores, text, p.prompt)
        if why:
            out.left_out[key] = why
            failed += 1
            if failed >= FAILURES_IN_A_ROW:
                given_up = f"the judge failed {failed} times in a row, so it was not asked again"
            continue
        failed = 0
        out.scores[key] = scores
    if progress is not None:
        progress("judging", len(jobs), len(jobs))
    return out
