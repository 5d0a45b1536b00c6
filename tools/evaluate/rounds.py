"""After a preference round: the new version against the one it started from (v_n → v_n+1).

On the judgements the round held out (the user's own prompts it never trained on) and on the test categories,
both versions answer; the judge model scores each answer blind, and each version's likelihoods say how often it
agrees with the user's own judgements. Written to RUN_DIR/eval/round.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.errors import UsageError
from tools.evaluate.generate import DEFAULT_MAX_NEW_TOKENS
from tools.fileio import atomic_write_json
from tools.llm_protocol import StructuredLLM

VERSIONS = ("before", "after")
"""The version the round started from, and the round's own."""
JUDGED = "your_judgements"
"""The category of the held-out judged prompts."""


def is_round(run_dir: str | Path) -> bool:
    """A preference round on top of another run (the kind compare_round measures); False for anything else."""
    from tools.train.config import load_run_config

    if not (Path(run_dir) / "config.yaml").is_file():
        return False
    cfg = load_run_config(run_dir)
    return cfg.method != "sft" and bool(cfg.from_run)


def agreement(model: Any, tokenizer: Any, prefs: list[Any], context: int) -> dict[str, Any]:
    """How often a version sides with the user: pairs where it finds the chosen answer likelier than the rejected
    one (`pairs_agreed` of `pairs`), and by how much on average (`margin`, log-likelihood ratio; it grows as a
    round learns even while a long chosen answer is still less likely than a short rejected one)."""
    from tools.train.pairs import margins

    paired = [p for p in prefs if p.paired]
    found = margins(model, tokenizer, paired, context)
    return {"pairs": len(paired), "pairs_agreed": sum(m > 0 for m in found),
            "margin": round(sum(found) / len(found), 4) if found else None}


def _single_shift(model: Any, tokenizer: Any, prefs: list[Any], context: int, before: str, after: str) -> int:
    """Single rated answers the round moved the user's way: a good one likelier, a bad one less likely."""
    from tools.train.pairs import answer_logprob

    moved = 0
    for p in (p for p in prefs if not p.paired):
        for answer, good in p.unpaired():
            scores = []
            for name in (before, after):
                model.set_adapter(name)
                scores.append(answer_logprob(model, tokenizer, p.prompt, answer, context))
            moved += (scores[1] > scores[0]) == good
    return moved


def _winner(scores: dict[str, float | None], checks: dict[str, bool]) -> str:
    """after / before / tie: by the judge's mean score, else by the answers' format checks."""
    a, b = scores.get("after"), scores.get("before")
    if a is None or b is None:
        a, b = float(checks["after"]), float(checks["before"])
    return "after" if a > b else "before" if b > a else "tie"


def compare_round(run_dir: str | Path, *, judge: StructuredLLM | None = None, judge_model: str | None = None,
                  max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, write: bool = True) -> dict[str, Any]:
    """v_n and v_n+1 side by side after a preference round; the report (also RUN_DIR/eval/round.json)."""
    import torch

    from tools.evaluate.generate import generate
    from tools.evaluate.judge import OllamaStructured, score_all
    from tools.evaluate.run import heldout_data
    from tools.evaluate.suite import BUILTIN, TestPrompt, check_answer, follows_format
    from tools.train.config import load_run_config
    from tools.train.events import read_events
    from tools.train.modeling import load_tuned
    from tools.train.pairs import judgements

    run = Path(run_dir)
    cfg = load_run_config(run)
    if cfg.method == "sft" or not cfg.from_run:
        raise UsageError(f"{run} is not a preference round on top of another run, so there is no earlier version "
                         "to compare it with.", f"Compare it with its base instead: `mtw eval {run}`.")
    start = Path(cfg.from_run)
    notes: list[str] = []
    data = heldout_data(run, cfg, read_events(run), notes)
    held = judgements(data.validation) if data else []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # one base in memory, both adapters on it: the round's ("after") and the one it started from ("before")
    model, tok, _ = load_tuned(run, device=device)
    model.load_adapter(str(start / "adapter"), adapter_name="before")
    adapters = {"after": "default", "before": "before"}
    agreed: dict[str, dict[str, int]] = {}
    for version, name in adapters.items():
        model.set_adapter(name)
        agreed[version] = agreement(model, tok, held, cfg.context)
    shifted = _single_shift(model, tok, held, cfg.context, "before", "default")
    singles = sum(len(p.unpaired()) for p in held if not p.paired)
    prompts = [TestPrompt(id=f"judged-{p.line or i}", category=JUDGED, prompt=p.prompt[-1].content)
               for i, p in enumerate(held) if p.prompt and p.prompt[-1].role == "user"] + list(BUILTIN)
    answers: dict[str, list[Any]] = {}
    for version, name in adapters.items():
        model.set_adapter(name)
        answers[version] = generate(model, tok, [p.prompt for p in prompts], max_new_tokens=max_new_tokens)
    if judge is None and judge_model:
        judge = OllamaStructured(judge_model)
    scored = score_all(judge, [(p, {v: answers[v][i].text for v in VERSIONS}) for i, p in enumerate(prompts)]
                       ).scores if judge is not None else {}
    rows: list[dict[str, Any]] = []
    categories: dict[str, dict[str, int]] = {}
    for i, p in enumerate(prompts):
        row: dict[str, Any] = {"id": p.id, "category": p.category, "prompt": p.prompt}
        means: dict[str, float | None] = {}
        checks: dict[str, bool] = {}
        for v in VERSIONS:
            g = answers[v][i]
            s = scored.get((p.id, v))
            means[v] = s.mean() if s else None
            checks[v] = follows_format(check_answer(p, g.text, g.stopped))
            row[v] = {"answer": g.text, "judge_mean": means[v], "format_ok": checks[v]}
        row["winner"] = _winner(means, checks)
        rows.append(row)
        tally = categories.setdefault(p.category, {"after": 0, "before": 0, "tie": 0})
        tally[row["winner"]] += 1
    decided = sum(t["after"] + t["before"] for t in categories.values())
    report: dict[str, Any] = {
        "run_dir": str(run), "from_run": str(start), "method": cfg.method, "judge_model": judge_model,
        "judged_by": "judge" if scored else "format checks",
        "judgements": (len(data.train) + len(data.validation)) if data else 0, "held_out": len(held),
        "agreement": {**agreed, "singles": singles, "singles_moved": shifted},
        "categories": categories,
        "win_rate": round(sum(t["after"] for t in categories.values()) / decided, 3) if decided else None,
        "prompts": rows, "notes": notes,
    }
    report["verdict"] = round_verdict(report)
    if write:
        atomic_write_json(run / "eval" / "round.json", report)
    return report


def round_verdict(report: dict[str, Any]) -> str:
    """The comparison in two plain sentences: who wins by the judge, and who agrees with the user."""
    wins = sum(t["after"] for t in report["categories"].values())
    losses = sum(t["before"] for t in report["categories"].values())
    ties = sum(t["tie"] for t in report["categories"].values())
    by = "the judge" if report["judged_by"] == "judge" else "the format checks (no judge model)"
    first = (f"By {by}, the new version wins {wins}, the one it started from {losses}, with {ties} "
             f"tie{'s' * (ties != 1)}.")
    a = report["agreement"]
    if a["after"]["pairs"]:
        moved = "closer to" if a["after"]["margin"] > a["before"]["margin"] else "no closer to"
        first += (f" On your {a['after']['pairs']} held-out pair{'s' * (a['after']['pairs'] != 1)} it prefers your "
                  f"pick {a['after']['pairs_agreed']} time{'s' * (a['after']['pairs_agreed'] != 1)}, the earlier "
                  f"version {a['before']['pairs_agreed']}, and it leans {moved} your picks (likelihood margin "
                  f"{a['before']['margin']:+.2f} → {a['after']['margin']:+.2f}).")
    if a["singles"]:
        first += (f" Of your {a['singles']} held-out rated answer{'s' * (a['singles'] != 1)}, the round moved "
                  f"{a['singles_moved']} your way (good ones likelier, bad ones less likely).")
    if not report["held_out"]:
        first += " None of your judgements were held out, so only the test prompts compare them."
    return first
