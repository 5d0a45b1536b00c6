"""After create: does the model answer, stop, keep template text out, and answer like the tuned model?"""

from __future__ import annotations

import difflib
import textwrap
import warnings
from dataclasses import dataclass
from typing import Any

from tools.export.templates import TEMPLATE_MARKERS

PROBES: tuple[str, ...] = (
    "Write a user story for a password reset feature.",
    "Explain the difference between OKRs and KPIs in two sentences.",
    "We are two weeks behind schedule. Write a short update for stakeholders.",
)
"""One prompt from each of the guide's test categories that fits a quick check."""

PROBE_TOKENS = 256
"""The longest probe answer; a model that is still talking at this point is not stopping."""

SIMILAR_ENOUGH = 0.6
"""Word-level similarity a quantised model's answer must reach against the tuned model's own answer."""


@dataclass(frozen=True)
class ProbeReply:
    """What the created model said to one probe."""

    prompt: str
    content: str
    done_reason: str


@dataclass(frozen=True)
class Check:
    """One verification, its outcome in plain words, and the fix when it failed."""

    name: str
    ok: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "fix": self.fix}


def similarity(a: str, b: str) -> float:
    """0..1 word-level similarity of two answers (1.0 = the same words in the same order)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _which(replies: list[ProbeReply], bad: list[int]) -> str:
    return "; ".join(f"'{textwrap.shorten(replies[i].prompt, 50, placeholder='…')}'" for i in bad)


def verify_replies(
    replies: list[ProbeReply],
    stops: list[str],
    expected: list[str] | None = None,
    exact: bool = False,
) -> list[Check]:
    """Check the replies: answers, stops, no template text, and (when `expected` is given) matches the tuned model.

    `expected` holds the in-process tuned model's answers to the same prompts; `exact` asks for identical text
    (greedy decoding on F16 weights), otherwise a similarity of at least SIMILAR_ENOUGH.
    """
    n = len(replies)
    checks: list[Check] = []

    empty = [i for i, r in enumerate(replies) if not r.content.strip()]
    checks.append(Check(
        "answers", not empty,
        f"It answered all {n} probe prompts." if not empty
        else f"It gave no answer to {len(empty)} of {n} probe prompts ({_which(replies, empty)}).",
        "" if not empty else "The TEMPLATE probably does not match the chat format the model was trained on: export "
                             "again with the base model's own template; check your examples have assistant replies.",
    ))

    endless = [i for i, r in enumerate(replies) if r.done_reason != "stop"]
    checks.append(Check(
        "stops", not endless,
        "It stopped on its own after every answer (done_reason 'stop')." if not endless
        else f"It never stopped on {len(endless)} of {n} prompts: Ollama cut it off at the length limit "
             f"(done_reason '{replies[endless[0]].done_reason}') on {_which(replies, endless)}.",
        "" if not endless else f"Make sure the Modelfile has a `PARAMETER stop` line for each end-of-turn token "
                               f"({', '.join(stops) or 'none are set now'}); if they are there, retrain on the base "
                               "model's chat template so the end-of-turn token is part of every answer it learns.",
    ))

    leaks = [(i, m) for i, r in enumerate(replies) for m in TEMPLATE_MARKERS if m in r.content]
    leaked = sorted({m for _, m in leaks})
    checks.append(Check(
        "no_template_text", not leaks,
        "No template text (like <|im_start|> or [INST]) shows in its answers." if not leaks
        else f"Template text shows in its answers: {', '.join(leaked)} "
             f"(in {_which(replies, sorted({i for i, _ in leaks}))}).",
        "" if not leaks else "The TEMPLATE in the Modelfile does not match the format the model was trained on. "
                             f"Export again with the base model's template, and add `PARAMETER stop` lines for "
                             f"{', '.join(leaked)}.",
    ))

    if expected is not None:
        scores = [similarity(r.content, e) for r, e in zip(replies, expected, strict=True)]
        if exact:
            off = [i for i, (r, e) in enumerate(zip(replies, expected, strict=True)) if r.content.strip() != e.strip()]
        else:
            off = [i for i, s in enumerate(scores) if s < SIMILAR_ENOUGH]
        low = min(scores) if scores else 1.0
        how = "word for word" if exact else f"closely (lowest similarity {low:.0%})"
        checks.append(Check(
            "matches_tuned", not off,
            f"Its answers match the tuned model's own answers {how}." if not off
            else f"On {len(off)} of {n} prompts it answers differently from the tuned model before export "
                 f"({_which(replies, off)}; lowest similarity {low:.0%}).",
            "" if not off else "Something changed on the way into Ollama. If you quantised, export again without "
                               "--quantize to compare; check that the Modelfile's base is exactly the model you "
                               "trained on and that its TEMPLATE matches the training chat template.",
        ))
    return checks


# ---- edges: ask the created model, and the tuned model in-process ----

def ask_ollama(model: str, prompts: list[str] | tuple[str, ...], seed: int = 0) -> list[ProbeReply]:
    """Each prompt sent to `model` in Ollama with greedy decoding; the replies with their done_reason."""
    from tools.ollama_api import client, translate

    c = client()
    out: list[ProbeReply] = []
    for prompt in prompts:
        try:
            r = c.chat(model=model, messages=[{"role": "user", "content": prompt}], stream=False,
                       options={"temperature": 0, "seed": seed, "num_predict": PROBE_TOKENS})
        except Exception as exc:
            raise translate(exc, model) from exc
        out.append(ProbeReply(prompt, r.message.content or "", str(r.done_reason or "")))
    return out


def ask_tuned(run_dir: Any, prompts: list[str] | tuple[str, ...], system: str | None = None) -> list[str]:
    """The tuned model's own greedy answers to `prompts` (after `system`), generated in-process from the run."""
    import torch

    from tools.train.modeling import load_tuned

    with warnings.catch_warnings():
        # library deprecation notices say nothing a user can act on
        warnings.simplefilter("ignore", FutureWarning)
        model, tokenizer, _cfg = load_tuned(run_dir)
    model.eval()
    answers: list[str] = []
    for prompt in prompts:
        turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids: Any = tokenizer.apply_chat_template(turns, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        with torch.no_grad():
            out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"],
                                 max_new_tokens=PROBE_TOKENS, do_sample=False)
        text: Any = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        answers.append(str(text).strip())
    return answers
