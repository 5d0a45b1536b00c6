"""`mtw eval RUN_DIR [--prompts FILE] [--judge M] [--ollama-model NAME] [--json]`: is the tuned model better?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tools.errors import MTWError, UsageError
from tools.evaluate.report import generation_line, ollama_name, variant_label
from tools.evaluate.verdict import left_out_sentence


class Shown:
    """Each phase of the evaluation as it happens: one live line on a terminal, a plain line per change otherwise.

    Written to stderr, so `--json` output stays clean.
    """

    def __init__(self, console: Console) -> None:
        self.console, self.last = console, ""
        self.status = console.status("Evaluating") if console.is_terminal else None

    def __call__(self, what: str, done: int, total: int) -> None:
        text = f"{what[0].upper()}{what[1:]}" + (f": {done} of {total}" if total else " …")
        if text == self.last:
            return
        self.last = text
        if self.status is not None:
            self.status.update(text)
            self.status.start()
        else:
            self.console.print(text, highlight=False, markup=False)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


def _print(report: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]Evaluation of {report['run_dir']}[/] (base {report['model']}, task {report['task']})\n")
    held = report.get("heldout") or {}
    if held:
        keys = [k for k in ("val_loss", "perplexity", "accuracy", "precision", "recall", "f1") if k in held["tuned"]]
        # with Ollama answering the prompts, say that these numbers are still the local adapter's
        t = Table("held-out (local adapter)" if ollama_name(report.get("tuned_source")) else "held-out", *keys)
        for v in ("base", "tuned"):
            if v in held:
                t.add_row(v, *(f"{held[v][k]:.3g}" for k in keys))
        if "majority" in held:
            m = held["majority"]
            t.add_row(f"always '{m['label']}'", *(f"{m[k]:.3g}" if k in m else "–" for k in keys))
        console.print(t)
    s = report.get("summary")
    if s:
        t = Table("test prompts", "all checks pass", "stops by itself", "ROUGE-L", "judge (1-5)")
        for v in ("base", "tuned"):
            x = s[v]
            t.add_row(variant_label(report, v), f"{x['all_checks_pass']} of {x['prompts']}",
                      f"{x['stopped']} of {x['prompts']}",
                      "–" if x["rouge_l"] is None else f"{x['rouge_l']:.2f}",
                      "–" if x["judge_mean"] is None else f"{x['judge_mean']:.1f}")
        console.print(t)
    if report.get("generation"):
        console.print(generation_line(report["generation"]), highlight=False)
    for line in left_out_sentence(report.get("judge_left_out")):
        console.print(f"[yellow]judge[/]: {line}")
    for note in report.get("notes") or []:
        console.print(f"[yellow]note[/]: {note}")
    for d in report.get("diagnoses") or []:
        console.print(f"[yellow]! {d['code']}[/]: {d['message']} → {d['fix_text']}")
    console.print(f"\n[bold]Verdict[/]: {report['verdict']}")


def _quiet_libraries() -> None:
    """Loading notes (e.g. 'classifier weights newly initialised' for the base) and progress bars are not for users."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def eval_run(
    run_dir: Path = typer.Argument(..., help="The run folder (the --out of `mtw train`)."),
    prompts: Path = typer.Option(None, "--prompts", help="Your own test prompts: .txt (one per line) or .jsonl."),
    judge: str = typer.Option(None, "--judge", help="An Ollama model that scores each answer 1-5 on the rubric."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    compare: Path = typer.Option(None, "--compare", help="Another run to evaluate on the same prompts and compare."),
    ollama_model: str = typer.Option(None, "--ollama-model", help="Answer the test prompts on the tuned side with "
                                     "this Ollama model (e.g. the --name given to `mtw export`) instead of the local "
                                     "adapter: check what you ship. Held-out numbers still come from the adapter."),
) -> None:
    """Compare the tuned model with its base: held-out numbers, test prompts side by side, a plain verdict."""
    from tools.evaluate.run import evaluate_run

    _quiet_libraries()
    console = Console()
    shown = Shown(Console(stderr=True))
    try:
        report = evaluate_run(run_dir, prompts_file=prompts, judge_model=judge, ollama_model=ollama_model,
                              progress=shown)
        comparison = None
        if compare is not None:
            from tools.evaluate.compare import compare_reports
            from tools.fileio import atomic_write_json

            other = evaluate_run(compare, prompts_file=prompts, judge_model=judge,
                                 progress=lambda what, done, total: shown(f"{Path(compare).name}: {what}", done, total))
            comparison = compare_reports(report, other)
            atomic_write_json(Path(run_dir) / "eval" / "compare.json", comparison)
        from tools.evaluate.rounds import compare_round, is_round

        # a preference round is also measured against the version it started from
        round_report = compare_round(run_dir, judge_model=judge) if is_round(run_dir) and not ollama_model else None
    except UsageError as exc:
        shown.close()
        typer.echo(f"{exc.message}\n→ {exc.fix}", err=True)
        raise typer.Exit(2) from None
    except MTWError as exc:
        shown.close()
        typer.echo(f"{exc.message}\n→ {exc.fix}", err=True)
        raise typer.Exit(1) from None
    shown.close()
    if as_json:
        extra = {k: v for k, v in (("comparison", comparison), ("round", round_report)) if v is not None}
        typer.echo(json.dumps({**report, **extra}, indent=2, ensure_ascii=False, default=str))
        return
    _print(report, console)
    if comparison is not None:
        t = Table("measure", Path(comparison["a"]).name, Path(comparison["b"]).name, "better")
        for r in comparison["metrics"]:
            t.add_row(r["metric"], f"{r['a']:.3g}", f"{r['b']:.3g}",
                      {"a": Path(comparison["a"]).name, "b": Path(comparison["b"]).name}.get(r["better"], "same"))
        console.print(t)
        console.print(f"[bold]Comparison[/]: {comparison['verdict']}")
    if round_report is not None:
        console.print(f"[bold]Against {Path(round_report['from_run']).name}, where this round started[/]: "
                      f"{round_report['verdict']}", highlight=False)
    from tools.evaluate.report import report_dir

    console.print(f"\nReport: {report_dir(run_dir, ollama_model) / 'report.md'}")
