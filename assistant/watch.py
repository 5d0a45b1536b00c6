"""The live view of a training run, read: events.jsonl tailed into what the chat shows (the live line, warnings,
the loss chart, the end). A pure reader: assistant/render.py renders what it yields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict

import plotly.graph_objects as go

from tools import jobs
from tools.evaluate.report import LEGEND_BELOW
from tools.run_events import TERMINAL
from tools.train.events import tail_events

POLL_S = 1.0
CHART_EVERY_S = 10.0
STARTING = "Training is starting (loading the model)…"
"""The live line before the run's first step."""
LOST = "Training ended without saying why."


class Live(TypedDict):
    """One change to the live view: the line (`line`, or `end` when the run is over and its Stop button goes), a
    warning under it (`note`), or the loss chart drawn again in place (`chart`, with its points)."""

    live: Literal["line", "note", "chart", "end"]
    text: str
    steps: list[tuple[int, float]]
    evals: list[tuple[int, float]]


def _live(kind: Literal["line", "note", "chart", "end"], text: str = "", steps: list[tuple[int, float]] | None = None,
          evals: list[tuple[int, float]] | None = None) -> Live:
    return Live(live=kind, text=text, steps=list(steps or []), evals=list(evals or []))


def progress_text(ev: dict[str, Any], total: int | None) -> str:
    """One line a person can read: step, loss, speed, time left."""
    of = f" of {total}" if total else ""
    eta = f", about {int(ev['eta_s']) // 60} min {int(ev['eta_s']) % 60} s left" if ev.get("eta_s") else ""
    recomputed = ev.get("checkpointed_layers")
    saver = f" · saving memory by recomputing {recomputed} layers" if recomputed else ""
    return (f"Training: step **{ev['step']}{of}** · loss {ev['loss']:.3f} · "
            f"{ev.get('tokens_per_s', 0):.0f} tokens/s{eta}{saver}")


def final_text(kind: str, ev: dict[str, Any], steps: list[tuple[int, float]],
               evals: list[tuple[int, float]]) -> str:
    """The live line once the run has ended: how far it got and where the loss ended."""
    if kind == "failed":
        return f"Training failed: {ev.get('message', '')}"
    where = f" at step {steps[-1][0]}, loss {steps[-1][1]:.3f}" if steps else ""
    val = f" (validation {evals[-1][1]:.3f})" if evals and kind == "done" else ""
    return ("Training done" if kind == "done" else "Training stopped") + where + val + "."


def loss_figure(steps: list[tuple[int, float]], evals: list[tuple[int, float]]) -> Any:
    """Training and validation loss as a Plotly figure."""
    fig = go.Figure()
    fig.add_scatter(x=[s for s, _ in steps], y=[v for _, v in steps], name="training loss", mode="lines")
    if evals:
        fig.add_scatter(x=[s for s, _ in evals], y=[v for _, v in evals], name="validation loss", mode="lines+markers")
    fig.update_layout(height=360, margin={"l": 40, "r": 10, "t": 30, "b": 90}, xaxis_title="step",
                      yaxis_title="loss", title="Loss", legend=LEGEND_BELOW)
    return fig


async def follow_run(run_dir: str, since: int = 0) -> AsyncIterator[Live]:
    """What the live view shows of the run, from byte `since` of its events until it ends (its outcome is read by
    the graph afterwards)."""
    offset, total = since, None
    steps: list[tuple[int, float]] = []
    evals: list[tuple[int, float]] = []
    last_chart = 0.0
    loop = asyncio.get_running_loop()
    while True:
        events, offset = await asyncio.to_thread(tail_events, run_dir, offset)
        line = ""
        for ev in events:
            kind = ev.get("type")
            if kind == "start":
                total = ev.get("total_steps") or ev.get("max_steps")
            elif kind == "step":
                steps.append((ev["step"], ev["loss"]))
                line = progress_text(ev, total)
            elif kind == "eval" and ev.get("val_loss") is not None:
                evals.append((ev["step"], ev["val_loss"]))
            elif kind == "diagnosis":
                yield _live("note", f"⚠️ {ev['message']}\n\n**Fix:** {ev.get('fix_text') or ev.get('fix')}")
            elif kind in TERMINAL:
                yield _live("end", final_text(kind, ev, steps, evals))
                if steps:
                    yield _live("chart", steps=steps, evals=evals)
                return
        if line:
            yield _live("line", line)
        if steps and loop.time() - last_chart > CHART_EVERY_S:
            last_chart = loop.time()
            yield _live("chart", steps=steps, evals=evals)
        record = await asyncio.to_thread(jobs.get_run, run_dir)
        if record.status == "lost":
            yield _live("end", LOST)
            return
        await asyncio.sleep(POLL_S)
