"""Version comparison: two runs' reports on the same suite, metric by metric, with a plain verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (label, where in the report, what to divide by (counts become shares, as two suites may differ in size),
#  higher is better)
METRICS: tuple[tuple[str, tuple[str, ...], tuple[str, ...] | None, bool], ...] = (
    ("validation loss", ("heldout", "tuned", "val_loss"), None, False),
    ("accuracy", ("heldout", "tuned", "accuracy"), None, True),
    ("macro F1", ("heldout", "tuned", "f1"), None, True),
    ("share of prompts passing every check", ("summary", "tuned", "all_checks_pass"),
     ("summary", "tuned", "prompts"), True),
    ("share with the asked structure", ("summary", "tuned", "structure_pass"),
     ("summary", "tuned", "structure_total"), True),
    ("share of answers that stop by themselves", ("summary", "tuned", "stopped"), ("summary", "tuned", "prompts"),
     True),
    ("ROUGE-L vs validation answers", ("summary", "tuned", "rouge_l"), None, True),
    ("judge average (1-5)", ("summary", "tuned", "judge_mean"), None, True),
)


def _get(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _value(report: dict[str, Any], path: tuple[str, ...], per: tuple[str, ...] | None) -> float | None:
    x = _get(report, path)
    if x is None or per is None:
        return x
    n = _get(report, per)
    return x / n if n else None


def _name(report: dict[str, Any]) -> str:
    return Path(report["run_dir"]).name or report["run_dir"]


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Each metric both reports have, which run wins it, and a one-line verdict."""
    rows = []
    for label, path, per, higher in METRICS:
        x, y = _value(a, path, per), _value(b, path, per)
        if x is None or y is None:
            continue
        winner = "same" if abs(x - y) < 1e-9 else ("a" if (x > y) == higher else "b")
        rows.append({"metric": label, "a": x, "b": y, "better": winner})
    wins = {k: [str(r["metric"]) for r in rows if r["better"] == k] for k in ("a", "b")}
    na, nb = _name(a), _name(b)
    if not rows:
        text = f"{na} and {nb} share no metric to compare (different tasks?)."
    elif len(wins["a"]) == len(wins["b"]):
        text = f"{na} and {nb} are level: each is better on {len(wins['a'])} of {len(rows)} measures."
    else:
        best, other = ("a", "b") if len(wins["a"]) > len(wins["b"]) else ("b", "a")
        names = {"a": na, "b": nb}
        text = (f"{names[best]} is better on {len(wins[best])} of {len(rows)} measures "
                f"({', '.join(wins[best])})" + (f"; {names[other]} wins {', '.join(wins[other])}" if wins[other]
                                                else "") + ".")
    if a.get("data") != b.get("data"):
        text += (f" The runs were trained on different data ({a.get('data')} vs {b.get('data')}), so their held-out "
                 "numbers come from different examples.")
    return {"a": a["run_dir"], "b": b["run_dir"], "metrics": rows, "verdict": text}
