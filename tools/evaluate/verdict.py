"""The verdict: one plain paragraph, leading with what the user asked for — the format, closeness to their own
answers, the judge — each base → tuned, then loss and stopping; "got worse" only where a drop is beyond noise."""

from __future__ import annotations

import math
from typing import Any

from tools.evaluate.judge import CRITERIA
from tools.evaluate.report import ollama_name
from tools.evaluate.suite import STRUCTURE_WORDS

LITTLE_CHANGE = 0.05
"""A held-out loss within 5 % of the base's means the adapter has hardly moved the model yet."""
FEW_HELD_OUT = 20
"""Below this many held-out texts a single example moves accuracy by more than 5 points."""
ROUGE_NOISE = 0.02
"""ROUGE-L differences smaller than this are wording noise, not closer or further."""
JUDGE_DROP = 1.0
"""A category got worse by the judge only when its mean fell by a full point or more ..."""
JUDGE_PAIRS = 2
"""... over at least this many prompts the judge scored on both sides."""
ROUGE_DROP = 0.05
"""A category got further from the user's answers only when ROUGE-L fell by this much ..."""
ROUGE_REFERENCES = 3
"""... over at least this many reference answers."""
TINY_NOTE = ("(tiny-random is a randomly initialised model for trying the workflow: it learns the format of a "
             "dataset, nothing more, so its answers are not meant to read well.)")


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


def labels_sentences(task: str, held: dict[str, Any]) -> list[str]:
    """A classifier's or tagger's held-out numbers, base vs tuned, in words."""
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
    return out


def format_sentences(b: dict[str, Any], t: dict[str, Any], structure: list[str]) -> list[str]:
    """What the user asked for first: the format, base → tuned (the user-story form and the dataset's own)."""
    out: list[str] = []
    if t["structure_total"]:
        out.append(f"Format: the tuned model writes the asked format in {t['structure_pass']} of "
                   f"{t['structure_total']} prompts (base: {b['structure_pass']} of {b['structure_total']}).")
    if t["user_story_total"]:
        out.append(f"It follows your user-story format in {t['user_story_pass']} of {t['user_story_total']} prompts "
                   f"(base: {b['user_story_pass']} of {b['user_story_total']}).")
    if t["dataset_format_total"]:
        shape = " and ".join(STRUCTURE_WORDS[k] for k in structure) or "their structure"
        out.append(f"It answers your held-out prompts in your dataset's format ({shape}) in "
                   f"{t['dataset_format_pass']} of {t['dataset_format_total']} (base: {b['dataset_format_pass']} "
                   f"of {b['dataset_format_total']}).")
    return out


def rouge_sentence(b: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """How close the answers come to the user's own held-out answers, base → tuned."""
    if t["rouge_l"] is None or b["rouge_l"] is None:
        return []
    gain = t["rouge_l"] - b["rouge_l"]
    how = ("closer to your held-out answers than" if gain > ROUGE_NOISE else
           "further from your held-out answers than" if gain < -ROUGE_NOISE else
           "about as close to your held-out answers as")
    return [f"Its answers are {how} the base's (ROUGE-L {b['rouge_l']:.2f} → {t['rouge_l']:.2f})."]


def left_out_sentence(left: dict[str, Any] | None) -> list[str]:
    """Says plainly how many answers the judge's scores were left out for, and why."""
    if not left or not left["n"]:
        return []
    why = "; ".join(f"{n} because {reason}" if len(left["reasons"]) > 1 else f"because {reason}"
                    for reason, n in left["reasons"].items())
    share = "all" if left["n"] == left["of"] else f"{left['n']} of"
    return [f"The judge's scores were left out for {share} {left['of']} answers ({why}); everything else above "
            "is measured without it."]


def judge_sentences(b: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """The judge's means, base → tuned, and the criterion that moved most either way."""
    if not (t["judge"] and b["judge"]):
        return []
    rises = sorted(CRITERIA, key=lambda c: t["judge"][c] - b["judge"][c])
    best, worst = str(rises[-1]), str(rises[0])
    gain = t["judge"][best] - b["judge"][best]
    moved = (f"{best} scores rose most, from {b['judge'][best]:.1f} to {t['judge'][best]:.1f}" if gain > 0
             else "no criterion scored higher than the base")
    out = [f"Judge: scores average {b['judge_mean']:.1f} → {t['judge_mean']:.1f} out of 5 (target 4 or more); "
           f"{moved}."]
    if t["judge"][worst] < b["judge"][worst]:
        out.append(f"{worst.capitalize()} scores fell from {b['judge'][worst]:.1f} to {t['judge'][worst]:.1f}.")
    return out


def worse_categories(by_category: dict[str, Any]) -> list[str]:
    """Categories where the tuned model is measurably worse: its format, the judge or ROUGE-L fell beyond noise.

    Stopping, named terms and template leaks are not evidence here (they have their own sentences), and a
    category with no format check, no judge scores and no reference answers cannot be said to get worse.
    """
    worse = []
    for cat, v in by_category.items():
        b, t = v["base"], v["tuned"]
        lost = b["structure_pass"] - t["structure_pass"]
        by_format = t["structure_total"] and lost >= max(2, -(-t["structure_total"] // 3))
        by_judge = (t["judged"] >= JUDGE_PAIRS and t["judge_mean"] is not None and b["judge_mean"] is not None
                    and t["judge_mean"] <= b["judge_mean"] - JUDGE_DROP)
        by_rouge = (t["references"] >= ROUGE_REFERENCES and t["rouge_l"] is not None and b["rouge_l"] is not None
                    and t["rouge_l"] <= b["rouge_l"] - ROUGE_DROP)
        if by_format or by_judge or by_rouge:
            worse.append(_words(cat))
    return worse


def format_gained(b: dict[str, Any], t: dict[str, Any]) -> bool:
    """True when the tuned model writes a format clearly more often than the base: by two prompts or more, and
    by at least a quarter of those asked."""
    return any(t[f"{k}_total"] and t[f"{k}_pass"] - b[f"{k}_pass"] >= max(2, math.ceil(t[f"{k}_total"] / 4))
               for k in ("structure", "user_story", "dataset_format"))


def loss_sentences(held: dict[str, Any], learned_format: bool = False) -> list[str]:
    """The held-out loss base → tuned, and a warning when training has hardly moved the model — unless its answers
    took the format (`learned_format`): the loss of a few held-out answers moves little while their layout is
    learned, so the warning would contradict what the format checks just said."""
    b, t = held["base"], held["tuned"]
    direction = "fell" if t["val_loss"] < b["val_loss"] else "rose"
    out = [f"On held-out examples the loss {direction} from {b['val_loss']:.2f} to {t['val_loss']:.2f} "
           f"(perplexity {b['perplexity']:.3g} → {t['perplexity']:.3g})."]
    if b["val_loss"] - t["val_loss"] < LITTLE_CHANGE * b["val_loss"] and learned_format:
        out.append("The loss moved little while the format was learned: training changed how it writes more than "
                   "which words it picks.")
    elif b["val_loss"] - t["val_loss"] < LITTLE_CHANGE * b["val_loss"]:
        out.append("Training has barely changed the model yet: train longer (more steps or epochs) before "
                   "judging its answers.")
    return out


def stop_sentences(b: dict[str, Any], t: dict[str, Any], generation: dict[str, Any]) -> list[str]:
    """Ending by itself, base → tuned, and the warning when the tuned model runs into the cap."""
    out = []
    cap, longest = generation.get("max_new_tokens"), generation.get("longest_training_answer")
    if t["stopped"] != b["stopped"]:
        out.append(f"It ends its answer by itself in {t['stopped']} of {t['prompts']} prompts "
                   f"(base: {b['stopped']} of {b['prompts']}).")
    if t["stopped"] < t["prompts"]:
        limit = f"the length limit of {cap} tokens" if cap else "the length limit"
        if cap and longest:
            limit += f" (your longest training answer has {longest})"
        out.append(f"In {t['prompts'] - t['stopped']} prompt(s) it did not end its answer and ran to {limit}: "
                   "check the chat template and stop tokens before exporting.")
    return out


def verdict(report: dict[str, Any]) -> str:
    """One plain paragraph: did tuning help, where, and where it got worse."""
    task, held, s = report["task"], report.get("heldout") or {}, report.get("summary") or {}
    out: list[str] = []
    if task != "causal":
        out += labels_sentences(task, held)
    if task == "causal" and s:
        b, t = s["base"], s["tuned"]
        served = ollama_name(report.get("tuned_source"))
        if served:
            out.append(f"The tuned answers to the test prompts come from '{served}' as your Ollama serves it.")
        structure = sorted({k for p in report.get("prompts") or [] for k in p.get("structure") or []})
        out += format_sentences(b, t, structure)
        out += rouge_sentence(b, t)
        out += judge_sentences(b, t)
        out += left_out_sentence(report.get("judge_left_out"))
    if task == "causal" and {"base", "tuned"} <= set(held):
        out += loss_sentences(held, bool(s) and format_gained(s["base"], s["tuned"]))
    if task == "causal" and s:
        b, t = s["base"], s["tuned"]
        out += stop_sentences(b, t, report.get("generation") or {})
        worse = worse_categories(s["by_category"])
        out.append(f"It got worse at {', '.join(worse)}." if worse else "It did not get worse in any category.")
    if not out:
        out.append("There was nothing to compare: the run kept no validation examples and no prompts were answered.")
    if report.get("model") == "tiny-random":
        out.append(TINY_NOTE)
    return " ".join(out)
