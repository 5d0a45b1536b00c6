"""The checks only preference data needs: what the file is, pairs whose two answers are the same, and judgements
that contradict each other (A over B on one line, B over A on another; one answer rated both good and bad)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tools.dataset.model import Example, Issue, Message
from tools.dataset.rows import make_issue

MIN_JUDGEMENTS = 10
"""A preference round needs at least this many judgements (the same floor as examples for a first run)."""
RECOMMENDED_JUDGEMENTS = 50
"""About this many judgements make a preference round's effect reliable rather than a nudge."""


def preference_issue(fmt: str, n: int) -> Issue:
    """What a preference file is and how it trains: one note at the top of its report."""
    if fmt == "dpo":
        what = (f"This is preference data (DPO): {n} prompts, each with a chosen and a rejected answer. It teaches "
                "which of two answers is better.")
        fix = ("Train it with mtw train --data FILE --method dpo --from-run RUN_DIR (on top of a run's adapter; "
               "without --from-run it starts from the base model). To fine-tune on the chosen answers only instead: "
               "mtw check FILE --fix chosen.jsonl writes them as ordinary examples.")
    else:
        what = (f"This is preference data (KTO): {n} answers, each labelled desirable (true) or undesirable (false). "
                "It teaches more of the good answers and less of the bad ones.")
        fix = ("Train it with mtw train --data FILE --method kto --from-run RUN_DIR (on top of a run's adapter; "
               "without --from-run it starts from the base model). To fine-tune on the desirable answers only "
               "instead: mtw check FILE --fix good.jsonl keeps the rows labelled true.")
    return make_issue("preference_data", "info", None, what, fix)


def _key(turns: list[Message]) -> str:
    text = "\n".join(" ".join(m.content.lower().split()) for m in turns)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass
class JudgementWatch:
    """Notes each judgement as the rows stream past the checks, then says which pairs and labels clash."""

    pairs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(prompt, better, worse) -> the first line that judged so."""
    labels: dict[tuple[str, str, bool], int] = field(default_factory=dict)
    """(prompt, answer, good?) -> the first line that rated so."""
    issues: list[Issue] = field(default_factory=list)

    def over(self, rows: Iterable[Example]) -> Iterator[Example]:
        """The same rows, each noted on its way past."""
        for ex in rows:
            self.note(ex)
            yield ex

    def note(self, ex: Example) -> None:
        pref = ex.preference()
        if pref is None:
            return
        line = ex.line or 0
        prompt = _key(pref.prompt)
        if pref.paired:
            better, worse = _key(pref.chosen), _key(pref.rejected)
            if better == worse:
                self.issues.append(make_issue(
                    "same_answers", "warning", ex.line,
                    f"Line {line}: the chosen and the rejected answer are the same, so the pair teaches nothing.",
                    "Replace one of them with a different answer, or delete the line."))
                return
            other = self.pairs.get((prompt, worse, better))
            if other is not None:
                self.issues.append(_conflict(line, other, "prefers the answer that line {other} rejected for the "
                                                          "same request"))
            self.pairs.setdefault((prompt, better, worse), line)
            return
        for turns, good in pref.unpaired():
            answer = _key(turns)
            other = self.labels.get((prompt, answer, not good))
            if other is not None:
                self.issues.append(_conflict(line, other, f"rates an answer {'good' if good else 'bad'} that line "
                                                          "{other} rated " + ("bad" if good else "good")))
            self.labels.setdefault((prompt, answer, good), line)


def _conflict(line: int, other: int, what: str) -> Issue:
    return make_issue("conflicting_judgement", "warning", line,
                      f"Line {line} {what.format(other=other)}; judgements that contradict each other cancel out.",
                      f"Keep the judgement you mean and delete the other (line {other} or {line}).")
