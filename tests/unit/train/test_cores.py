"""Training's thread count follows the cores other programs leave free, and MTW_TRAIN_THREADS pins it."""

from __future__ import annotations

from pathlib import Path

from tools.train.cores import CoreShare, busy_seconds, threads_for


def test_a_quiet_machine_keeps_every_thread_and_a_busy_core_is_left_to_its_program():
    assert threads_for(2, busy=2.0, own=2.0, wall=1.0) == 2  # only training ran
    assert threads_for(2, busy=2.0, own=1.0, wall=1.0) == 1  # another program held a core the whole time
    assert threads_for(2, busy=1.25, own=1.0, wall=1.0) == 2  # a quarter of a core: still worth a thread
    assert threads_for(8, busy=24.0, own=0.5, wall=1.0) == 1  # never fewer than one
    assert threads_for(4, busy=1.0, own=0.0, wall=0.0) == 4  # nothing measured yet


class Machine:
    """A machine whose other programs use `others` cores, training using `own` cores, one second a step."""

    def __init__(self) -> None:
        self.t, self.busy_s, self.own_s = 0.0, 0.0, 0.0
        self.others, self.own = 0.0, 2.0

    def tick(self) -> None:
        self.t += 1.0
        self.busy_s += self.others + self.own
        self.own_s += self.own


def share_on(machine: Machine, seen: list[int], pinned: str = "") -> CoreShare:
    return CoreShare(seen.append, cores=2, every=2, busy=lambda: machine.busy_s, own=lambda: machine.own_s,
                     clock=lambda: machine.t, pinned=pinned)


def test_the_thread_count_drops_while_another_program_runs_and_comes_back_after():
    machine, seen = Machine(), []
    share = share_on(machine, seen)
    changes = []
    for step in range(1, 13):
        machine.others = 1.0 if 3 <= step <= 8 else 0.0
        machine.own = min(2.0, share.threads)
        machine.tick()
        changes.append(share.after_step(step))
    assert seen == [1, 2]  # set twice: down while the other program ran, up once it was done
    assert [c for c in changes if c is not None] == [1, 2]
    assert changes.index(1) < changes.index(2)


def test_a_pinned_count_is_set_once_and_kept():
    machine, seen = Machine(), []
    share = share_on(machine, seen, pinned="1")
    machine.others = 0.0
    for step in range(1, 9):
        machine.tick()
        assert share.after_step(step) is None
    assert seen == [1]


def test_busy_time_is_read_from_the_kernels_counters(tmp_path: Path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
    import os

    assert busy_seconds(stat) == 150 / os.sysconf("SC_CLK_TCK")
    assert busy_seconds(tmp_path / "missing") is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert busy_seconds(tmp_path / "odd") is None
