"""Property tests: whatever bytes a file holds, the reader never crashes and the check always yields a report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.dataset.conftest import chat_record
from tools.dataset.checks import check_file
from tools.dataset.model import DatasetReport

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOOD = "".join(json.dumps(chat_record(i)) + "\n" for i in range(3))


def _report(data: bytes, suffix: str = ".jsonl") -> DatasetReport:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        path.write_bytes(data)
        report = check_file(path)
    assert isinstance(report, DatasetReport)
    assert report.ok == (report.count("error") == 0)
    for issue in report.issues:
        assert issue.message
        assert issue.fix
    return report


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".json", ".csv", ".tsv"]))
def test_random_bytes_never_crash(data, suffix):
    _report(data, suffix)


@SETTINGS
@given(st.integers(min_value=0, max_value=len(GOOD)))
def test_truncated_files_report_the_cut(cut):
    report = _report(GOOD[:cut].encode())
    whole_lines = GOOD[:cut].count("\n")
    assert report.examples >= whole_lines
    partial = GOOD[:cut].rsplit("\n", 1)[-1]
    if partial.strip() and partial not in GOOD.splitlines():
        assert "invalid_json" in report.codes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "role", "content", "text", "label", "instruction", "output", "tokens", "tags",
                         "conversations", "from", "value", "prompt", "completion", "x"]), inner, max_size=4),
    max_leaves=30,
)


@SETTINGS
@given(st.lists(json_values, min_size=1, max_size=6))
def test_arbitrary_json_records_never_crash(records):
    _report("".join(json.dumps(r) + "\n" for r in records).encode())


@SETTINGS
@given(st.integers(min_value=1, max_value=5000))
def test_deep_nesting_never_crashes(depth):
    _report(("[" * depth + "]" * depth + "\n").encode())
    _report(('{"messages": ' + "[" * depth + "]" * depth + "}\n").encode())
