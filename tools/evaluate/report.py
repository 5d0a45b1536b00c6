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
# a held-out loss within 5 % of the base's means the adapter has hardly moved the model yet
LITTLE_CHANGE = 0.05
# below this many held-out texts a single example moves accuracy by more than 5 points
FEW_HELD_OUT = 20
STRUCTURE_CHECKS = ("user_story", "list", "update")
OLLAMA = "ollama:"
"""Prefix of an answer source served by Ollama in `base_source` / `tuned_source`: "ollama:PM-General-v1"."""
TINY_NOTE = ("(tiny-random is a randomly initialised model for trying the workflow: it learns the format of a "
             "dataset, nothing more, so its answers are not meant to read well.)")


def ollama_name(source: str | None) -> str | None:
    """The Ollama model behind a report's `tuned_source` / `base_source` ("ollama:NAME"), None for local answers."""
    return source.removeprefix(OLLAMA) if source and source.startswith(OLLAMA) else None


def variant_label(report: dict[str, Any], v: str) -> str:
    """'base' / 'tuned', with the Ollama model named when that side's answers came from Ollama."""
    name = ollama_name(report.get(f"{v}_source"))
    return f"{v} (Ollama: {name})" if name else v


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarize(prompts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: prompts that pass every check, that have the asked structure, that stop; ROUGE-L; judge means."""
    out: dict[str, Any] = {}
    for v in VARIANTS:
        rows = [p[v] for p in prompts if v in p]
        structured = [r for r in rows if any(c["name"] in STRUCTURE_CHECKS for c in r["checks"])]
        stories = [r for r in rows if any(c["name"] == "user_story" for c in r["checks"])]
        judged = [r["judge"] for r in rows if r.get("judge")]
        out[v] = {
            "prompts": len(rows),
            "all_checks_pass": sum(r["format_ok"] for r in rows),
            "structure_total": len(structured),
            "structure_pass": sum(all(c["passed"] for c in r["checks"] if c["name"] in STRUCTURE_CHECKS)
                                  for r in structured),
            "user_story_total": len(stories),
            "user_story_pass": sum(any(c["name"] == "user_story" and c["passed"] for c in r["checks"])
                                   for r in stories),
            "stopped": sum(r["stopped"] for r in rows),
            "rouge_l": _mean([r["rouge_l"] for r in rows if r.get("rouge_l") is not None]),
            "judge": {c: _mean([j[c]["score"] for j in judged]) for c in CRITERIA} if judged else None,
            "judge_mean": _mean([sum(j[c]["score"] for c in CRITERIA) / len(CRITERIA) for j in judged]),
        }
    cats: dict[str, Any] = {}
    for cat in sorted({p["category"] for p in prompts}):
        rows = [p for p in prompts if p["category"] == cat]
        cats[cat] = {v: {"checks_pass": sum(p[v]["format_ok"] for p in rows if v in p), "prompts": len(rows),
                         "judge_mean": _mean([sum(p[v]["judge"][c]["score"] for c in CRITERIA) / len(CRITERIA)
                                              for p in rows if p.get(v, {}).get("judge")])}
                     for v in VARIANTS}
    out["by_category"] = cats
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _words(category: str) -> str:
    return category.replace("_", " ")


def _quoted(labels: list[str]) -> str:
    return " or ".join(f"'{lab}'" for lab in labels)


def baseline_sentences(tuned: dict[str, Any], majority: dict[str, Any] | None) -> list[str]:
    """The majority-class baseline named, and said plainly when the classifier does not beat it."""
    missed = [lab for lab, m in tuned["per_label"].items() if m["support"] and m["recall"] == 0]
    weak = [lab for lab, m in tuned["per_label"].items() if m["support"] and 0 < m["recall"] < 0.5]
    out: list[str] = []
    if majority is not None:
        common, base_acc, acc = majority["label"], majority["accuracy"], tuned["accuracy"]
        scores = f"always answering '{common}' would score {base_acc:.3f}; this model scores {acc:.3f}"
        rare = [lab for lab in missed if lab != common]
        # compared as shown: a model equal to the guess at three decimals has not beaten it
        if round(acc, 3) <= round(base_acc, 3) or tuned["f1"] <= majority["f1"]:
            what = f"it has not learned to find {_quoted(rare)}" if rare else "it does no better than that guess"
            out.append(f"{scores[0].upper()}{scores[1:]} — {what}. Train longer, or add more examples of the "
                       "rarer labels, before using it.")
            missed = [lab for lab in missed if lab not in rare]
        else:
            out.append(f"{scores[0].upper()}{scores[1:]}: it beats that guess.")
    if missed:
        out.append(f"It finds none of the {_quoted(missed)} examples: add more of those.")
    if weak:
        out.append(f"It finds fewer than half of the {_quoted(weak)} examples: add more of those.")
    return out


def verdict(report: dict[str, Any]) -> str:
    """One plain paragraph: did tuning help, where, and where it got worse."""
    task, held, s = report["task"], report.get("heldout") or {}, report.get("summary") or {}
    out: list[str] = []
    if task == "classification" and {"base", "tuned"} <= set(held):
        b, t = held["base"], held["tuned"]
        out.append(f"The tuned classifier labels {t['correct']} of {t['n']} held-out texts correctly "
                   f"({_pct(t['accuracy'])}; base: {b['correct']} of {b['n']}, {_pct(b['accuracy'])}), "
                   f"macro F1 {t['f1']:.2f} (base {b['f1']:.2f}).")
        if t["n"] < FEW_HELD_OUT:
            out.append(f"With only {t['n']} held-out texts, one more right or wrong moves accuracy by "
                       f"{100 / t['n']:.0f} points: add examples before trusting small differences.")
        n_mix, gold_lab, pred_lab = max(((t["confusion"][i][j], g, p) for i, g in enumerate(t["labels"])
                                         for j, p in enumerate(t["labels"]) if i != j), default=(0, "", ""))
        if n_mix:
            out.append(f"It most often mistakes '{gold_lab}' for '{pred_lab}' ({n_mix} time{'s' * (n_mix > 1)}).")
        out += baseline_sentences(t, held.get("majority"))
    elif task == "token" and {"base", "tuned"} <= set(held):
        b, t = held["base"], held["tuned"]
        out.append(f"The tuned tagger finds the entities with F1 {t['f1']:.2f} (precision {t['precision']:.2f}, "
                   f"recall {t['recall']:.2f}; base F1 {b['f1']:.2f}) on {t['n']} held-out sentences.")
    elif {"base", "tuned"} <= set(held):
        b, t = held["base"], held["tuned"]
        direction = "fell" if t["val_loss"] < b["val_loss"] else "rose"
        out.append(f"On held-out examples the loss {direction} from {b['val_loss']:.2f} to {t['val_loss']:.2f} "
                   f"(perplexity {b['perplexity']:.3g} → {t['perplexity']:.3g}).")
        if b["val_loss"] - t["val_loss"] < LITTLE_CHANGE * b["val_loss"]:
            out.append("Training has barely changed the model yet: train longer (more steps or epochs) before "
                       "judging its answers.")
    if task == "causal" and s:
        b, t = s["base"], s["tuned"]
        served = ollama_name(report.get("tuned_source"))
        if served:
            out.append(f"The tuned answers to the test prompts come from '{served}' as your Ollama serves it.")
        if t["user_story_total"]:
            out.append(f"The tuned model follows your user-story format in {t['user_story_pass']} of "
                       f"{t['user_story_total']} prompts (base: {b['user_story_pass']} of {b['user_story_total']}).")
        elif t["structure_total"]:
            out.append(f"The tuned model gives the asked structure in {t['structure_pass']} of {t['structure_total']} "
                       f"prompts (base: {b['structure_pass']} of {b['structure_total']}).")
        out.append(f"It passes every format check in {t['all_checks_pass']} of {t['prompts']} prompts "
                   f"(base: {b['all_checks_pass']} of {b['prompts']}).")
        if t["stopped"] != b["stopped"]:
            out.append(f"It ends its answer by itself in {t['stopped']} of {t['prompts']} prompts "
                       f"(base: {b['stopped']} of {b['prompts']}).")
        if t["stopped"] < t["prompts"]:
            out.append(f"In {t['prompts'] - t['stopped']} prompt(s) it did not end its answer and ran to the length "
                       "limit: check the chat template and stop tokens before exporting.")
        if t["rouge_l"] is not None and b["rouge_l"] is not None:
            closer = "closer to" if t["rouge_l"] > b["rouge_l"] else "no closer to"
            out.append(f"Its answers are {closer} your validation answers (ROUGE-L {b['rouge_l']:.2f} → "
                       f"{t['rouge_l']:.2f}).")
        if t["judge"] and b["judge"]:
            rises = sorted(CRITERIA, key=lambda c: t["judge"][c] - b["judge"][c])
            best, worst = str(rises[-1]), str(rises[0])
            gain = t["judge"][best] - b["judge"][best]
            moved = (f"{best} scores rose most, from {b['judge'][best]:.1f} to {t['judge'][best]:.1f}" if gain > 0
                     else "no criterion scored higher than the base")
            out.append(f"Judge scores average {b['judge_mean']:.1f} → {t['judge_mean']:.1f} out of 5 "
                       f"(target 4 or more); {moved}.")
            if t["judge"][worst] < b["judge"][worst]:
                out.append(f"{worst.capitalize()} scores fell from {b['judge'][worst]:.1f} to "
                           f"{t['judge'][worst]:.1f}.")
        worse = []
        for cat, v in s["by_category"].items():
            bj, tj = v["base"]["judge_mean"], v["tuned"]["judge_mean"]
            if v["tuned"]["checks_pass"] < v["base"]["checks_pass"] or (bj is not None and tj is not None and tj < bj):
                worse.append(_words(cat))
        out.append(f"It got worse at {', '.join(worse)}." if worse else "It did not get worse in any category.")
    if not out:
        out.append("There was nothing to compare: the run kept no validation examples and no prompts were answered.")
    if report.get("model") == "tiny-random":
        out.append(TINY_NOTE)
    return " ".join(out)


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
                score = f" · judge {r['judge_mean']:.1f}" if r.get("judge_mean") is not None else ""
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
