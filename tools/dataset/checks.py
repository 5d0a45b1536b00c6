"""The dataset report: every check over rows streaming past, then the dataset-wide ones and the stats."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tools.dataset.analysis import Analysis, RowFacts, analyse, batch_facts
from tools.dataset.duplicates import NEAR_DUP_THRESHOLD, fingerprint, signature
from tools.dataset.judgements import JudgementWatch, preference_issue
from tools.dataset.model import DatasetReport, Example, Issue
from tools.dataset.privacy import privacy_issues, redact_secrets
from tools.dataset.rows import make_issue, row_issues

log = logging.getLogger(__name__)

# the names drafting, documents and training take from the report's module
__all__ = ["NEAR_DUP_THRESHOLD", "analyse", "check_file", "fingerprint", "privacy_issues", "redact_secrets",
           "row_issues", "signature", "validation_path_for"]

# files past this size have their per-row checks done in a second process (worth its start-up cost), a batch
# of rows at a time with a few batches in flight
_PARALLEL_BYTES = 20_000_000
_SAMPLE_BYTES = 1_000_000
_WORKER_MIN_ROW_BYTES = 1000
"""Rows shorter than this on average (in the file's first megabyte) are checked faster in one process."""
_WORKER_BATCH = 1000
_IN_FLIGHT = 4


def validation_path_for(path: str | Path) -> Path | None:
    """The validation file that sits next to a training file, if any (name.validation.jsonl, validation.jsonl…)."""
    path = Path(path)
    names = [f"{path.stem}.validation{path.suffix}", f"{path.stem}.val{path.suffix}"]
    if path.stem in ("train", "training"):
        names += [f"{n}{path.suffix}" for n in ("validation", "val", "valid", "dev")]
    for name in names:
        candidate = path.with_name(name)
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def check_file(path: str | Path, *, model: str | None = None, context: int | None = None,
               format: str | None = None, validation: str | Path | None = None,
               use_embeddings: bool = False, column_map: dict[str, str] | None = None,
               rows: list[Example] | None = None) -> DatasetReport:
    """Check a dataset file while it streams past; a validation file next to it is checked for overlap too.

    ROWS, when given, is filled with the rows read. A file read as it stands is parsed once per process
    (tools/dataset/parsed.py): a check after training's read, or a read after the check, does not parse it again.
    """
    from concurrent.futures.process import BrokenProcessPool

    from tools.dataset import parsed
    from tools.dataset.notes import FileNotes
    from tools.dataset.readers import FORMATS, NOT_DATASETS, iter_examples, read_dataset, renumber

    def start() -> tuple[list[Issue], FileNotes, list[str], Analysis, Iterator[Example]]:
        read_issues: list[Issue] = []
        notes = FileNotes()
        detected: list[str] = []
        run = Analysis(model=model, context=context, use_embeddings=use_embeddings)
        read: Iterator[Example]
        as_it_stands = format is None and column_map is None
        found = parsed.kept(path) if as_it_stands else None
        if found is not None:  # read already in this process (training's read, the chat's upload): not parsed again
            read, read_issues, notes, detected = iter(found.rows), found.issues, found.notes, found.detected
        elif as_it_stands:
            read = parsed.streamed(path, [], read_issues, notes, detected)
        else:
            read = iter_examples(path, format, issues=read_issues, notes=notes, detected=detected,
                                 column_map=column_map)
        if rows is not None:
            rows.clear()  # read again from the start
            read = _kept(read, rows)
        return read_issues, notes, detected, run, judged.over(read)

    judged = JudgementWatch()
    read_issues, notes, detected, run, examples = start()
    in_one_process = True
    if run.estimating and _worth_a_worker(Path(path)):
        try:
            _add_in_worker(run, examples)
            in_one_process = False
        except BrokenProcessPool:
            # the second process died (killed, out of memory): the check reads nothing it cannot read again,
            # so it starts over in this process rather than failing
            log.warning("the second checking process stopped; checking %s again in one process", path)
            judged = JudgementWatch()
            read_issues, notes, detected, run, examples = start()
    if in_one_process:
        for ex in examples:
            run.add(ex)
    fmt = detected[0] if detected else (format or "empty")
    val_path = Path(validation) if validation else validation_path_for(path)
    val_rows: list[Example] = []
    if val_path is not None:
        val_rows = read_dataset(val_path, fmt if fmt in FORMATS else None, column_map=column_map).examples
    issues, stats = run.finish(val_rows)
    issues += judged.issues
    records = notes.records
    stats.update(container=notes.container, encoding=notes.encoding, records=records)
    if notes.numbering == "record":
        stats["numbering"] = "record"
    if val_path is not None:
        stats["validation_file"] = str(val_path)
    file_issues = notes.issues() + read_issues
    if fmt in ("dpo", "kto"):
        file_issues.insert(0, preference_issue(fmt, run.n))
    if run.n == 0:
        # the size check would only say "0 examples"; say why nothing was read instead
        issues = [i for i in issues if i.code != "too_few_examples"]
        if fmt not in NOT_DATASETS:
            file_issues.insert(0, no_examples_issue(path, records, file_issues))
    all_issues = renumber(file_issues + issues, notes)
    return DatasetReport(format=fmt, examples=run.n, ok=not any(i.severity == "error" for i in all_issues),
                         issues=all_issues, stats=stats)


def _kept(rows: Iterator[Example], into: list[Example]) -> Iterator[Example]:
    for ex in rows:
        into.append(ex)
        yield ex


def _worth_a_worker(path: Path) -> bool:
    """A second process pays for itself on a large file of long rows, started from a single-threaded process.

    Tiny rows cost more to copy to the worker than to check; forking a process that runs other threads (the chat
    server) could copy a lock some thread holds, so there the check stays in one process.
    """
    import threading

    if not path.is_file() or path.stat().st_size <= _PARALLEL_BYTES or threading.active_count() > 1:
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    with path.open("rb") as f:
        head = f.read(_SAMPLE_BYTES)
    return len(head) / max(1, head.count(b"\n")) >= _WORKER_MIN_ROW_BYTES


def _add_in_worker(run: Analysis, rows: Iterable[Example]) -> None:
    """Feed rows to `run` with their per-row checks done in a second process while this one reads on.

    Forked, so the worker hashes words with this process's seed (the short-text word sets must agree); a few
    batches in flight at most, so memory stays bounded.
    """
    from concurrent.futures import Future, ProcessPoolExecutor

    in_flight: deque[tuple[list[Example], Future[list[RowFacts]]]] = deque()

    def take_oldest() -> None:
        batch, done = in_flight.popleft()
        for ex, facts in zip(batch, done.result(), strict=True):
            run.take(ex, facts)

    n = 0
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        it = iter(rows)
        while batch := list(itertools.islice(it, _WORKER_BATCH)):
            numbered = []
            for ex in batch:
                n += 1
                numbered.append(ex if ex.line is not None else ex.model_copy(update={"line": n}))
            in_flight.append((numbered, pool.submit(batch_facts, numbered, run.estimating, run.labels,
                                                    run.use_embeddings, run.near_duplicates)))
            if len(in_flight) > _IN_FLIGHT:
                take_oldest()
        while in_flight:
            take_oldest()


def no_examples_issue(path: str | Path, records: int, found: Sequence[Issue]) -> Issue:
    """The one error for a file that yielded no examples, saying why (empty, unreadable, unknown columns)."""
    name = Path(path).name
    errors = [i for i in found if i.severity == "error"]
    codes = {i.code for i in errors}
    if records == 0 and not errors:
        why = f"{name} holds no records (it is empty, only blank lines, or an empty list `[]`)"
        fix = "Add examples, one JSON object per line, e.g. {\"messages\": [{\"role\": \"user\", ...}, ...]}."
    elif codes == {"unknown_format"} or "unknown_format" in codes:
        why = f"none of the {records} record(s) in {name} has the fields of a known format"
        fix = ("Name the columns with --map, e.g. --map prompt=question --map response=answer, or "
               "--map text=SMS --map label=Label.")
    elif codes <= {"invalid_json", "not_object", "encoding"}:
        why = f"none of the {records} record(s) in {name} could be read (see the lines below)"
        fix = "Fix the broken lines listed below; each line must be one complete JSON object."
    else:
        why = f"every one of the {records} record(s) in {name} has a problem that stops it being used"
        fix = "Fix the problems listed below, starting with the first line."
    return make_issue("no_examples", "error", None, f"No examples: {why}.", fix)

