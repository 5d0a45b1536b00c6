"""Threads for training on a CPU that other programs share: the cores they leave free, measured as training runs.

torch splits each matrix product across its threads and waits for the slowest. When another program holds a core,
the thread placed there waits for the scheduler and every product waits with it: on a 2-core machine with one core
busy elsewhere, a step with 2 threads took many times longer than with 1 (bench/train_busy.py). So every few steps
the cores other programs used since the last look are measured (the machine's busy time in /proc/stat minus this
process's own CPU time) and torch gets the cores left free, at least one — back up to all of them once the other
program is done. `MTW_TRAIN_THREADS=N` pins N threads instead; where /proc/stat does not exist nothing changes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

ENV = "MTW_TRAIN_THREADS"
EVERY = 2
"""Steps between two looks: a step takes seconds on a CPU, so the count follows a change within two of them."""


def busy_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU seconds all cores have spent busy since boot, or None where the kernel does not say."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is already counted in user)
    ticks = [int(v) for v in first[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds this process (every thread of it) has used."""
    t = os.times()
    return t.user + t.system


def threads_for(cores: int, busy: float, own: float, wall: float) -> int:
    """Threads for the next steps, from what the machine did over the last `wall` seconds: `busy` core-seconds in
    all, `own` of them this process's. The cores others kept busy are not counted; at least one, at most `cores`."""
    if wall <= 0:
        return cores
    others = max(0.0, (busy - own) / wall)
    # a core other programs use a quarter of the time is still worth a thread
    return max(1, min(cores, math.floor(cores - others + 0.75)))


class CoreShare:
    """Sets torch's thread count to the free cores every `every` steps; `pinned` (from MTW_TRAIN_THREADS) wins.

    `cores` is the most threads to use: torch's own default (one per physical core), not every logical CPU."""

    def __init__(self, set_threads: Callable[[int], None], cores: int | None = None, every: int = EVERY,
                 busy: Callable[[], float | None] = busy_seconds, own: Callable[[], float] = own_seconds,
                 clock: Callable[[], float] = time.monotonic, pinned: str | None = None) -> None:
        self.set_threads, self.cores, self.every = set_threads, cores or os.cpu_count() or 1, every
        self.busy, self.own, self.clock = busy, own, clock
        pinned = os.environ.get(ENV, "") if pinned is None else pinned
        self.pinned = int(pinned) if pinned.strip().isdigit() and int(pinned) > 0 else None
        self.threads = self.pinned or self.cores
        if self.pinned is not None:
            self.set_threads(self.pinned)
        self.last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        busy = self.busy()
        return None if busy is None else (busy, self.own(), self.clock())

    def after_step(self, step: int) -> int | None:
        """After optimizer step `step`: the new thread count when it changed, else None."""
        if self.pinned is not None or self.last is None or step % self.every:
            return None
        now = self._sample()
        if now is None:
            return None
        (busy0, own0, t0), (busy1, own1, t1) = self.last, now
        self.last = now
        threads = threads_for(self.cores, busy1 - busy0, own1 - own0, t1 - t0)
        if threads == self.threads:
            return None
        self.threads = threads
        self.set_threads(threads)
        return threads
