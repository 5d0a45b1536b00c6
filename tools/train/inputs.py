"""Read and check the training data before any model is loaded; a dataset with errors stops here, in plain words."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import MTWError, UsageError

if TYPE_CHECKING:
    from tools.dataset.model import Example

MAX_LISTED = 5
"""Errors spelled out in a failure message; the rest are counted."""


class DatasetHasErrors(MTWError):
    """The dataset fails `mtw check` with errors: training would fail later, less clearly."""

    code = "dataset_errors"


@dataclass
class TrainingData:
    """The rows to train on and the rows to validate on."""

    train: list[Example]
    validation: list[Example]
    format: str
    version: str
    """Content hash of the dataset file: which dataset version a run was trained on."""


def dataset_version(path: Path | str) -> str:
    """First 12 hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def split(rows: list[Any], share: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Hold out `share` of the rows (at least one when share > 0 and there are 5 or more), the same for a seed."""
    if share <= 0 or len(rows) < 5:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(rows) * share))
    held = set(order[:n_val])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def read_training_data(path: str, *, model: str | None, context: int, val_share: float, seed: int,
                       check_model: bool = True, min_examples: int = 10) -> TrainingData:
    """Check the file like `mtw check`, then read it; errors raise DatasetHasErrors naming lines and fixes."""
    from tools.dataset.checks import check_file, validation_path_for
    from tools.dataset.readers import read_dataset

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"The dataset {path} does not exist.", fix="Check the path given to --data.")
    report = check_file(file, model=model if check_model else None, context=context)
    errors = [i for i in report.issues if i.severity == "error"
              and not (i.code == "too_few_examples" and 0 < min_examples <= report.examples)]
    if errors:
        listed = "\n".join(f"  - {'line ' + str(i.line) + ': ' if i.line else ''}{i.message} → {i.fix}"
                           for i in errors[:MAX_LISTED])
        more = f"\n  … and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise DatasetHasErrors(
            f"The dataset {path} has {len(errors)} error{'s' * (len(errors) != 1)}, so training did not start:\n"
            f"{listed}{more}",
            fix=f"Run `mtw check {path}` for the full report (`--fix OUT` repairs what it can), then train again.",
        )
    rows = read_dataset(file).examples
    val_file = validation_path_for(file)
    if val_file is not None:
        return TrainingData(rows, read_dataset(val_file).examples, report.format, dataset_version(file))
    train, val = split(rows, val_share, seed)
    return TrainingData(train, val, report.format, dataset_version(file))
