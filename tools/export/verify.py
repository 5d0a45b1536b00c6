"""After create: does the model answer, stop, keep template text out, and answer like the tuned model?"""

from __future__ import annotations

import difflib
import textwrap
import warnings
from collections.abc import Callable
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
"""The longest answer asked of a model with nothing to compare against (the tuned model in-process, the quick path)."""


def stop_budget(tuned_tokens: int) -> int:
    """Tokens the exported model may take for a probe: twice the tuned model's own answer, plus room for a preamble."""
    return 2 * tuned_tokens + 32


def hidden_tokens(eval_count: int, visible: int) -> int:
    """Tokens generated that show as no text, beyond the one end-of-turn token and a little re-tokenising slack."""
    return max(0, eval_count - visible - 1 - max(1, visible // 10))

SIMILAR_ENOUGH = 0.6
"""Word-level similarity a quantised model's answer must reach against the tuned model's own answer, unless it
follows that answer's opening or layout (`follows`)."""
OPENING_WORDS = 2
"""Words at the start of an answer that say what the tuned model made of the prompt ("**User story**")."""


def follows(reply: str, tuned: str) -> bool:
    """True when a quantised model's reply does what the tuned model's own answer does, word for word or not: close
    in words, or opening the same way, or laid out the same way (section headings, lists).

    Greedy decoding on quantised weights drifts from the full-precision answer within a few tokens (measured on
    SmolLM2-135M in Q4_1: 7–24 % word similarity to the tuned model's answer, 4–11 % to the base's), so words
    alone cannot tell a working adapter from a lost one; what the training taught — how an answer opens, its
    layout — survives the drift, and a base without its adapter shows neither."""
    from tools.evaluate.suite import structure_of

    if similarity(reply, tuned) >= SIMILAR_ENOUGH:
        return True
    opening = [w.strip("*#:_").lower() for w in tuned.split()[:OPENING_WORDS]]
    if opening and opening == [w.strip("*#:_").lower() for w in reply.split()[:OPENING_WORDS]]:
        return True
    layout = structure_of(tuned)
    return bool(layout) and set(layout) <= set(structure_of(reply))


@dataclass(frozen=True)
class ProbeReply:
    """What the created model said to one probe."""

    prompt: str
    content: str
    done_reason: str
    eval_count: int = 0
    """Tokens the model generated (Ollama's count), visible or not."""


@dataclass(frozen=True)
class TunedAnswer:
    """The tuned model's own greedy answer to a probe, generated in-process before export."""

    text: str
    tokens: int
    """Tokens it took, the end-of-turn token included."""
    stopped: bool
    """False when it was still talking at PROBE_TOKENS."""


@dataclass(frozen=True)
class Check:
    """One verification, its outcome in plain words, and the fix when it failed."""

    name: str
    ok: bool
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "fix": self.fix}


def _written(tokens: int) -> str:
    """How much an answer that was cut off had written, in words a person reads."""
    if tokens <= 0:
        return "before it wrote anything"
    return f"after {tokens} tokens, about {max(1, tokens * 3 // 4)} words"


def similarity(a: str, b: str) -> float:
    """0..1 word-level similarity of two answers (1.0 = the same words in the same order)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _which(replies: list[ProbeReply], bad: list[int]) -> str:
    return "; ".join(f"'{textwrap.shorten(replies[i].prompt, 50, placeholder='…')}'" for i in bad)


def verify_replies(
    replies: list[ProbeReply],
    stops: list[str],
    expected: list[TunedAnswer] | None = None,
    exact: bool = False,
    count_tokens: Callable[[str], int] | None = None,
    end_token: str | None = None,
    template: str | None = None,
) -> list[Check]:
    """Check the replies: answers, stops, no template text, and (when `expected` is given) matches the tuned model.

    `expected` holds the in-process tuned model's answers to the same prompts: they set each probe's token budget
    (`stop_budget`); `exact` asks for identical text (greedy decoding on F16 weights), otherwise each reply must
    `follow` the tuned answer (close in words, or the same opening or layout).
    `count_tokens` (the model's tokenizer) lets control tokens that show as no text be seen.
    `end_token` is the token the model was trained to end its answers with; with the Modelfile's `template` it
    lets a failed check say plainly when the exported model was never told about it.
    """
    missing = _missing_end_token(end_token, stops, template)
    n = len(replies)
    checks: list[Check] = []
    budgets = [stop_budget(e.tokens) for e in expected] if expected is not None else [PROBE_TOKENS] * n

    empty = [i for i, r in enumerate(replies) if not r.content.strip()]
    checks.append(Check(
        "answers", not empty,
        f"It answered all {n} probe prompts." if not empty
        else f"It gave no answer to {len(empty)} of {n} probe prompts ({_which(replies, empty)}).",
        "" if not empty else "The TEMPLATE probably does not match the chat format the model was trained on: export "
                             "again with the base model's own template; check your examples have assistant replies.",
    ))

    endless = [i for i, r in enumerate(replies) if r.done_reason != "stop" or r.eval_count > budgets[i]]
    tuned_endless = [i for i in endless if expected is not None and not expected[i].stopped]
    budget_words = ("" if expected is None else
                    f" (allowed: twice the tuned model's own answer, up to {max(budgets[i] for i in endless)} tokens)"
                    if endless else "")
    checks.append(Check(
        "stops", not endless,
        "It stopped on its own after every answer." if not endless
        else f"It never stopped on {len(endless)} of {n} prompts: Ollama cut it off at the length limit "
             f"({_written(replies[endless[0]].eval_count)}{budget_words}) on {_which(replies, endless)}.",
        "" if not endless else (
            "The tuned model itself does not stop on these prompts before export either: train longer, or check "
            "that every example ends with an assistant reply, so it learns to end its turn."
            if tuned_endless else
            missing or
            f"Make sure the Modelfile has a `PARAMETER stop` line for each end-of-turn token "
            f"({', '.join(stops) or 'none are set now'}); if they are there, retrain on the base "
            "model's chat template so the end-of-turn token is part of every answer it learns."),
    ))

    if count_tokens is not None:
        hidden = [(i, hidden_tokens(r.eval_count, count_tokens(r.content))) for i, r in enumerate(replies)]
        unseen = [i for i, h in hidden if h > 0]
        checks.append(Check(
            "no_hidden_turns", not unseen,
            "Every token it generated shows up as text." if not unseen
            else f"It generated tokens that show as no text on {len(unseen)} of {n} prompts (up to "
                 f"{max(h for _, h in hidden)} unseen tokens, on {_which(replies, unseen)}): it keeps emitting "
                 "control tokens such as a new turn marker, which Ollama hides, so it talks on where you cannot "
                 "see it.",
            "" if not unseen else missing or (
                f"Its end-of-turn token must be the one the TEMPLATE and `PARAMETER stop` use "
                f"({', '.join(stops) or 'none are set now'}): export again with the base model's own template, "
                "or retrain on it so every answer ends with that token."),
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
        scores = [similarity(r.content, e.text) for r, e in zip(replies, expected, strict=True)]
        if exact:
            off = [i for i, (r, e) in enumerate(zip(replies, expected, strict=True))
                   if r.content.strip() != e.text.strip()]
        else:
            off = [i for i, (r, e) in enumerate(zip(replies, expected, strict=True)) if not follows(r.content, e.text)]
        low = min(scores) if scores else 1.0
        how = ("word for word" if exact else f"closely (lowest similarity {low:.0%})" if low >= SIMILAR_ENOUGH
               else "in how they open and are laid out (quantised weights change the words, as they do)")
        # quantised weights may drift on one prompt in three; an adapter that was lost drifts on all of them
        ok = not off if exact else len(off) <= n // 3
        drifted = (f" (on {_which(replies, off)} it went its own way, as a quantised model's greedy answer can)"
                   if off and ok else "")
        checks.append(Check(
            "matches_tuned", ok,
            f"Its answers match the tuned model's own answers {how}{drifted}." if ok
            else f"On {len(off)} of {n} prompts it answers differently from the tuned model before export "
                 f"({_which(replies, off)}; lowest similarity {low:.0%}).",
            "" if ok else "Something changed on the way into Ollama. If you quantised, export again without "
                          "--quantize to compare; check that the Modelfile's base is exactly the model you "
                          "trained on and that its TEMPLATE matches the training chat template.",
        ))
    return checks


def _missing_end_token(end_token: str | None, stops: list[str], template: str | None) -> str:
    """A plain fix when the model's end-of-turn token is absent from the stop tokens or the TEMPLATE, else ''."""
    if not end_token:
        return ""
    where = [w for w, present in (("the `PARAMETER stop` lines", end_token in stops),
                                  ("the TEMPLATE", template is None or end_token in template)) if not present]
    if not where:
        return ""
    return (f"The model ends its answers with {end_token}, but {' and '.join(where)} of the Modelfile never use it "
            f"(stop tokens now: {', '.join(stops) or 'none'}), so nothing ends its turn: export again with the "
            f"template of the base model it was trained on, or add `PARAMETER stop \"{end_token}\"`.")


# ---- edges: ask the created model, and the tuned model in-process ----

def ask_ollama(model: str, prompts: list[str] | tuple[str, ...], seed: int = 0,
               budgets: list[int] | None = None, plain: bool = False) -> list[ProbeReply]:
    """Each prompt sent to `model` in Ollama with greedy decoding, within its token budget; the replies as sent.

    `plain`: greedy and nothing else (no repeat penalty), as the tuned model answers in-process, for a word-for-word
    comparison; otherwise Ollama's own defaults for the rest, as the user's `ollama run` gets them."""
    from tools.ollama_api import client, translate

    c = client()
    out: list[ProbeReply] = []
    for i, prompt in enumerate(prompts):
        limit = budgets[i] if budgets is not None else PROBE_TOKENS
        try:
            r = c.chat(model=model, messages=[{"role": "user", "content": prompt}], stream=False,
                       # plain: Ollama's default repeat_penalty (1.1) would steer it off the tuned model's words
                       options={"temperature": 0, "seed": seed, "num_predict": limit,
                                **({"repeat_penalty": 1.0} if plain else {})})
        except Exception as exc:
            raise translate(exc, model) from exc
        out.append(ProbeReply(prompt, r.message.content or "", str(r.done_reason or ""), int(r.eval_count or 0)))
    return out


def ask_tuned(run_dir: Any, prompts: list[str] | tuple[str, ...],
              system: str | None = None) -> tuple[list[TunedAnswer], Callable[[str], int], str | None]:
    """The tuned model's own greedy answers to `prompts` (after `system`), generated in-process from the run.

    Also returns its tokenizer's token count, to compare what Ollama generated with what it shows, and the
    end-of-turn token it was trained to end its answers with.
    """
    import torch

    from tools.train.modeling import load_tuned

    with warnings.catch_warnings():
        # library deprecation notices say nothing a user can act on
        warnings.simplefilter("ignore", FutureWarning)
        model, tokenizer, _cfg = load_tuned(run_dir)
    model.eval()
    answers: list[TunedAnswer] = []
    for prompt in prompts:
        turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids: Any = tokenizer.apply_chat_template(turns, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        with torch.no_grad():
            out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"],
                                 max_new_tokens=PROBE_TOKENS, do_sample=False)
        new = out[0, ids["input_ids"].shape[1]:]
        text: Any = tokenizer.decode(new, skip_special_tokens=True)
        stopped = bool(len(new)) and int(new[-1]) == tokenizer.eos_token_id
        answers.append(TunedAnswer(str(text).strip(), int(len(new)), stopped))

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return answers, count_tokens, str(tokenizer.eos_token) if tokenizer.eos_token else None
