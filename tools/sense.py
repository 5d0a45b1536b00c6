"""Does what a model wrote make sense? Pure checks for text a small model produces: looping, copying, guessing.

Constrained decoding guarantees the shape of a structured reply, never its sense: a 135M model fills a JSON
schema with the question's own example, the user's sentence in three fields, "AUDIENCELY", or the same phrase
until its token budget runs out. Every caller that stores or shows model text asks these first.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")
# a unit of 2-40 characters repeated five or more times in a row ("the the the the the", "1.1.1.1.1.")
_RUN = re.compile(r"(.{2,40}?)\1{4,}", re.S)
_FILLER = frozenset(
    "a an the and or of to in on for with by at from as is are be it its this that these those my our your their "
    "we i you they he she them us me so but not no do does".split())
UNSURE = re.compile(r"^\W*(?:(?:hmm+|um+|uh+|erm|well|honestly|sorry)\W+)?(i'?m |i am |i )?"
                    r"(not sure|unsure|no idea|don'?t know|do not know|dunno|idk|not yet sure|"
                    r"no clue|can'?t say|cannot say|pass|\?+)(?P<rest>\W.*)?$", re.I)
_HEDGES = frozenset("yet really honestly about right now actually sorry tbh hmm well what say know sure".split())
CONTROL_WORDS = frozenset(
    "yes y yep yeah sure ok okay no n nope back go back cancel stop skip none nothing done next continue quit exit "
    "undo help".split())
"""Words that steer the conversation; never a name (of an export, a project) even where a name is asked."""


def words(text: str) -> list[str]:
    """The lower-case words of `text`, plurals folded ("stories" and "story" match; "designers" and "designer")."""
    return [_stem(w) for w in _WORD.findall(text.lower())]


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """The words of `text` that carry meaning (no articles, pronouns, prepositions)."""
    return {w for w in words(text) if w not in _FILLER}


def looping(text: str) -> bool:
    """Whether `text` repeats itself the way a model stuck in a loop does: a short unit over and over, or the
    same few phrases recycled through a long stretch."""
    tail = text[-3000:]
    for m in _RUN.finditer(tail):
        unit, run = m.group(1), m.group(0)
        if (re.search(r"\w", unit) and len(run) >= 20) or len(run) >= 60:
            return True
    ws = _WORD.findall(tail.lower())
    if len(ws) >= 40:
        grams = list(zip(ws, ws[1:], ws[2:], strict=False))
        if len(set(grams)) / len(grams) < 0.5:
            return True
    return False


def same_text(a: str, b: str) -> bool:
    """Whether two texts say the same words (case, punctuation and plurals aside)."""
    wa, wb = words(a), words(b)
    return bool(wa) and wa == wb


def copies(value: str, source: str, share: float = 0.8) -> bool:
    """Whether `value` is (nearly) a copy of `source`: the same words, or most of its meaningful words taken from
    `source` in a value of four or more of them."""
    if same_text(value, source):
        return True
    cv, cs = content_words(value), content_words(source)
    if len(cv) < 4 or not cs:
        return False
    overlap = len(cv & cs)
    return overlap / len(cv) >= share and overlap / len(cs) >= share


def echoes(value: str, prompt: str) -> bool:
    """Whether `value` repeats a sentence (or line) of `prompt` instead of answering it."""
    pieces = re.split(r"(?<=[.!?:])\s+|\n+", prompt)
    return any(len(words(piece)) >= 4 and copies(value, piece) for piece in pieces)


def grounded(value: str, answer: str) -> float:
    """The share of `value`'s meaningful words that appear in `answer` (1.0 when `value` has none of its own)."""
    cv = content_words(value)
    if not cv:
        return 1.0 if not words(value) else 0.0
    return len(cv & content_words(answer)) / len(cv)


def unsure(text: str) -> bool:
    """'not sure', "don't know", 'no idea', '?': the user has no answer (yet); never stored as one."""
    m = UNSURE.match(text.strip())
    return m is not None and not (content_words(m.group("rest") or "") - _HEDGES)


def control_word(text: str) -> bool:
    """'yes', 'back', 'cancel' …: a word that steers the conversation, not a name."""
    return re.sub(r"[^\w ]+", "", text.lower()).strip() in CONTROL_WORDS


def nonsense(text: str, *, prompt: str = "", examples: tuple[str, ...] = ()) -> str:
    """Why a piece of model text is not worth keeping, in a few plain words; "" when it may be.

    `prompt` is what the model was asked (a copy of it answers nothing); `examples` are texts shown to it as
    examples (the question's own example, a sample): a copy of one is not the user's answer.
    """
    if not text.strip():
        return "it was empty"
    if looping(text):
        return "it repeated itself"
    if prompt and echoes(text, prompt):
        return "it copied the question"
    for example in examples:
        if example and copies(text, example):
            return "it copied the example it was shown"
    return ""
