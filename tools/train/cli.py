"""`mtw train`: fine-tune a base model on a dataset with LoRA, with a live progress bar (thin edge over the loops)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tools.errors import MTWError, storage_error
from tools.train.narrate import Narrator
from tools.vocabulary import PRESET_NAMES

if TYPE_CHECKING:
    from tools.dataset.model import Example
    from tools.dataset.readers import ReadResult


def _detect_task(result: ReadResult, data: str, method: str = "sft") -> tuple[str, list[str]]:
    """causal for chat-like files, classification for text+label, token for tokens+tags; with the label names.

    A preference `method` is refused for labelled data in one sentence: it needs a text generator.
    """
    if result.format in ("classification", "ner") and method != "sft":
        kind = "labelled text (text + label)" if result.format == "classification" else "tagged words (tokens + tags)"
        raise MTWError(f"--method {method} teaches a text generator from judgements, and {data} holds {kind}.",
                       fix="Leave out --method: this data trains its classifier with the default method.",
                       code="usage")
    if result.format == "classification":
        return "classification", sorted({ex.label for ex in result.examples if ex.label is not None})
    if result.format == "ner":
        return "token", sorted({t for ex in result.examples for t in ex.tags or []})
    return "causal", []


def _mapped_copy(data: str, maps: list[str], out: Path) -> str:
    """The dataset with its columns named by --map, written into the run folder as plain JSONL to train on."""
    from tools.dataset.checks import check_file
    from tools.dataset.mapping import parse_map
    from tools.dataset.readers import PREFERENCE_FORMATS
    from tools.dataset.writers import write_messages_jsonl, write_preferences_jsonl

    columns = parse_map(maps)
    rows: list[Any] = []  # the rows the check reads: the copy is written from them (the file is parsed once)
    report = check_file(data, column_map=columns, rows=rows)
    errors = [i for i in report.issues if i.severity == "error"]
    if errors:
        # each message already names its line
        raise MTWError(f"The dataset {data} read with --map {' --map '.join(maps)} has {len(errors)} error(s), "
                       f"so training did not start; first: {errors[0].message}",
                       fix=f"Run `{shlex.join(['mtw', 'check', data, *[a for m in maps for a in ('--map', m)]])}` "
                           "for the full report.",
                       code="dataset_errors")
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "dataset.jsonl"
    if report.format in PREFERENCE_FORMATS:
        write_preferences_jsonl(rows, copy)  # both answers of every pair, and every label
    else:
        write_messages_jsonl(rows, copy)
    return str(copy)


def train(
    data: str = typer.Option(None, "--data", help="The dataset file (JSONL/CSV; chat, text+label or tokens+tags)."),
    model: str = typer.Option(None, "--model", help="Base model: catalog name, Hugging Face id, folder, tiny-random."),
    out: Path = typer.Option(..., "--out", help="The run folder to create (or to continue with --resume)."),
    preset: str = typer.Option(None, "--preset", help=" | ".join(PRESET_NAMES) + "."),
    sets: list[str] = typer.Option([], "--set", help="Override one setting: --set key=value (repeatable)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    nproc: int = typer.Option(1, "--nproc", help="Train in N processes (data parallel, one per GPU or CPU share)."),
    maps: list[str] = typer.Option([], "--map", help="Which column holds which field: --map text=SMS "
                                                     "--map label=Label (repeatable)."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines taking part (each runs this command with --nproc)."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's number, 0 to nnodes-1 (0 writes the run)."),
    master: str = typer.Option(None, "--master", help="ADDR:PORT of machine 0, where the machines meet."),
    method: str = typer.Option("sft", "--method", help="sft: learn from examples (the default); dpo: from pairs of "
                                                       "answers, one judged better; kto: from answers rated good or "
                                                       "bad."),
    from_run: Path = typer.Option(None, "--from-run", help="Start from this run's adapter: a preference round on "
                                                           "top of it (its base model and LoRA settings are kept)."),
) -> None:
    """Fine-tune a base model on your dataset with LoRA.

    Models: tiny-random (built in, for trying the workflow), minilm (built in, for text+label and
    tokens+tags data), or phi-4-mini, llama-3.2-1b/3b, qwen2.5-0.5b/1.5b/3b, gemma-2-2b,
    smollm2-135m/360m/1.7b, any downloaded Hugging Face id or model folder, a .gguf file, or a
    model in your Ollama (trained on Ollama's own weights: nothing to download).
    """
    # the engine's modules are read when a run starts, not for `mtw --help`
    from tools.models.catalog import resolve
    from tools.train.config import build_config, load_run_config, reproduce_command
    from tools.train.inputs import dataset_rows, refuse_for_method
    from tools.train.launch import launch_argv, run_nproc, split_master
    from tools.train.rundir import check_out, with_max_steps

    narrator = Narrator(plain=os.environ.get("MTW_PLAIN_PROGRESS") == "1")
    read: ReadResult | None = None
    try:
        if resume:
            cfg = load_run_config(out)
            if max_steps is not None:  # a new end for the run: honoured, and said
                planned = cfg.max_steps
                cfg = with_max_steps(out, cfg, max_steps)
                if planned != max_steps:
                    narrator.console.print(f"--max-steps {max_steps}: the run now ends at step {max_steps} "
                                           f"({f'it was {planned}' if planned else 'it was to train whole epochs'})",
                                           highlight=False)
        else:
            check_out(out)  # before anything is written: a folder of the user's own files is refused
            from tools.train.preference import round_settings

            model, round_fields = round_settings(method, from_run, model)
            if not data or not model:
                raise MTWError("--data and --model are needed to start a run.",
                               fix="e.g. mtw train --data examples/pm_dataset.jsonl --model tiny-random "
                                   "--out runs/try1",
                               code="usage")
            if not Path(data).is_file():
                raise MTWError(f"The dataset {data} does not exist.", fix="Check the path given to --data.",
                               code="usage")
            if maps:
                data = _mapped_copy(data, maps, out)
            # the file is read once here; the task, the checks below, the estimate and the run share that read
            read = dataset_rows(data)
            task, labels = _detect_task(read, data, method)
            # the presets are the guide's values for generators; an encoder has its own (--set still wins)
            encoder: dict[str, Any] = {}
            if task != "causal" and preset is None:
                from tools.train.classify import ENCODER_DEFAULTS

                encoder = dict(ENCODER_DEFAULTS)
            cfg = build_config(model, data, preset=preset, sets=sets, max_steps=max_steps, task=task, labels=labels,
                               **encoder, **round_fields)
            if task == "causal":
                refuse_for_method(data, cfg.method, read.format, len(read.examples), cfg.min_examples)
            if task != "causal" and cfg.max_steps is None and not {"epochs", "max_steps"} & _set_keys(sets):
                cfg = _size_classifier(cfg, narrator, read.examples)
        if cfg.task == "causal":
            entry = resolve(cfg.model)  # an unknown model is a usage error, found before the run folder is made
            if cfg.context > entry.context and not resume:
                narrator.console.print(f"context lowered from {cfg.context} to {entry.context} tokens, the most "
                                       f"{cfg.model} reads", highlight=False)
                cfg = cfg.model_copy(update={"context": entry.context})
        if nproc * nnodes > 1 and cfg.method != "sft":
            raise MTWError(f"--nproc {nproc} is for supervised runs; a preference round trains in one process.",
                           fix="Leave out --nproc (and --nnodes).", code="usage")
        if nproc < 1 or (nproc * nnodes > 1 and cfg.task != "causal"):
            raise MTWError(f"--nproc {nproc} is not possible here.",
                           fix="Use --nproc 1 or more; several processes are for text-generation models only.",
                           code="usage")
        if cfg.sharding == "fsdp" and nproc * nnodes < 2:
            raise MTWError("sharding=fsdp splits the base model across training processes, and this run has one.",
                           fix="Add --nproc 2 (or more: one per GPU), or use --set sharding=auto.", code="usage")
        if nnodes < 1 or not 0 <= node_rank < nnodes:
            raise MTWError(f"--node-rank {node_rank} is not one of the {nnodes} machines.",
                           fix=f"Number the machines 0 to {max(0, nnodes - 1)}; machine 0 writes the run.",
                           code="usage")
        if nnodes > 1:
            if not master:
                raise MTWError("--nnodes needs --master ADDR:PORT: where the machines meet.",
                               fix="Give machine 0's address and a free port on every machine, e.g. "
                                   "--master 10.0.0.1:29500.", code="usage")
            split_master(master)
    except (MTWError, OSError) as exc:
        plain = _plain(exc, out)
        typer.secho(f"{plain.message}\n→ {plain.fix}", fg="red", err=True)
        raise typer.Exit(2) from None
    command = reproduce_command(cfg, out)
    _quiet_libraries()
    world = nproc * nnodes
    try:
        # a preference round estimates its own time at its start, from the pairs it will train on
        estimate_s = (None if resume or node_rank or cfg.method != "sft"
                      else _print_estimate(cfg, narrator, world, read.examples if read else None))
        if world > 1:
            argv = launch_argv(out, nproc, nnodes=nnodes, node_rank=node_rank, master=master, resume=resume,
                               estimate_s=estimate_s)
            final = run_nproc(cfg, out, argv, resume, command, narrator, main_node=node_rank == 0)
        elif cfg.task == "causal" and cfg.method != "sft":
            from tools.train.preference import train as run_round

            final = run_round(cfg, out, resume=resume, listener=narrator, command=command, estimate_s=estimate_s)
        elif cfg.task == "causal":
            from tools.train.sft import train as run_sft

            final = run_sft(cfg, out, resume=resume, listener=narrator, command=command, estimate_s=estimate_s)
        else:
            from tools.train.classify import train as run_classify

            final = run_classify(cfg, out, resume=resume, listener=narrator, command=command, estimate_s=estimate_s)
    except (MTWError, OSError) as exc:
        narrator.close()
        plain = _plain(exc, out)
        typer.secho(f"{plain.message}\n→ {plain.fix}", fg="red", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        # only possible while loading, before the first step: once training runs, Ctrl-C stops it cleanly
        narrator.close()
        typer.echo("stopped before the first training step; nothing to resume — run the same command again.")
        raise typer.Exit(130) from None
    narrator.close()
    _summary(final)


def _plain(exc: MTWError | OSError, out: Path) -> MTWError:
    """A read-only or full disk as one sentence with the fix; any other OSError is a bug, shown as such."""
    if isinstance(exc, MTWError):
        return exc
    again = ("run the same command again" if not (out / "events.jsonl").exists()
             else f"continue with `{shlex.join(['mtw', 'train', '--out', str(out), '--resume'])}`")
    plain = storage_error(exc, Path(exc.filename).parent if exc.filename else out, again=again)
    if plain is None:
        raise exc
    return plain


def _set_keys(sets: list[str]) -> set[str]:
    return {pair.partition("=")[0].strip() for pair in sets}


def _size_classifier(cfg: Any, narrator: Narrator, rows: list[Example] | None = None) -> Any:
    """Cap a default classifier run to what this machine trains in about ten minutes, and say so (`rows`: the
    dataset's, when already read)."""
    import torch

    from tools.train.classify import STEP_BUDGET_S, sized_steps
    if rows is None:
        from tools.train.inputs import dataset_rows

        rows = dataset_rows(cfg.data).examples
    texts = [r.text if cfg.task == "classification" else " ".join(r.tokens or []) for r in rows]
    steps = sized_steps(cfg, texts, cuda=torch.cuda.is_available())
    if steps is None:
        return cfg
    narrator.console.print(f"{cfg.epochs:g} epochs of {len(rows):,} examples would take too long on this machine: "
                           f"training {steps:,} steps (about {STEP_BUDGET_S // 60} minutes); --max-steps or "
                           "--set epochs=N trains longer", highlight=False)
    return cfg.model_copy(update={"max_steps": steps})


def _quiet_libraries() -> None:
    """Library chatter (e.g. 'classifier weights newly initialised', which is the point) is not for the user."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _print_estimate(cfg: Any, narrator: Narrator, nproc: int, rows: list[Example] | None = None) -> float | None:
    """Print the plan's verdict (memory and the whole run's time, this machine measured once per model and
    batch shape) and return the time shown, which the run's start event carries (`rows`: the dataset's, when
    already read)."""
    from tools.train.estimate import dataset_lengths, estimate
    from tools.train.memory import step_tokens as largest_step
    from tools.train.recipe import recipe_note
    from tools.train.timing import cached_calibration, calibration_key, process_started

    start = process_started()
    lengths = dataset_lengths(cfg, rows)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if cached_calibration(calibration_key(cfg, device, largest_step(cfg, lengths, device == "cuda"))) is None:
        narrator.console.print(f"measuring this machine's speed with {cfg.model} (once for this model and batch "
                               "size)…", highlight=False)
    e = estimate(cfg, device=device, measure=True, lengths=lengths, world=nproc, process_start=start)
    sized = recipe_note(cfg, e.passes)
    if sized:
        narrator.console.print(f"recipe: {sized} (--set learning_rate=… or --set epochs=… to choose yourself)",
                               highlight=False)
    colour = "green" if e.fits else "red"
    narrator.console.print(f"[{colour}]estimate:[/] {e.verdict}", highlight=False)
    if not e.fits and nproc > 1 and cfg.sharding != "none":
        narrator.console.print(f"  → the base will be sharded across the {nproc} processes (FSDP), each holding "
                               f"about 1/{nproc} of its weights", highlight=False)
    for change in e.changes:
        narrator.console.print(f"  → {change}", highlight=False)
    return e.seconds


def _summary(final: dict[str, Any]) -> None:
    kind = final.get("type")
    if kind == "done":
        m = final.get("metrics", {})
        parts = [f"{k.replace('_', ' ')} {v}" for k, v in m.items() if v is not None]
        run_dir = Path(final["adapter"]).parent
        typer.secho(f"done: adapter in {final['adapter']}", fg="green")
        typer.echo("  " + ", ".join(parts))
        typer.echo(f"next: {shlex.join(['mtw', 'eval', str(run_dir)])}   then   "
                   f"{shlex.join(['mtw', 'export', str(run_dir)])} --name NAME")
        raise typer.Exit(0)
    if kind == "stopped":
        typer.echo(final["message"])
        raise typer.Exit(0)
    typer.secho(f"training failed: {final.get('message')}", fg="red", err=True)
    if final.get("fix"):
        typer.echo(f"→ {final['fix']}", err=True)
    raise typer.Exit(1)
