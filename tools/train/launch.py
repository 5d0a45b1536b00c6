"""Training in several processes (`mtw train --nproc N`, `--nnodes`): the torchrun command that starts them, and
following their run from its events as they are written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.errors import MTWError
from tools.run_events import is_terminal
from tools.train.config import save_run_config
from tools.train.events import tail_events
from tools.train.narrate import Narrator


def _follow(proc: subprocess.Popen[bytes], run_dir: Path, listener: Narrator) -> dict[str, Any]:
    """Render a child run's events as they are appended, until it exits; return its last final event."""
    events_path = run_dir / "events.jsonl"
    offset = events_path.stat().st_size if events_path.exists() else 0
    final: dict[str, Any] = {}

    def drain() -> None:
        nonlocal offset, final
        events, offset = tail_events(run_dir, offset)
        for ev in events:
            listener(ev)
            if is_terminal(ev):
                final = ev

    while proc.poll() is None:
        drain()
        time.sleep(0.5)
    drain()
    return final or {"type": "failed", "code": "crash", "message": f"the training processes exited ({proc.returncode})",
                     "fix": f"See {run_dir / 'train.log'} or the output above."}


def launch_argv(run_dir: Path, nproc: int, *, nnodes: int = 1, node_rank: int = 0, master: str | None = None,
                resume: bool = False, estimate_s: float | None = None) -> list[str]:
    """The torchrun command that starts this machine's `nproc` training processes: on their own (one machine),
    or joining the other machines at `master` (static rendezvous: machine 0 holds rank 0, which writes the run)."""
    if nnodes > 1:
        host, port = split_master(master or "")
        where = [f"--nnodes={nnodes}", f"--node_rank={node_rank}", f"--master_addr={host}", f"--master_port={port}"]
    else:
        where = ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc_per_node={nproc}",
            "-m", "tools.train.sft", str(run_dir), *(["--resume"] if resume else []),
            *(["--estimate-s", str(estimate_s)] if estimate_s is not None else [])]


def split_master(master: str) -> tuple[str, int]:
    """ADDR:PORT of the first machine, checked (a usage error names what is wrong)."""
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MTWError(f"--master '{master}' is not ADDR:PORT.",
                       fix="Give the first machine's address and a free port, e.g. --master 10.0.0.1:29500.",
                       code="usage")
    return host, int(port)


def run_nproc(cfg: Any, run_dir: Path, argv: list[str], resume: bool, command: str, listener: Narrator,
               main_node: bool) -> dict[str, Any]:
    """Start this machine's training processes under torchrun (data parallel) and follow the run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        save_run_config(run_dir, cfg, command)
    proc = subprocess.Popen(argv, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if not main_node:
        listener.console.print("this machine trains its share; the first machine (--node-rank 0) writes the "
                               "events, checkpoints and adapter", highlight=False)
    try:
        final = _follow(proc, run_dir, listener)
    except KeyboardInterrupt:
        # torchrun passes the interrupt to its workers, which checkpoint and stop; wait for them
        final = _follow(proc, run_dir, listener)
    if not main_node and proc.returncode == 0 and final.get("code") == "crash":
        # a machine whose run folder is not shared sees no events of its own: its processes' exit says it all
        return {"type": "stopped", "message": "this machine's share of the training finished; the adapter is on "
                                              "the first machine (--node-rank 0)"}
    return final

