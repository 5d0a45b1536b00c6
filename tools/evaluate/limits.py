"""How long an answer may run and how many threads generate it: the cap from the data, threads from the load.

Pure choices (tested directly); the I/O that feeds them (load average, tokenizing answers) sits in the two small
functions at the bottom.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

CAP_FACTOR = 1.5
"""The cap is this many times the longest training answer: room for a tuned answer a little longer than any seen."""
CAP_FLOOR = 128
"""Never below this: short answers in the data must not cut a base model's ordinary answer in half."""
CAP_CEILING = 1024
"""Never above this: a runaway answer costs minutes on a CPU, and past this length it is a runaway."""
CAP_WITHOUT_DATA = 512
"""When the run's training answers cannot be read (the data moved): long enough for a page of text."""


def answer_cap(answer_tokens: Sequence[int], *, context: int | None = None) -> int:
    """max_new_tokens for the test prompts: 1.5 × the longest training answer, rounded up to 32, within 128–1024.

    A tuned model that writes answers as long as its training answers then ends them before the cap, so "did not
    stop" means what it says. `context`: the run's context length, which no answer can fill.
    """
    cap = 32 * math.ceil(CAP_FACTOR * max(answer_tokens) / 32) if answer_tokens else CAP_WITHOUT_DATA
    cap = max(CAP_FLOOR, min(CAP_CEILING, cap))
    return min(cap, context) if context else cap


def cap_reason(answer_tokens: Sequence[int], cap: int) -> str:
    """Where the cap came from, in words for the report ("1.5 × your longest training answer of 250 tokens")."""
    if not answer_tokens:
        return "the training answers could not be read"
    longest = max(answer_tokens)
    if cap == CAP_FLOOR and CAP_FACTOR * longest < CAP_FLOOR:
        return f"the lowest cap; your longest training answer has {longest} tokens"
    if cap < CAP_FACTOR * longest:
        return f"the most it can be; your longest training answer has {longest} tokens"
    return f"1.5 × your longest training answer of {longest} tokens"


def generation_threads(cores: int, load: float) -> int:
    """Threads for generating on this CPU: the cores that are free now, at least one.

    On a busy machine every extra thread waits at each matrix product for a core that another program holds:
    measured on 2 busy cores, a 135M model took 1.4 s a token with 2 threads and 0.12 s with 1.
    """
    return max(1, min(cores, round(cores - load)))


def answer_lengths(tokenizer: Any, answers: Sequence[str]) -> list[int]:
    """Tokens in each answer, as the model writes them (no special tokens added)."""
    return [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers if a]


def free_threads() -> int:
    """generation_threads for this machine as it is now (1-minute load average)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform: assume a quiet machine
        load = 0.0
    return generation_threads(cores, load)
