"""The model registry: every model put into Ollama, its version, where it came from and how it scored."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.db import connect
from tools.errors import UsageError
from tools.evaluate.report_model import load_report

_VERSIONED = re.compile(r"^(?P<stem>.+?)-v(?P<version>\d+)$", re.IGNORECASE)
_COLUMNS = ("name", "stem", "version", "base_model", "route", "dataset_hash", "run_id", "run_dir", "eval_scores",
            "ollama_tag", "verified", "promoted", "created", "notes", "method", "judgements")


@dataclass
class ModelRecord:
    """One registered model (a row of the `models` table)."""

    name: str
    """Name following the guide's convention, e.g. `PM-General-v1`."""
    base_model: str
    """The base it was built on (catalog key, Hugging Face id or Ollama tag)."""
    route: str
    """adapter, merged, gguf, or spec (the quick path without training)."""
    ollama_tag: str
    """The model's name in Ollama."""
    dataset_hash: str = ""
    """Content hash of the dataset version it was trained on (empty for the quick path)."""
    run_id: str = ""
    """The training run's folder name."""
    run_dir: str = ""
    """The training run's folder (for its eval report)."""
    eval_scores: dict[str, float] = field(default_factory=dict)
    """Headline scores from the run's eval report."""
    verified: bool = False
    """True when every check after create passed."""
    notes: str = ""
    """What changed in this version, in the user's words."""
    stem: str = ""
    """The name without its version (`PM-General`)."""
    version: int = 0
    """The version number from the name (1 for `PM-General-v1`)."""
    promoted: bool = False
    """The one version of its stem in use."""
    created: str = ""
    """When it was registered (UTC, ISO 8601)."""
    method: str = "sft"
    """How its run trained: sft (examples), or a preference round, dpo or kto."""
    judgements: int = 0
    """The judgements a preference round learned from (0 for a supervised run)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_name(name: str) -> tuple[str, int | None]:
    """('PM-General', 1) for 'PM-General-v1'; (name, None) when it carries no version."""
    m = _VERSIONED.match(name.strip())
    if not m:
        return name.strip(), None
    return m.group("stem"), int(m.group("version"))


def next_version_name(name: str, existing: list[str]) -> str:
    """The name to use next: `name` itself when free, else its stem with the next free version number.

    'PM-General' with nothing registered → 'PM-General-v1'; 'PM-General-v1' when v1 (or v3) exists → v2 (or v4).
    """
    stem, version = split_name(name)
    taken = {n.lower() for n in existing}
    used = [v for s, v in (split_name(n) for n in existing) if v is not None and s.lower() == stem.lower()]
    if version is not None and name.lower() not in taken:
        return name
    return f"{stem}-v{max(used, default=0) + 1}"


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    """The workspace database with the `models` table in place, closed afterwards."""
    conn = connect()
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, stem TEXT NOT NULL, version INTEGER NOT NULL, "
            "base_model TEXT NOT NULL, route TEXT NOT NULL, dataset_hash TEXT NOT NULL, run_id TEXT NOT NULL, "
            "run_dir TEXT NOT NULL, eval_scores TEXT NOT NULL, ollama_tag TEXT NOT NULL, verified INTEGER NOT NULL, "
            "promoted INTEGER NOT NULL, created TEXT NOT NULL, notes TEXT NOT NULL)"
        )
        yield conn
    finally:
        conn.close()


def _record(row: Any) -> ModelRecord:
    values = dict(zip(_COLUMNS, tuple(row), strict=True))
    values["eval_scores"] = json.loads(values["eval_scores"] or "{}")
    values["verified"] = bool(values["verified"])
    values["promoted"] = bool(values["promoted"])
    return ModelRecord(**values)


def register(record: ModelRecord) -> ModelRecord:
    """Add (or replace, on re-export under the same name) a model; returns it as stored."""
    record.stem, version = split_name(record.name)
    record.version = version or 1
    record.created = datetime.now(UTC).isoformat(timespec="seconds")
    values = record.as_dict()
    values["eval_scores"] = json.dumps(record.eval_scores)
    with _db() as db:
        old = db.execute("SELECT promoted FROM models WHERE name = ?", (record.name,)).fetchone()
        values["promoted"] = bool(old and old[0])
        record.promoted = values["promoted"]
        db.execute(f"INSERT OR REPLACE INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                   tuple(int(v) if isinstance(v, bool) else v for v in (values[c] for c in _COLUMNS)))
    return record


def list_models() -> list[ModelRecord]:
    """Every registered model, grouped by stem, newest version first."""
    with _db() as db:
        rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models ORDER BY lower(stem), version DESC").fetchall()
    return [_record(r) for r in rows]


def get(name: str) -> ModelRecord:
    """One registered model by name (case-insensitive); UsageError listing the names that exist."""
    with _db() as db:
        row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE lower(name) = lower(?)", (name,)).fetchone()
    if row is None:
        names = ", ".join(m.name for m in list_models()) or "none yet"
        raise UsageError(f"No registered model called '{name}' (registered: {names}).",
                         "Check the name with `mtw models`; models get registered by `mtw export`.")
    return _record(row)


def suggest_name(name: str) -> str:
    """The next free versioned name for `name` among the registered models."""
    return next_version_name(name, [m.name for m in list_models()])


def latest_stem(runs_dir: str | Path) -> str | None:
    """The stem of the newest trained model whose run lives under RUNS_DIR (a project's runs), if any."""
    runs = Path(runs_dir).resolve()
    ours = [m for m in list_models()
            if m.route != "spec" and m.run_dir and Path(m.run_dir).resolve().is_relative_to(runs)]
    return max(ours, key=lambda m: m.created).stem if ours else None


def promote(name: str) -> ModelRecord:
    """Mark `name` as the promoted version of its stem (and no other version of it)."""
    record = get(name)
    with _db() as db:
        db.execute("UPDATE models SET promoted = 0 WHERE lower(stem) = lower(?)", (record.stem,))
        db.execute("UPDATE models SET promoted = 1 WHERE name = ?", (record.name,))
    record.promoted = True
    return record


def delete(name: str) -> ModelRecord:
    """Remove `name` from the registry; returns what was removed."""
    record = get(name)
    with _db() as db:
        db.execute("DELETE FROM models WHERE name = ?", (record.name,))
    return record


def flatten_scores(report: Any, prefix: str = "") -> dict[str, float]:
    """Every number in an eval report as 'path.to.value': number (lists of rows are skipped)."""
    out: dict[str, float] = {}
    if isinstance(report, dict):
        for key, value in report.items():
            out.update(flatten_scores(value, f"{prefix}{key}."))
    elif isinstance(report, bool):
        pass
    elif isinstance(report, int | float):
        out[prefix.rstrip(".")] = float(report)
    return out


def tuned_scores(flat: dict[str, float]) -> dict[str, float]:
    """The numbers that describe the tuned model itself: the base model's columns and plain counts dropped.

    Every version of a model shares its base, so comparing versions is about the `tuned` side only.
    """
    out: dict[str, float] = {}
    for key, value in flat.items():
        parts = key.split(".")
        # how the answers were made (engine, cap, seconds) and the judge's failures are not scores of the model
        if "base" in parts or parts[-1] in ("tokens", "prompts") or parts[0] in ("generation", "judge_left_out"):
            continue
        out[".".join(p for p in parts if p != "tuned")] = value
    return out


def run_judgements(run_dir: str | Path) -> int:
    """How many judgements a run learned from (its done event says; 0 for a supervised run)."""
    from tools.train.events import read_events

    done: dict[str, Any] = next((e for e in reversed(read_events(run_dir)) if e.get("type") == "done"), {})
    return int((done.get("metrics") or {}).get("judgements") or 0)


def run_scores(run_dir: str | Path) -> dict[str, float]:
    """The tuned model's numbers from a run's eval report (RUN_DIR/eval/report.json); empty when it has none."""
    try:
        report = load_report(run_dir)
    except (OSError, ValueError):
        return {}
    return tuned_scores(flatten_scores(report.as_json())) if report else {}


def eval_report(record: ModelRecord) -> dict[str, float]:
    """The numbers of a model's eval report as it is now, else the scores stored at registration."""
    return (run_scores(record.run_dir) if record.run_dir else {}) or dict(record.eval_scores)


@dataclass(frozen=True)
class Comparison:
    """Two versions side by side: each metric with both values (None where one lacks it)."""

    a: ModelRecord
    b: ModelRecord
    rows: list[tuple[str, float | None, float | None]]

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a.as_dict(), "b": self.b.as_dict(),
                "metrics": [{"metric": m, "a": x, "b": y} for m, x, y in self.rows]}


def compare(a: str, b: str) -> Comparison:
    """The eval reports of two registered models side by side."""
    ra, rb = get(a), get(b)
    sa, sb = eval_report(ra), eval_report(rb)
    metrics = list(dict.fromkeys([*sa, *sb]))
    return Comparison(ra, rb, [(m, sa.get(m), sb.get(m)) for m in metrics])
