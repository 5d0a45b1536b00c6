"""Live view of a training run in the chat: tails events.jsonl and renders progress, charts and diagnoses."""

from __future__ import annotations

import asyncio
from typing import Any

import chainlit as cl

from tools.run_events import TERMINAL

POLL_S = 1.0
CHART_EVERY_S = 10.0


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
    import plotly.graph_objects as go

    from tools.evaluate.report import LEGEND_BELOW

    fig = go.Figure()
    fig.add_scatter(x=[s for s, _ in steps], y=[v for _, v in steps], name="training loss", mode="lines")
    if evals:
        fig.add_scatter(x=[s for s, _ in evals], y=[v for _, v in evals], name="validation loss", mode="lines+markers")
    fig.update_layout(height=360, margin={"l": 40, "r": 10, "t": 30, "b": 90}, xaxis_title="step",
                      yaxis_title="loss", title="Loss", legend=LEGEND_BELOW)
    return fig


async def _draw(chart: cl.Message | None, steps: list[tuple[int, float]],
                evals: list[tuple[int, float]]) -> cl.Message:
    """One loss chart per run, redrawn in place (the old figure is removed, not stacked)."""
    fig: Any = cl.Plotly(name="loss", figure=loss_figure(steps, evals), display="inline")
    if chart is None:
        chart = cl.Message(content="Loss (training and validation):", elements=[fig])
        await chart.send()
        return chart
    for old in chart.elements:
        await old.remove()
    chart.elements = [fig]
    await chart.update()
    return chart


async def watch_run(run_dir: str, qid: int, since: int = 0) -> None:
    """Render the run until it ends (its Stop button answers question `qid`); the outcome is read afterwards."""
    from tools import jobs
    from tools.train.events import tail_events

    offset, total = since, None
    steps: list[tuple[int, float]] = []
    evals: list[tuple[int, float]] = []
    status = cl.Message(content="Training is starting (loading the model)…", metadata={"mtw_live": run_dir},
                        actions=[cl.Action(name="answer", payload={"qid": qid, "value": "stop", "label": "Stop"},
                                           label="Stop")])
    await status.send()
    chart: cl.Message | None = None
    last_chart = 0.0
    loop = asyncio.get_running_loop()
    while True:
        events, offset = await asyncio.to_thread(tail_events, run_dir, offset)
        for ev in events:
            kind = ev.get("type")
            if kind == "start":
                total = ev.get("total_steps") or ev.get("max_steps")
            elif kind == "step":
                steps.append((ev["step"], ev["loss"]))
                status.content = progress_text(ev, total)
            elif kind == "eval" and ev.get("val_loss") is not None:
                evals.append((ev["step"], ev["val_loss"]))
            elif kind == "diagnosis":
                await cl.Message(content=f"⚠️ {ev['message']}\n\n**Fix:** {ev.get('fix_text') or ev.get('fix')}").send()
            elif kind in TERMINAL:
                await status.remove_actions()
                status.content = final_text(kind, ev, steps, evals)
                status.metadata = {}
                await status.update()
                if steps:
                    await _draw(chart, steps, evals)
                return
        if events:
            await status.update()
        if steps and loop.time() - last_chart > CHART_EVERY_S:
            last_chart = loop.time()
            chart = await _draw(chart, steps, evals)
        record = await asyncio.to_thread(jobs.get_run, run_dir)
        if record.status == "lost":
            await status.remove_actions()
            status.content = "Training ended without saying why."
            status.metadata = {}
            await status.update()
            return
        await asyncio.sleep(POLL_S)
