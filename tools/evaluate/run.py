"""Evaluate one run: held-out numbers, test prompts answered by base and tuned, checks, judge, report, verdict.

Reads top to bottom: `evaluate_run` loads the tuned model and the validation rows (I/O), `build_report`
turns answers and numbers into the report (pure apart from the generator and judge it is handed).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UsageError
from tools.evaluate.agreement import agreement, load_user_scores
from tools.evaluate.generate import DEFAULT_MAX_NEW_TOKENS, Generator
from tools.evaluate.judge import CRITERIA, score_all
from tools.evaluate.metrics import rouge_l
from tools.evaluate.report import VARIANTS, summarize, verdict, write_report
from tools.evaluate.suite import BUILTIN, TestPrompt, check_answer, check_user_story, follows_format, load_prompts_file
from tools.llm_protocol import StructuredLLM

if TYPE_CHECKING:
    from tools.dataset.model import Example

MAX_VALIDATION_PROMPTS = 10
"""Validation examples answered side by side (all of them count in the held-out loss)."""


def validation_prompts(validation: list[Example]) -> list[TestPrompt]:
    """Prompts from held-out chat examples, their answers as references; user-story answers set the format."""
    out = []
    for i, ex in enumerate(e for e in validation if e.kind == "chat" and e.answer()):
        if i >= MAX_VALIDATION_PROMPTS:
            break
        ref = ex.answer()
        out.append(TestPrompt(id=f"validation-{ex.line or i + 1}", category="validation", prompt=ex.prompt(),
                              reference=ref, format="user_story" if check_user_story(ref).passed else None))
    return out


def answer_prompts(prompts: list[TestPrompt], generate: Generator, judge: StructuredLLM | None = None
                   ) -> list[dict[str, Any]]:
    """Every prompt answered by base and tuned, with its checks, ROUGE-L and (with a judge) rubric scores."""
    answers = {v: generate([p.prompt for p in prompts], v) for v in VARIANTS}
    judged = score_all(judge, [(p, {v: answers[v][i].text for v in VARIANTS}) for i, p in enumerate(prompts)]
                       ) if judge is not None else {}
    rows = []
    for i, p in enumerate(prompts):
        row: dict[str, Any] = {"id": p.id, "category": p.category, "prompt": p.prompt, "reference": p.reference}
        for v in VARIANTS:
            g = answers[v][i]
            checks = check_answer(p, g.text, g.stopped)
            scores = judged.get((p.id, v))
            row[v] = {
                "answer": g.text, "stopped": g.stopped, "tokens": g.tokens,
                "checks": [asdict(c) for c in checks], "format_ok": follows_format(checks),
                "rouge_l": rouge_l(g.text, p.reference) if p.reference else None,
                "judge": scores.model_dump() if scores else None,
                "judge_mean": scores.mean() if scores else None,
            }
        rows.append(row)
    return rows


def training_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps run and the last training / validation loss from events.jsonl."""
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval"]
    return {"steps": steps[-1].get("step") if steps else 0, "final_loss": steps[-1].get("loss") if steps else None,
            "final_val_loss": evals[-1].get("val_loss") if evals else None,
            "finished": any(e.get("type") == "done" for e in events)}


def build_report(run_dir: str | Path, *, model: str, task: str, events: list[dict[str, Any]],
                 heldout: dict[str, Any], prompts: list[TestPrompt], generate: Generator | None,
                 judge: StructuredLLM | None = None, judge_model: str | None = None,
                 data: str | None = None) -> dict[str, Any]:
    """The report dict (report.json): numbers, per-prompt answers, agreement with the user, health, verdict."""
    from tools.troubleshoot.monitor import diagnose

    rows = answer_prompts(prompts, generate, judge) if generate is not None and prompts else []
    report: dict[str, Any] = {
        "run_dir": str(run_dir), "model": model, "task": task, "data": data, "judge_model": judge_model,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": training_summary(events), "heldout": heldout,
        "summary": summarize(rows) if rows else None, "prompts": rows,
        "diagnoses": [d.as_event() for d in diagnose(events)],
    }
    report["agreement"] = agreement(judge_scores(rows), load_user_scores(run_dir))
    report["verdict"] = verdict(report)
    return report


def judge_scores(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(prompt id, variant, criterion) → the judge's score, for every judged answer in the report rows."""
    return {(r["id"], v, c): r[v]["judge"][c]["score"] for r in rows for v in VARIANTS if r[v].get("judge")
            for c in CRITERIA}


def refresh_agreement(run_dir: str | Path) -> dict[str, Any] | None:
    """After the user scored answers in the UI: recompute judge/user agreement in the saved report, no re-run."""
    import json

    from tools.evaluate.report import render_markdown
    from tools.fileio import atomic_write_json, atomic_write_text

    path = Path(run_dir) / "eval" / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path} does not exist yet.", fix=f"Run `mtw eval {run_dir}` first.") from exc
    report["agreement"] = agreement(judge_scores(report.get("prompts") or []), load_user_scores(run_dir))
    atomic_write_json(path, report)
    atomic_write_text(path.with_name("report.md"), render_markdown(report))
    return report["agreement"]


def evaluate_run(run_dir: str | Path, *, prompts_file: str | Path | None = None, judge_model: str | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, write: bool = True) -> dict[str, Any]:
    """Evaluate a finished run on this machine and write RUN_DIR/eval/; returns the report."""
    import torch

    from tools.evaluate.generate import in_process_generator
    from tools.evaluate.heldout import heldout
    from tools.evaluate.judge import OllamaStructured
    from tools.train.config import load_run_config
    from tools.train.events import read_events
    from tools.train.modeling import load_tuned

    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"{run} is not a folder.", fix="Give the folder passed as --out to `mtw train`.")
    cfg = load_run_config(run)
    extra = load_prompts_file(prompts_file) if prompts_file else []
    notes: list[str] = []
    validation = _validation_rows(cfg, notes)
    # generation is the slow part: on a machine with a GPU it runs there
    model, tokenizer, cfg = load_tuned(run, device="cuda" if torch.cuda.is_available() else "cpu")
    numbers = heldout(model, tokenizer, cfg.task, validation, labels=list(cfg.labels), context=cfg.context)
    prompts: list[TestPrompt] = []
    if cfg.task == "causal":
        prompts = [*BUILTIN, *validation_prompts(validation), *extra]
    elif extra:
        notes.append("Test prompts are for text generation; this run is a classifier, so --prompts was not used.")
    events = read_events(run)
    report = build_report(run, model=cfg.model, task=cfg.task, events=events, heldout=numbers, prompts=prompts,
                          generate=in_process_generator(model, tokenizer, max_new_tokens=max_new_tokens),
                          judge=OllamaStructured(judge_model) if judge_model else None, judge_model=judge_model,
                          data=cfg.data)
    report["notes"] = notes
    if write:
        write_report(run, report, events)
    return report


def _validation_rows(cfg: Any, notes: list[str]) -> list[Example]:
    """The run's held-out rows, split exactly as training split them (same file, share and seed)."""
    from tools.train.inputs import read_training_data

    if not Path(cfg.data).is_file():
        notes.append(f"The training data {cfg.data} is no longer there, so there are no held-out numbers; "
                     "put the file back at that path to get them.")
        return []
    data = read_training_data(cfg.data, model=None, context=cfg.context, val_share=cfg.val_share, seed=cfg.seed,
                              check_model=False)
    if not data.validation:
        notes.append("The run kept no validation examples (val_share 0 or fewer than 5 examples), so there are no "
                     "held-out numbers.")
    return data.validation
