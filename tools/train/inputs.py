"""Read and check the training data before any model is loaded; a dataset with errors stops here, in plain words.

The run's own train / validation split is written to RUN_DIR/split.json with the dataset version it was
made from: a resumed run and `mtw eval` use exactly those rows, and refuse when the data has changed.
"""

from __future__ import annotations

import json
import random
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import MTWError, UsageError
from tools.fileio import atomic_write_json

if TYPE_CHECKING:
    from tools.dataset.model import Example
    from tools.dataset.readers import ReadResult

MAX_LISTED = 5
"""Errors spelled out in a failure message; the rest are counted."""
SPLIT_FILE = "split.json"
"""In a run folder: the dataset version and which of its rows were held out."""


class DatasetHasErrors(MTWError):
    """The dataset fails `mtw check` with errors: training would fail later, less clearly."""

    code = "dataset_errors"


class DataChanged(UsageError):
    """The dataset file is not the version a run recorded."""

    code = "data_changed"


@dataclass
class TrainingData:
    """The rows to train on and the rows to validate on."""

    train: list[Example]
    validation: list[Example]
    format: str
    version: str
    """The dataset version (`dataset_hash`) the rows were read from."""
    validation_rows: list[int] = field(default_factory=list)
    """Positions (0-based, in file order) of the held-out rows; empty when a validation file was given."""
    dropped_rows: list[int] = field(default_factory=list)
    """Positions of held-out rows left out because the very same row is also in the training rows."""
    validation_file: str | None = None
    """The validation file next to the training file, when the data came with one."""


_last_read: dict[tuple[str, str], ReadResult] = {}


def dataset_rows(path: str | Path, version: str | None = None) -> ReadResult:
    """The file read once per process and version: the task detection, the estimate and training share it."""
    from tools.dataset.parsed import parse
    from tools.dataset.store import dataset_hash

    key = (str(Path(path).resolve()), version or dataset_hash(path))
    if key not in _last_read:
        # one dataset in memory at a time: a process trains on one file; the check before training reads the same
        # parse (a file the check read first is not parsed again either)
        _last_read.clear()
        _last_read[key] = parse(path).result()
    return _last_read[key]


def split(rows: list[Any], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Positions to train on and to hold out (`share` of them, at least one from 5 rows), the same for a seed."""
    if share <= 0 or len(rows) < 5:
        return list(range(len(rows))), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(rows) * share))
    held = set(order[:n_val])
    return [i for i in range(len(rows)) if i not in held], sorted(held)


def held_out_duplicates(rows: list[Example], train: list[int], held: list[int]) -> list[int]:
    """Held-out positions whose row is also a training row: scoring them would measure memory, not skill."""
    from tools.dataset.checks import fingerprint

    seen = {fingerprint(rows[i]) for i in train}
    return [i for i in held if fingerprint(rows[i]) in seen]


def read_training_data(path: str, *, model: str | None, context: int, val_share: float, seed: int,
                       check_model: bool = True, recorded: dict[str, Any] | None = None,
                       min_examples: int = 10, method: str | None = None) -> TrainingData:
    """Check the file like `mtw check`, then read it; errors raise DatasetHasErrors naming lines and fixes.

    `recorded` is a run's split.json: its rows are used as they were, after checking the data is unchanged.
    `method` (sft | dpo | kto) refuses data the method cannot learn from; None reads any (a run's split, back).
    """
    from tools.dataset.checks import validation_path_for
    from tools.dataset.store import checked, dataset_hash

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"The dataset {path} does not exist.", fix="Check the path given to --data.")
    version = dataset_hash(file)
    if recorded is not None:
        require_version(path, recorded.get("dataset_version"), version)
    report = checked(file, model=model if check_model else None, context=context)
    preference = method in ("dpo", "kto")
    if method is not None:
        refuse_for_method(path, method, report.format, report.examples, min_examples)
    errors = [i for i in report.issues if i.severity == "error"
              and not (i.code == "too_few_examples" and (preference or 0 < min_examples <= report.examples))]
    if errors:
        listed = "\n".join(f"  - {'line ' + str(i.line) + ': ' if i.line else ''}{i.message} → {i.fix}"
                           for i in errors[:MAX_LISTED])
        more = f"\n  … and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise DatasetHasErrors(
            f"The dataset {path} has {len(errors)} error{'s' * (len(errors) != 1)}, so training did not start:\n"
            f"{listed}{more}",
            fix=f"Run `{shlex.join(['mtw', 'check', str(path)])}` for the full report (`--fix OUT` repairs what it "
                "can), then train again.",
        )
    rows = dataset_rows(file, version).examples
    val_file = validation_path_for(file)
    if val_file is not None:
        from tools.dataset.readers import read_dataset

        return TrainingData(rows, read_dataset(val_file).examples, report.format, version,
                            validation_file=str(val_file))
    if recorded is not None:
        held = [int(i) for i in recorded.get("validation_rows", [])]
        dropped = [int(i) for i in recorded.get("dropped_rows", [])]
        left_out = set(held) | set(dropped)
        train = [i for i in range(len(rows)) if i not in left_out]
    else:
        train, held = split(rows, val_share, seed)
        dropped = held_out_duplicates(rows, train, held)
        held = [i for i in held if i not in set(dropped)]
    return TrainingData([rows[i] for i in train], [rows[i] for i in held], report.format, version,
                        validation_rows=held, dropped_rows=dropped)


def refuse_for_method(path: str, method: str, fmt: str, rows: int, min_judgements: int) -> None:
    """One plain refusal when `method` cannot learn from data in format `fmt`, or from so few judgements."""
    from tools.dataset.judgements import RECOMMENDED_JUDGEMENTS
    from tools.dataset.readers import PREFERENCE_FORMATS

    if method == "sft" and fmt in PREFERENCE_FORMATS:
        kind = "pairs of answers, one chosen and one rejected (DPO)" if fmt == "dpo" else \
            "answers labelled good or bad (KTO)"
        raise UsageError(f"{path} holds judgements, {kind}, not examples to imitate.",
                         fix=f"Train it with --method {fmt} (on top of a run: --from-run RUN_DIR), or keep only the "
                             f"good answers as examples with `mtw check {path} --fix good.jsonl`.")
    if method == "sft" or rows == 0:
        return
    if fmt not in PREFERENCE_FORMATS:
        raise UsageError(f"{path} holds examples, not judgements, so --method {method} has nothing to compare.",
                         fix="Leave out --method to learn from the examples, or give a file of judgements: "
                             "prompt / chosen / rejected pairs, or answers with \"label\": true or false.")
    if method == "dpo" and fmt == "kto":
        raise UsageError(f"{path} holds single answers rated good or bad, and --method dpo needs two answers to the "
                         "same request, one chosen over the other.",
                         fix="Train it with --method kto, which learns from answers rated one at a time.")
    if rows < min_judgements:
        raise UsageError(f"{path} holds {rows} judgement{'s' * (rows != 1)}, and a preference round needs at least "
                         f"{min_judgements}: {min_judgements - rows} more would let it start (about "
                         f"{RECOMMENDED_JUDGEMENTS} make its effect reliable).",
                         fix="Rate more answers (👍 / 👎, or which of two is better) in the chat's Try it, or add "
                             f"judgements to the file; --set min_examples={max(1, rows)} trains on these anyway.",
                         code="too_few_examples")


def require_version(path: str, expected: str | None, found: str) -> None:
    """Refuse, with the reason, when the data at `path` is not the version a run was trained on."""
    if expected and expected != found:
        raise DataChanged(
            f"The dataset {path} has changed since this run used it (it was version {expected}, it is now "
            f"{found}): its held-out rows could now be rows the model trained on, so they are not used.",
            fix=f"Put back the file the run trained on (version {expected}), or train a new run on the changed "
                "data.",
        )


def save_split(run_dir: Path, data: TrainingData, path: str) -> None:
    """Write RUN_DIR/split.json: the dataset version and which rows this run holds out."""
    lines = [r.line for r in data.validation]
    atomic_write_json(run_dir / SPLIT_FILE, {
        "data": path, "dataset_version": data.version, "validation_file": data.validation_file,
        "train_examples": len(data.train), "validation_examples": len(data.validation),
        "validation_rows": data.validation_rows, "validation_lines": lines, "dropped_rows": data.dropped_rows,
    })


def load_split(run_dir: Path) -> dict[str, Any] | None:
    """A run's split.json (None for a run made before runs recorded their split)."""
    try:
        recorded: dict[str, Any] = json.loads((run_dir / SPLIT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return recorded


def run_dataset_version(run_dir: Path, data: str) -> str:
    """The dataset version a run trained on: as it recorded it, else the file's version now ("" when it is gone)."""
    from tools.dataset.store import dataset_hash

    recorded = load_split(run_dir)
    if recorded and recorded.get("dataset_version"):
        return str(recorded["dataset_version"])
    return dataset_hash(data) if Path(data).is_file() else ""
