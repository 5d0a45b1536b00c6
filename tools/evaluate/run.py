"""Evaluate one run: held-out numbers, test prompts answered by base and tuned, checks, judge, report, verdict.

Reads top to bottom: `evaluate_run` loads the tuned model and the validation rows (I/O), `build_report`
turns answers and numbers into the report (pure apart from the generator and judge it is handed).
Answers come from llama.cpp when the run's base is a GGUF and llama-server is here (engine.py), else from
PyTorch in this process; with `ollama_model` the tuned side's answers come from that model in Ollama.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import ModelNotPulled, MTWError, OllamaUnavailable, UsageError
from tools.evaluate.agreement import agreement, load_user_scores
from tools.evaluate.generate import Generation, Generator, Progress
from tools.evaluate.judge import CRITERIA, Judgements, score_all
from tools.evaluate.metrics import rouge_l
from tools.evaluate.report import OLLAMA, VARIANTS, report_dir, summarize, write_report
from tools.evaluate.suite import (
    BUILTIN,
    StructureKind,
    TestPrompt,
    check_answer,
    check_user_story,
    follows_format,
    load_prompts_file,
    structure_of,
)
from tools.evaluate.verdict import verdict
from tools.llm_protocol import StructuredLLM
from tools.run_events import finished

if TYPE_CHECKING:
    from tools.dataset.model import Example
    from tools.train.inputs import TrainingData

MAX_VALIDATION_PROMPTS = 10
"""Validation examples answered side by side (all of them count in the held-out loss)."""
LOCAL = "local"
"""Answers generated on this machine (the run's adapter, or its base with the adapter off)."""


def validation_prompts(validation: list[Example], structure: list[StructureKind] | None = None
                       ) -> list[TestPrompt]:
    """Prompts from held-out chat examples, their answers as references; user-story answers set the format.

    `structure`: what the training answers share (suite.dataset_structure); each prompt needs the part of it
    that its own reference answer has.
    """
    out = []
    for i, ex in enumerate(e for e in validation if e.kind == "chat" and e.answer()):
        if i >= MAX_VALIDATION_PROMPTS:
            break
        ref = ex.answer()
        has = structure_of(ref)
        out.append(TestPrompt(id=f"validation-{ex.line or i + 1}", category="validation", prompt=ex.prompt(),
                              reference=ref, format="user_story" if check_user_story(ref).passed else None,
                              structure=[k for k in structure or [] if k in has]))
    return out


def answer_prompts(prompts: list[TestPrompt], generate: Generator, judge: StructuredLLM | None = None,
                   progress: Progress | None = None) -> tuple[list[dict[str, Any]], Judgements | None]:
    """Every prompt answered by base and tuned, with its checks, ROUGE-L and (with a judge) rubric scores.

    Returns the rows and what the judge said (None without a judge); a failing judge leaves scores out, never rows.
    """
    answers: dict[str, list[Generation]] = {v: generate([p.prompt for p in prompts], v) for v in VARIANTS}
    judged = score_all(judge, [(p, {v: answers[v][i].text for v in VARIANTS}) for i, p in enumerate(prompts)],
                       progress=progress) if judge is not None else None
    rows = []
    for i, p in enumerate(prompts):
        row: dict[str, Any] = {"id": p.id, "category": p.category, "prompt": p.prompt, "reference": p.reference,
                               "format": p.format, "structure": list(p.structure)}
        for v in VARIANTS:
            g = answers[v][i]
            checks = check_answer(p, g.text, g.stopped)
            scores = judged.scores.get((p.id, v)) if judged else None
            row[v] = {
                "answer": g.text, "stopped": g.stopped, "tokens": g.tokens,
                "checks": [asdict(c) for c in checks], "format_ok": follows_format(checks),
                "rouge_l": rouge_l(g.text, p.reference) if p.reference else None,
                "judge": scores.model_dump() if scores else None,
                "judge_mean": scores.mean() if scores else None,
                "judge_left_out": judged.left_out.get((p.id, v)) if judged else None,
            }
        rows.append(row)
    return rows, judged


def already(answers: dict[str, list[Generation]]) -> Generator:
    """A Generator that hands back answers made beforehand (by llama.cpp, for both sides at once)."""
    def run(prompts: list[str], which: str) -> list[Generation]:
        return answers[which]

    return run


def clocked(generate: Generator, into: dict[str, Any]) -> Generator:
    """The same Generator, adding the seconds each call takes to `into["seconds"]`."""
    import time

    def run(prompts: list[str], which: str) -> list[Generation]:
        started = time.monotonic()
        try:
            return generate(prompts, which)
        finally:
            into["seconds"] = round(into.get("seconds", 0.0) + time.monotonic() - started, 1)

    return run


def training_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps run and the last training / validation loss from events.jsonl."""
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval"]
    return {"steps": steps[-1].get("step") if steps else 0, "final_loss": steps[-1].get("loss") if steps else None,
            "final_val_loss": evals[-1].get("val_loss") if evals else None,
            "finished": finished(events)}


def build_report(run_dir: str | Path, *, model: str, task: str, events: list[dict[str, Any]],
                 heldout: dict[str, Any], prompts: list[TestPrompt], generate: Generator | None,
                 judge: StructuredLLM | None = None, judge_model: str | None = None,
                 data: str | None = None, base_source: str = LOCAL, tuned_source: str = LOCAL,
                 generation: dict[str, Any] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The report dict (report.json): numbers, per-prompt answers, agreement with the user, health, verdict.

    `base_source` / `tuned_source` say where each side's answers came from: "local" or "ollama:NAME";
    `generation` how they were made (engine, the token cap and why).
    """
    from tools.troubleshoot.monitor import diagnose

    rows, judged = answer_prompts(prompts, generate, judge, progress) if generate is not None and prompts else ([],
                                                                                                                None)
    report: dict[str, Any] = {
        "run_dir": str(run_dir), "model": model, "task": task, "data": data, "judge_model": judge_model,
        "base_source": base_source, "tuned_source": tuned_source, "generation": generation,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": training_summary(events), "heldout": heldout,
        "summary": summarize(rows) if rows else None, "prompts": rows,
        "judge_left_out": None if judged is None else {"n": len(judged.left_out), "of": 2 * len(rows),
                                                       "reasons": judged.reasons()},
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
        raise UsageError(f"{path} does not exist yet.",
                         fix=f"Run `mtw eval {shlex.quote(str(run_dir))}` first.") from exc
    report["agreement"] = agreement(judge_scores(report.get("prompts") or []), load_user_scores(run_dir))
    atomic_write_json(path, report)
    atomic_write_text(path.with_name("report.md"), render_markdown(report))
    return report["agreement"]


def evaluate_run(run_dir: str | Path, *, prompts_file: str | Path | None = None, judge_model: str | None = None,
                 ollama_model: str | None = None, max_new_tokens: int | None = None, write: bool = True,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate a finished run on this machine and write RUN_DIR/eval/; returns the report.

    With `ollama_model` the tuned answers to the test prompts come from that Ollama model (e.g. the name given
    to `mtw export`); held-out numbers still come from the local adapter, and a run without one still gets
    its test prompts compared with the base. `max_new_tokens`: the answers' cap, by default from the run's own
    training answers (limits.answer_cap). `progress(what, done, total)` follows every phase.
    """
    import time

    import torch

    from tools.evaluate.engine import llama_answers
    from tools.evaluate.generate import in_process_generator, ollama_generator, split_generator
    from tools.evaluate.heldout import heldout
    from tools.evaluate.judge import OllamaStructured
    from tools.evaluate.limits import answer_cap, answer_lengths, cap_reason
    from tools.train.config import load_run_config
    from tools.train.events import read_events
    from tools.train.modeling import load_base, load_tuned
    from tools.train.speed import compute_precision, hidden_size

    def step(what: str, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(what, done, total)

    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"{run} is not a folder.", fix="Give the folder passed as --out to `mtw train`.")
    cfg = load_run_config(run)
    extra = load_prompts_file(prompts_file) if prompts_file else []
    notes: list[str] = []
    has_adapter = (run / "adapter" / "adapter_config.json").is_file()
    if ollama_model:
        if cfg.task != "causal":
            raise UsageError(f"{run} trained a {cfg.task} model (labels, not text), and Ollama runs text-generation "
                             f"models only, so there is nothing to ask '{ollama_model}'.",
                             f"Evaluate it without --ollama-model: `mtw eval {shlex.quote(str(run))}`.")
        # before loading anything: a missing model or a stopped Ollama is found in a second, not after minutes
        notes += check_ollama_model(ollama_model, run)
    elif not has_adapter:
        exported = exported_from(run)
        if exported:
            raise UsageError(f"{run} has no adapter to evaluate, but it was exported to Ollama as "
                             f"{', '.join(exported)}.", f"Evaluate that model: `mtw eval {shlex.quote(str(run))} "
                                                        f"--ollama-model {shlex.quote(str(exported[0]))}`.")
    events = read_events(run)
    data = heldout_data(run, cfg, events, notes)
    validation = data.validation if data else []
    # generation is the slow part: on a machine with a GPU it runs there
    device = "cuda" if torch.cuda.is_available() else "cpu"
    step("loading the model")
    if has_adapter or not ollama_model:
        model, tokenizer, cfg = load_tuned(run, device=device)
        step("held-out examples")
        numbers = heldout(model, tokenizer, cfg.task, validation, labels=list(cfg.labels), context=cfg.context,
                          train=data.train if data else [], precision=cfg.precision)
    else:
        model, tokenizer = load_base(cfg.model, cfg.task, precision="fp32" if device == "cpu" else "auto",
                                     device=device, seed=cfg.seed)
        numbers = {}
        notes.append(f"{run} has no adapter, so there are no held-out numbers; the test prompts compare "
                     f"'{ollama_model}' in Ollama with the base model {cfg.model} on this machine.")
    prompts: list[TestPrompt] = []
    generation: dict[str, Any] | None = None
    generate: Generator | None = None
    if cfg.task == "causal":
        from tools.evaluate.suite import dataset_structure

        answers = [ex.answer() for ex in (data.train if data else []) if ex.kind == "chat" and ex.answer()]
        prompts = [*BUILTIN, *validation_prompts(validation, dataset_structure(answers)), *extra]
        lengths = answer_lengths(tokenizer, answers)
        cap = max_new_tokens or answer_cap(lengths, context=cfg.context)
        # bf16 weights where bf16 arithmetic pays (as training decides it): half the bytes read per token
        bf16 = device == "cpu" and compute_precision("auto", device, hidden_size(model)) == "bf16"
        generation = {"engine": "pytorch", "max_new_tokens": cap, "longest_training_answer": max(lengths, default=None),
                      "cap_reason": "as asked" if max_new_tokens else cap_reason(lengths, cap),
                      "dtype": "bf16" if bf16 else "fp32" if device == "cpu" else str(model.dtype).split(".")[-1]}
        started = time.monotonic()
        made = None if ollama_model or not has_adapter else llama_answers(run, tokenizer, prompts, cap, progress,
                                                                          notes)
        # the time the answers took (a failed try of llama.cpp included: the user waited for it too)
        generation["seconds"] = round(time.monotonic() - started, 1)
        if made is not None:
            generation |= {"engine": "llama.cpp", "dtype": "gguf"}
            generate = already(made)
        else:
            generate = in_process_generator(model, tokenizer, max_new_tokens=cap, bf16=bf16, progress=progress)
            if ollama_model:
                generate = split_generator(generate, ollama_generator({"tuned": ollama_model}, max_new_tokens=cap,
                                                                      progress=progress))
            generate = clocked(generate, generation)
    elif extra:
        notes.append("Test prompts are for text generation; this run is a classifier, so --prompts was not used.")
    report = build_report(run, model=cfg.model, task=cfg.task, events=events, heldout=numbers, prompts=prompts,
                          generate=generate, judge=OllamaStructured(judge_model) if judge_model else None,
                          judge_model=judge_model, data=cfg.data,
                          tuned_source=f"{OLLAMA}{ollama_model}" if ollama_model else LOCAL,
                          generation=generation, progress=progress)
    report["notes"] = notes
    if write:
        step("writing the report")
        write_report(run, report, events, report_dir(run, ollama_model))
    return report


def _same_tag(a: str, b: str) -> bool:
    """Ollama names compared as Ollama does: case-insensitive, a missing tag meaning ':latest'."""
    def full(n: str) -> str:
        return (n if ":" in n else f"{n}:latest").lower()

    return full(a) == full(b)


def _registered() -> list[Any]:
    """The registered models, or none when the workspace cannot be read (the check is advice, not a gate)."""
    from tools import registry

    try:
        return registry.list_models()
    except MTWError:
        return []


def exported_from(run: Path, records: list[Any] | None = None) -> list[str]:
    """The Ollama names of the models `mtw export` made from this run, newest version first."""
    return [m.ollama_tag for m in (_registered() if records is None else records)
            if m.run_dir and Path(m.run_dir).resolve() == run.resolve()]


def check_ollama_model(name: str, run: Path) -> list[str]:
    """Plain errors when Ollama is down or lacks `name`; notes when the registry ties `name` to another run."""
    from tools import ollama_api, registry

    try:
        pulled = ollama_api.list_models()
    except OllamaUnavailable as exc:
        raise OllamaUnavailable(f"Cannot ask '{name}' for the tuned answers: {exc.message}", exc.fix) from exc
    records = _registered()
    mine = exported_from(run, records)
    if not any(_same_tag(m, name) for m in pulled):
        if mine:
            fix = f"This run was exported as {', '.join(mine)}: use --ollama-model {mine[0]}."
        else:
            created = registry.next_version_name(name, [m.name for m in records])
            fix = (f"Put this run into Ollama with `mtw export {shlex.quote(str(run))} --name {shlex.quote(str(name))}`"
                   + (f" (it is created as {created})" if created != name else "")
                   + ", or check the name with `ollama list`.")
        raise ModelNotPulled(name, f"The model '{name}' is not in your Ollama (at {ollama_api.host()}).", fix)
    record = next((m for m in records if _same_tag(m.ollama_tag, name)), None)
    if record is None:
        return [f"'{name}' is not in the model registry (`mtw models`), so it is not known which run it was "
                f"exported from; its answers are compared with the base of {run}."]
    if record.run_dir and Path(record.run_dir).resolve() != run.resolve():
        return [f"'{name}' was exported from {record.run_dir}, not from {run}: its answers are compared with this "
                "run's base, and any held-out numbers are this run's adapter's."
                + (f" This run was exported as {', '.join(mine)}." if mine else "")]
    return []


def heldout_data(run: Path, cfg: Any, events: list[dict[str, Any]], notes: list[str]) -> TrainingData | None:
    """The run's own training and held-out rows: the split it recorded, read from the dataset version it used.

    When the file changed since, the same version kept in a project's dataset versions is used instead; with
    no copy of it anywhere this refuses (DataChanged), since the held-out rows could now be training rows.
    """
    from tools.dataset.store import dataset_hash, find_version
    from tools.train.inputs import load_split, read_training_data, require_version

    recorded = load_split(run)
    version = (recorded or {}).get("dataset_version") or next(
        (e.get("dataset_version") for e in events if e.get("type") == "start" and e.get("dataset_version")), None)
    path = str(cfg.data)
    present = Path(path).is_file()
    if version and (not present or dataset_hash(path) != version):
        kept = find_version(version)
        if kept is not None:
            notes.append(f"{cfg.data} is {'not the same' if present else 'no longer there'} since this run trained "
                         f"on it; the held-out rows come from the version it trained on ({version}), kept at {kept}.")
            path, present = str(kept), True
    if not present:
        notes.append(f"The training data {cfg.data} is no longer there, so there are no held-out numbers; "
                     "put the file back at that path to get them.")
        return None
    require_version(path, version, dataset_hash(path))
    data = read_training_data(path, model=None, context=cfg.context, val_share=cfg.val_share, seed=cfg.seed,
                              check_model=False, recorded=recorded)
    if not data.validation:
        notes.append("The run kept no validation examples (val_share 0 or fewer than 5 examples), so there are no "
                     "held-out numbers.")
    if data.dropped_rows:
        notes.append(f"{len(data.dropped_rows)} held-out row(s) were left out because the very same row is in the "
                     "training data: scoring them would measure memory, not skill.")
    return data
