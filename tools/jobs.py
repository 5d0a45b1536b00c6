"""The run registry: every training run in the workspace database, so the UI can list, watch and reattach to them."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.db import connect
from tools.errors import UsageError
from tools.run_events import TERMINAL, final_event
from tools.settings import get_settings

if TYPE_CHECKING:
    from tools.train.config import TrainConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    project TEXT,
    run_dir TEXT NOT NULL UNIQUE,
    dataset_version TEXT,
    config TEXT,
    status TEXT NOT NULL,
    pid INTEGER,
    started TEXT,
    ended TEXT,
    metrics TEXT,
    message TEXT
)
"""

ACTIVE = ("starting", "running")


@dataclass
class RunRecord:
    """One row of the registry."""

    id: str
    project: str | None
    run_dir: str
    dataset_version: str | None
    config: dict[str, Any]
    status: str
    """starting | running | done | stopped | failed | lost (its process ended without saying why)."""
    pid: int | None
    started: str | None
    ended: str | None
    metrics: dict[str, Any]
    message: str | None

    @property
    def log_path(self) -> Path:
        """Where a detached run's output goes."""
        return Path(self.run_dir) / "train.log"


def run_id(run_dir: Path | str) -> str:
    """A stable id for a run folder (the same across resumes)."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _db() -> Any:
    conn = connect()
    conn.execute(SCHEMA)
    return conn


def _project_of(run_dir: Path) -> str | None:
    """The project a run belongs to when it lives under MTW_HOME/projects/<project>/."""
    try:
        rel = run_dir.resolve().relative_to(get_settings().projects_dir.resolve())
    except ValueError:
        return None
    return rel.parts[0] if rel.parts else None


def _upsert(run_dir: Path, **fields: Any) -> None:
    rid = run_id(run_dir)
    conn = _db()
    try:
        exists = conn.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone()
        if exists is None:
            conn.execute("INSERT INTO runs (id, run_dir, status, project) VALUES (?, ?, ?, ?)",
                         (rid, str(run_dir.resolve()), fields.get("status", "starting"),
                          fields.pop("project", None) or _project_of(run_dir)))
        fields.pop("project", None)
        if fields:
            sets = ", ".join(f"{k} = ?" for k in fields)
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), rid))
    finally:
        conn.close()


def record_start(run_dir: Path | str, cfg: TrainConfig, *, dataset_version: str, pid: int,
                 project: str | None = None) -> None:
    """The training process says it is running (called by the process itself, detached or not)."""
    _upsert(Path(run_dir), status="running", pid=pid, started=_now(), ended=None, message=None,
            dataset_version=dataset_version, config=json.dumps(cfg.model_dump(mode="json")), project=project)


def record_outcome(run_dir: Path | str, final: dict[str, Any]) -> None:
    """Store how a run ended, from its final event (done, stopped or failed)."""
    # a run's status is the word of the event that ended it; anything else there is a failure
    status = t if (t := final.get("type", "")) in TERMINAL else "failed"
    message = final.get("message") or (f"adapter in {final['adapter']}" if final.get("adapter") else None)
    _upsert(Path(run_dir), status=status, ended=_now(), message=message,
            metrics=json.dumps(final.get("metrics") or {}))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _row(row: Any) -> RunRecord:
    status = row["status"]
    if status in ACTIVE and row["pid"] and not _alive(row["pid"]):
        status = "lost"
    return RunRecord(id=row["id"], project=row["project"], run_dir=row["run_dir"],
                     dataset_version=row["dataset_version"], config=json.loads(row["config"] or "{}"),
                     status=status, pid=row["pid"], started=row["started"], ended=row["ended"],
                     metrics=json.loads(row["metrics"] or "{}"), message=row["message"])


def get_run(run: str | Path) -> RunRecord:
    """One run, by id or by its folder."""
    conn = _db()
    try:
        row = conn.execute("SELECT * FROM runs WHERE id = ? OR id = ?", (str(run), run_id(run))).fetchone()
    finally:
        conn.close()
    if row is None:
        raise UsageError(f"No training run '{run}' in this workspace.",
                         fix="List the runs in the wizard, or check the id.")
    return _row(row)


def train_argv(data: str, model: str, out: str, *, preset: str | None = None, sets: Sequence[str] = (),
               max_steps: int | None = None, resume: bool = False, nproc: int = 1, nnodes: int = 1,
               node_rank: int = 0, master: str | None = None, method: str = "sft",
               from_run: str | Path | None = None) -> list[str]:
    """The `mtw train …` arguments for these choices (several machines: `nnodes`, this one's `node_rank`, and
    `master`, machine 0's ADDR:PORT; a preference round: `method` dpo | kto, on top of the run `from_run`)."""
    argv = ["train", "--data", data, "--model", model, "--out", out]
    if method != "sft":
        argv += ["--method", method]
    if from_run is not None:
        argv += ["--from-run", str(from_run)]
    if preset:
        argv += ["--preset", preset]
    for s in sets:
        argv += ["--set", s]
    if max_steps is not None:
        argv += ["--max-steps", str(max_steps)]
    if resume:
        argv.append("--resume")
    if nproc > 1:
        argv += ["--nproc", str(nproc)]
    if nnodes > 1:
        argv += ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--master", str(master)]
    return argv


def start_detached(data: str, model: str, out: str | Path, *, preset: str | None = None, sets: Sequence[str] = (),
                   max_steps: int | None = None, resume: bool = False, nproc: int = 1,
                   project: str | None = None, method: str = "sft", from_run: str | Path | None = None) -> RunRecord:
    """Launch `mtw train …` as its own process session (it outlives the UI), output to RUN_DIR/train.log."""
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = train_argv(data, model, str(run_dir), preset=preset, sets=sets, max_steps=max_steps, resume=resume,
                      nproc=nproc, method="sft" if resume else method, from_run=None if resume else from_run)
    cmd = [sys.executable, "-m", "tools.cli", *argv]
    # registered before the process starts, so the process's own "running" can never be overwritten
    _upsert(run_dir, status="starting", pid=None, started=_now(), ended=None, project=project,
            message="mtw " + " ".join(argv))
    with open(run_dir / "train.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "MTW_PLAIN_PROGRESS": "1"})
    _upsert(run_dir, pid=proc.pid)
    return get_run(run_dir)


def stop_run(run: str | Path) -> bool:
    """Ask a running job to stop (SIGTERM: it checkpoints and exits cleanly); False when it is not running."""
    import signal

    record = get_run(run)
    if record.status not in ACTIVE or not record.pid or not _alive(record.pid):
        return False
    os.kill(record.pid, signal.SIGTERM)
    return True


LEARNING_CODES = ("flat_loss", "diverging", "overfitting", "memorizing")
"""Diagnoses that say a finished run did not learn what it should have."""


def run_outcome(run_dir: Path | str) -> dict[str, Any]:
    """How a run ended, for the chat and the CLI: status, step, message, and the fix as words and as settings."""
    from tools.train.events import read_events

    run = Path(run_dir)
    events = read_events(run)
    final = final_event(events)
    steps = [e for e in events if e.get("type") == "step"]
    diagnosis = next((e for e in reversed(events) if e.get("type") == "diagnosis"), None)
    if final is None:
        status, message = ("lost", "The training process ended without saying why.")
        final = {}
    else:
        status, message = final["type"], str(final.get("message", ""))
    fix_sets = dict(diagnosis.get("fix") or {}) if diagnosis and status == "failed" else {}
    # a run can finish and still not have learned: that warning and its fix come with the outcome
    learning = [e for e in events if e.get("type") == "diagnosis" and e.get("code") in LEARNING_CODES
                and e.get("fix")]
    health = {k: learning[-1].get(k) for k in ("code", "message", "fix_text", "fix")} if learning else {}
    fix_text = str(final.get("fix") or (diagnosis.get("fix_text") if diagnosis else "") or "")
    if status == "lost":
        status, fix_text = "failed", (f"Look at {run / 'train.log'}; resume with "
                                      f"`{shlex.join(['mtw', 'train', '--out', str(run), '--resume'])}`.")
    return {"status": status, "step": steps[-1]["step"] if steps else 0, "message": message, "fix_text": fix_text,
            "fix_sets": fix_sets, "code": final.get("code", ""), "health": health if status == "done" else {},
            # supervised runs write step-N/state.pt, preference rounds the Trainer's checkpoint-N
            "resumable": status != "done" and (any((run / "checkpoints").glob("step-*/state.pt"))
                                               or any((run / "checkpoints").glob("checkpoint-*/trainer_state.json"))),
            "can_evaluate": (run / "adapter" / "adapter_config.json").is_file()}
