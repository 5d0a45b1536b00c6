"""User scores for the same answers the judge scored, and how well judge and user agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.errors import UsageError
from tools.evaluate.judge import CRITERIA
from tools.fileio import append_jsonl

Key = tuple[str, str, str]
"""(prompt id, variant "base"/"tuned", criterion)."""


def user_scores_path(run_dir: str | Path) -> Path:
    """Where a run's user scores live (append-only, one line per scoring)."""
    return Path(run_dir) / "eval" / "user_scores.jsonl"


def record_user_scores(run_dir: str | Path, prompt_id: str, variant: str, scores: dict[str, int]) -> None:
    """Save the user's 1-5 scores for one answer; a later call for the same answer replaces them."""
    problems = [f"'{c}' is not a rubric criterion (use {', '.join(CRITERIA)})" for c in scores if c not in CRITERIA]
    problems += [f"{c} = {v!r}: scores go from 1 to 5" for c, v in scores.items()
                 if c in CRITERIA and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 5)]
    if variant not in ("base", "tuned"):
        problems.append(f"variant '{variant}' — use 'base' or 'tuned'")
    if problems:
        raise UsageError("Cannot save these scores: " + "; ".join(problems) + ".",
                         fix="Give each criterion a whole number from 1 to 5.")
    append_jsonl(user_scores_path(run_dir), {"prompt_id": prompt_id, "variant": variant, "scores": scores,
                                             "ts": datetime.now(UTC).isoformat(timespec="seconds")})


def load_user_scores(run_dir: str | Path) -> dict[Key, int]:
    """Every user score of the run; the latest one wins for each answer and criterion."""
    path = user_scores_path(run_dir)
    out: dict[Key, int] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            for c, v in row["scores"].items():
                out[(row["prompt_id"], row["variant"], c)] = int(v)
    return out


def weighted_kappa(a: list[int], b: list[int], categories: int = 5) -> float:
    """Cohen's kappa with quadratic weights on 1..categories: 1 = perfect, 0 = chance, < 0 = worse than chance."""
    n = len(a)
    if n == 0:
        raise ValueError("no paired scores")
    k = categories
    observed = [[0.0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        observed[x - 1][y - 1] += 1
    ha = [sum(row) for row in observed]
    hb = [sum(observed[i][j] for i in range(k)) for j in range(k)]

    def w(i: int, j: int) -> float:
        return (i - j) ** 2 / (k - 1) ** 2

    disagree = sum(w(i, j) * observed[i][j] for i in range(k) for j in range(k))
    expected = sum(w(i, j) * ha[i] * hb[j] / n for i in range(k) for j in range(k))
    # both raters used a single score throughout: agreement is perfect or nothing
    if expected == 0:
        return 1.0 if disagree == 0 else 0.0
    return 1 - disagree / expected


def agreement(judge: dict[Key, int], user: dict[Key, int]) -> dict[str, Any] | None:
    """How closely the judge's scores match the user's on the answers both scored; None if none overlap."""
    keys = sorted(set(judge) & set(user))
    if not keys:
        return None
    a, b = [judge[k] for k in keys], [user[k] for k in keys]
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
    return {
        "n": len(keys),
        "mean_abs_diff": sum(diffs) / len(diffs),
        "exact": sum(d == 0 for d in diffs) / len(diffs),
        "within_one": sum(d <= 1 for d in diffs) / len(diffs),
        "kappa": weighted_kappa(a, b),
    }
