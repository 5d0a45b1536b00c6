"""Judgements given in the chat ("which is better?", 👍 / 👎, the answer the user wanted), kept as preference data.

They live in the project's own judgement store: a DatasetStore beside the examples' one, so every judgement is
journaled the moment it is given and a preference round trains on an immutable version named by its content
hash, checked like any dataset (duplicates, contradicting judgements, private data). Each judgement keeps its
prompt, its answer(s) and the model that wrote each.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.dataset.judgements import MIN_JUDGEMENTS, RECOMMENDED_JUDGEMENTS
from tools.dataset.model import Example, Message
from tools.dataset.store import DatasetStore, Version
from tools.errors import UsageError
from tools.project import project_dir, slugify

STARS_GOOD, STARS_BAD = 4, 2
"""A star rating counts as a judgement at 4–5 (good) or 1–2 (bad); 3 says neither."""


def judgement_store(project: str) -> DatasetStore:
    """The project's judgements: MTW_HOME/projects/<project>/judgements (versions, journal)."""
    return DatasetStore(project, root=project_dir(slugify(project)) / "judgements")


def _prompt(prompt: str, system: str | None) -> list[Message]:
    return ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=prompt)]


def pair(prompt: str, chosen: str, rejected: str, *, chosen_by: str, rejected_by: str,
         system: str | None = None) -> Example:
    """"This answer is better than that one", as a preference row."""
    if not prompt.strip() or not chosen.strip() or not rejected.strip():
        raise UsageError("A judgement needs the prompt and both answers.", "Ask the model again, then pick.")
    return Example(messages=[*_prompt(prompt, system), Message(role="assistant", content=chosen)],
                   rejected=[Message(role="assistant", content=rejected)],
                   models={"chosen": chosen_by, "rejected": rejected_by})


def single(prompt: str, answer: str, good: bool, *, by: str, system: str | None = None) -> Example:
    """A thumb up (good) or down on one answer, as a preference row."""
    if not prompt.strip() or not answer.strip():
        raise UsageError("A rating needs the prompt and its answer.", "Ask the model again, then rate it.")
    return Example(messages=[*_prompt(prompt, system), Message(role="assistant", content=answer)], desirable=good,
                   models={"answer": by})


def from_rating(prompt: str, answer: str, rating: int | str, *, by: str) -> Example | None:
    """A Try-it rating (up / down or 1–5 stars) as a judgement; None for a middling 3."""
    value = str(rating).strip().lower()
    if value in ("up", "down"):
        return single(prompt, answer, value == "up", by=by)
    stars = int(value)
    if stars >= STARS_GOOD or stars <= STARS_BAD:
        return single(prompt, answer, stars >= STARS_GOOD, by=by)
    return None


@dataclass(frozen=True)
class Tally:
    """How many judgements a project holds, and what a round on them would be."""

    pairs: int
    singles: int

    @property
    def total(self) -> int:
        return self.pairs + self.singles

    @property
    def method(self) -> str:
        """dpo on pairs alone; kto once single ratings are among them (it learns from both)."""
        return "kto" if self.singles else "dpo"

    def shortfall(self) -> str:
        """One sentence when there are too few judgements for a round, saying how many more help; "" if enough."""
        if self.total >= MIN_JUDGEMENTS:
            return ""
        given = f"{self.total} judgement{'s' * (self.total != 1)}" if self.total else "no judgements yet"
        return (f"You have given {given}; a preference round needs at least {MIN_JUDGEMENTS}, so "
                f"{MIN_JUDGEMENTS - self.total} more would let it start (about {RECOMMENDED_JUDGEMENTS} make its "
                "effect reliable).")


def tally(store: DatasetStore) -> Tally:
    """The judgements in the store's working copy, by kind."""
    prefs = [p for p in (ex.preference() for ex in store.examples()) if p is not None]
    return Tally(pairs=sum(p.paired for p in prefs), singles=sum(not p.paired for p in prefs))


def training_version(store: DatasetStore, note: str) -> Version:
    """The judgements so far saved as a version to train on (the same judgements give the same version)."""
    if not store.examples():
        raise UsageError("There are no judgements to train on yet.",
                         "Rate answers in Try it (👍 / 👎, or which of two is better) first.")
    return store.save(note)
