"""The evaluation report: per-prompt results summed up, a plain verdict, markdown, and charts (PNG + Plotly JSON)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tools.evaluate.judge import CRITERIA
from tools.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "center", "x": 0.5}
"""Under the plot: the chart's toolbar sits at the top right, where a default legend would be covered."""

VARIANTS = ("base", "tuned")
STRUCTURE_CHECKS = ("user_story", "list", "update", "dataset_format")
"""The checks of what the user asked for: the structure of the answer (not stopping, terms or template leaks)."""
OLLAMA = "ollama:"
"""Prefix of an answer source served by Ollama in `base_source` / `tuned_source`: "ollama:PM-General-v1"."""


def ollama_name(source: str | None) -> str | None:
    """The Ollama model behind a report's `tuned_source` / `base_source` ("ollama:NAME"), None for local answers."""
    return source.removeprefix(OLLAMA) if source and source.startswith(OLLAMA) else None


def variant_label(report: dict[str, Any], v: str) -> str:
    """'base' / 'tuned', with the Ollama model named when that side's answers came from Ollama."""
    name = ollama_name(report.get(f"{v}_source"))
    return f"{v} (Ollama: {name})" if name else v


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _structure_ok(r: dict[str, Any]) -> bool:
    return all(c["passed"] for c in r["checks"] if c["name"] in STRUCTURE_CHECKS)


def _has_structure(r: dict[str, Any]) -> bool:
    return any(c["name"] in STRUCTURE_CHECKS for c in r["checks"])


def _judge_mean(j: dict[str, Any]) -> float:
    return sum(j[c]["score"] for c in CRITERIA) / len(CRITERIA)


def summarize(prompts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: prompts that pass every check, that have the asked structure, that stop; ROUGE-L; judge means.

    Per category the same, with the judge compared only where it scored both answers to a prompt.
    """
    out: dict[str, Any] = {}
    for v in VARIANTS:
        rows = [p[v] for p in prompts if v in p]
        structured = [r for r in rows if _has_structure(r)]
        stories = [r for r in rows if any(c["name"] == "user_story" for c in r["checks"])]
        own = [r for r in rows if any(c["name"] == "dataset_format" for c in r["checks"])]
        judged = [r["judge"] for r in rows if r.get("judge")]
        out[v] = {
            "prompts": len(rows),
            "all_checks_pass": sum(r["format_ok"] for r in rows),
            "structure_total": len(structured),
            "structure_pass": sum(_structure_ok(r) for r in structured),
            "user_story_total": len(stories),
            "user_story_pass": sum(any(c["name"] == "user_story" and c["passed"] for c in r["checks"])
                                   for r in stories),
            "dataset_format_total": len(own),
            "dataset_format_pass": sum(any(c["name"] == "dataset_format" and c["passed"] for c in r["checks"])
                                       for r in own),
            "stopped": sum(r["stopped"] for r in rows),
            "rouge_l": _mean([r["rouge_l"] for r in rows if r.get("rouge_l") is not None]),
            "judged": len(judged),
            "judge": {c: _mean([j[c]["score"] for j in judged]) for c in CRITERIA} if judged else None,
            "judge_mean": _mean([_judge_mean(j) for j in judged]),
        }
    cats: dict[str, Any] = {}
    for cat in sorted({p["category"] for p in prompts}):
        rows = [p for p in prompts if p["category"] == cat and all(v in p for v in VARIANTS)]
        pairs = [p for p in rows if all(p[v].get("judge") for v in VARIANTS)]
        refs = [p for p in rows if p.get("reference")]
        cats[cat] = {v: {"checks_pass": sum(p[v]["format_ok"] for p in rows), "prompts": len(rows),
                         "structure_total": sum(_has_structure(p[v]) for p in rows),
                         "structure_pass": sum(_has_structure(p[v]) and _structure_ok(p[v]) for p in rows),
                         "judged": len(pairs), "judge_mean": _mean([_judge_mean(p[v]["judge"]) for p in pairs]),
                         "references": len(refs),
                         "rouge_l": _mean([p[v]["rouge_l"] for p in refs if p[v].get("rouge_l") is not None])}
                     for v in VARIANTS}
    out["by_category"] = cats
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _words(category: str) -> str:
    return category.replace("_", " ")


ENGINES = {"llama.cpp": "llama.cpp (the base GGUF, with the adapter off and on)",
           "pytorch": "PyTorch on this machine"}


def generation_line(g: dict[str, Any]) -> str:
    """How the answers were made: the engine, and the length cap with where it came from."""
    why = f" ({g['cap_reason']})" if g.get("cap_reason") else ""
    took = f", in {g['seconds']:.0f} s" if g.get("seconds") is not None else ""
    return (f"Answers from {ENGINES.get(g.get('engine', ''), g.get('engine'))}, each up to "
            f"{g['max_new_tokens']} new tokens{why}{took}.")


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: the verdict, the numbers, and every prompt's answers side by side."""
    served = {v: n for v in VARIANTS if (n := ollama_name(report.get(f"{v}_source")))}
    lines = [f"# Evaluation of {report['run_dir']}", "", f"Base model: `{report['model']}` · task: {report['task']}"
             + (f" · judge: `{report['judge_model']}`" if report.get("judge_model") else "")
             + "".join(f" · {v} answers: Ollama `{n}`" for v, n in served.items()), "",
             "## Verdict", "", report["verdict"], ""] + [f"> Note: {n}\n" for n in report.get("notes") or []]
    if report.get("generation"):
        lines += [generation_line(report["generation"]), ""]
    held = report.get("heldout") or {}
    if held:
        keys = [k for k in ("val_loss", "perplexity", "accuracy", "precision", "recall", "f1", "token_accuracy")
                if k in held.get("tuned", {})]
        lines += ["## Held-out examples", ""]
        if served:
            lines += ["Measured with the run's adapter on this machine (Ollama answers only the test prompts).", ""]
        lines += ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += [f"| {v} | " + " | ".join(_fmt(held[v].get(k)) for k in keys) + " |" for v in VARIANTS if v in held]
        if "majority" in held:
            m = held["majority"]
            lines.append(f"| always '{m['label']}' | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |")
        if "confusion" in held.get("tuned", {}):
            labs = held["tuned"]["labels"]
            lines += ["", "Confusion matrix of the tuned model (rows: true label, columns: predicted):", "",
                      "| | " + " | ".join(labs) + " |", "|---" * (len(labs) + 1) + "|"]
            lines += [f"| {lab} | " + " | ".join(map(str, row)) + " |"
                      for lab, row in zip(labs, held["tuned"]["confusion"], strict=True)]
        lines.append("")
    s = report.get("summary")
    if s and report.get("prompts"):
        lines += ["## Test prompts", "", "| | all checks pass | stops by itself | ROUGE-L | judge (1-5) |",
                  "|---|---|---|---|---|"]
        for v in VARIANTS:
            x = s[v]
            lines.append(f"| {variant_label(report, v)} | {x['all_checks_pass']} of {x['prompts']} | "
                         f"{x['stopped']} of {x['prompts']} | "
                         f"{_fmt(x['rouge_l'])} | {_fmt(x['judge_mean'])} |")
        if s["tuned"]["judge"]:
            lines += ["", "| criterion | base | tuned |", "|---|---|---|"]
            lines += [f"| {c} | {_fmt(s['base']['judge'][c])} | {_fmt(s['tuned']['judge'][c])} |" for c in CRITERIA]
        lines.append("")
        for p in report["prompts"]:
            lines += [f"### {p['id']} ({_words(p['category'])})", "", f"> {p['prompt']}", ""]
            for v in VARIANTS:
                r = p[v]
                failed = [f"{c['name']}: {c['detail']}" for c in r["checks"] if not c["passed"]]
                score = (f" · judge {r['judge_mean']:.1f}" if r.get("judge_mean") is not None else
                         f" · judge left out: {r['judge_left_out']}" if r.get("judge_left_out") else "")
                lines += [f"**{v}** — {'passes every check' if not failed else '; '.join(failed)}{score}", "",
                          "```text", r["answer"] or "(empty)", "```", ""]
    if report.get("agreement"):
        a = report["agreement"]
        lines += ["## Judge vs your scores", "",
                  f"{a['n']} scores compared: mean difference {a['mean_abs_diff']:.2f} points, "
                  f"{_pct(a['within_one'])} within one point, weighted kappa {a['kappa']:.2f}.", ""]
    if report.get("diagnoses"):
        lines += ["## Training health", ""] + [f"- **{d['code']}**: {d['message']} Fix: {d['fix_text']}"
                                                 for d in report["diagnoses"]] + [""]
    if report.get("charts"):
        lines += ["## Charts", ""] + [f"![{name}]({file})" for name, file in report["charts"].items()
                                      if file.endswith(".png")] + [""]
    return "\n".join(lines)


def loss_figure(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Plotly figure (plain JSON) of training vs validation loss by step; None without step events."""
    steps = [(e["step"], e["loss"]) for e in events
             if e.get("type") == "step" and isinstance(e.get("loss"), int | float)]
    evals = [(e["step"], e["val_loss"]) for e in events
             if e.get("type") == "eval" and isinstance(e.get("val_loss"), int | float)]
    if not steps:
        return None
    data = [{"type": "scatter", "mode": "lines", "name": "training loss",
             "x": [s for s, _ in steps], "y": [v for _, v in steps]}]
    if evals:
        data.append({"type": "scatter", "mode": "lines+markers", "name": "validation loss",
                     "x": [s for s, _ in evals], "y": [v for _, v in evals]})
    return {"data": data, "layout": {"title": {"text": "Loss: training vs validation"}, "legend": LEGEND_BELOW,
                                     "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": "loss"}}}}


def scores_figure(report: dict[str, Any]) -> dict[str, Any] | None:
    """Plotly bar chart, base vs tuned: judge criteria, classifier metrics, or share of prompts passing checks."""
    held, s = report.get("heldout") or {}, report.get("summary") or {}
    if report["task"] != "causal" and {"base", "tuned"} <= set(held):
        names = [k for k in ("accuracy", "precision", "recall", "f1") if k in held["tuned"]]
        values = {v: [held[v][k] for k in names] for v in VARIANTS}
        title, axis = "Held-out metrics: base vs tuned", "0 to 1"
    elif s and s["tuned"]["judge"] and s["base"]["judge"]:
        names = list(CRITERIA)
        values = {v: [s[v]["judge"][c] for c in CRITERIA] for v in VARIANTS}
        title, axis = "Judge scores (1-5): base vs tuned", "score"
    elif s and s["tuned"]["prompts"]:
        cats = s["by_category"]
        names = [_words(c) for c in cats]
        values = {v: [cats[c][v]["checks_pass"] / max(1, cats[c][v]["prompts"]) for c in cats] for v in VARIANTS}
        title, axis = "Share of prompts passing every format check", "share"
    else:
        return None
    return {"data": [{"type": "bar", "name": v, "x": names, "y": values[v]} for v in VARIANTS],
            "layout": {"title": {"text": title}, "barmode": "group", "legend": LEGEND_BELOW,
                       "yaxis": {"title": {"text": axis}}}}


def figure_png(fig: dict[str, Any]) -> bytes:
    """Draw one of our Plotly figures with matplotlib (Agg) for report.md and terminals."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(7, 4), dpi=100)
    traces = fig["data"]
    if traces[0]["type"] == "bar":
        width = 0.8 / len(traces)
        n = len(traces[0]["x"])
        for k, t in enumerate(traces):
            ax.bar([i + k * width for i in range(n)], t["y"], width, label=t["name"])
        ax.set_xticks([i + width * (len(traces) - 1) / 2 for i in range(n)], traces[0]["x"], rotation=15)
    else:
        for t in traces:
            ax.plot(t["x"], t["y"], marker="o" if "markers" in t["mode"] else None, label=t["name"])
        ax.set_xlabel(fig["layout"]["xaxis"]["title"]["text"])
    ax.set_ylabel(fig["layout"]["yaxis"]["title"]["text"])
    ax.set_title(fig["layout"]["title"]["text"])
    ax.legend()
    f.tight_layout()
    buf = io.BytesIO()
    f.savefig(buf, format="png")
    plt.close(f)
    return buf.getvalue()


def report_dir(run_dir: str | Path, ollama_model: str | None = None) -> Path:
    """Where an evaluation is written: RUN_DIR/eval/, or RUN_DIR/eval/ollama/NAME/ for the model as Ollama serves it
    (so checking the exported model never replaces the local comparison)."""
    out = Path(run_dir) / "eval"
    if ollama_model:
        out = out / "ollama" / re.sub(r"[^A-Za-z0-9._-]+", "_", ollama_model)
    return out


def write_report(run_dir: str | Path, report: dict[str, Any], events: list[dict[str, Any]],
                 out: Path | None = None) -> Path:
    """Write report.json, report.md, loss and score charts as PNG and Plotly JSON (to RUN_DIR/eval/ by default)."""
    out = out or report_dir(run_dir)
    charts: dict[str, str] = {}
    for name, fig in (("loss", loss_figure(events)), ("scores", scores_figure(report))):
        if fig is not None:
            atomic_write_json(out / f"{name}.plotly.json", fig)
            atomic_write_bytes(out / f"{name}.png", figure_png(fig))
            charts[f"{name}_png"] = f"{name}.png"
            charts[f"{name}_plotly"] = f"{name}.plotly.json"
    report["charts"] = charts
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report))
    return out


def confusion_figure(labels: list[str], matrix: list[list[int]]) -> dict[str, Any]:
    """The confusion matrix as a Plotly heatmap: true labels down, predicted across."""
    return {"data": [{"type": "heatmap", "z": matrix, "x": labels, "y": labels, "colorscale": "Blues",
                      "text": matrix, "texttemplate": "%{text}"}],
            "layout": {"title": {"text": "Confusion matrix (held-out texts)"},
                       "xaxis": {"title": {"text": "predicted"}},
                       "yaxis": {"title": {"text": "true label"}, "autorange": "reversed"}}}
