"""The shipped example datasets pass `mtw check` and cover what they promise."""

from __future__ import annotations

from pathlib import Path

from tools.dataset.checks import check_file

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_pm_dataset_passes_with_no_errors_or_warnings():
    report = check_file(EXAMPLES / "pm_dataset.jsonl")
    assert report.ok
    assert report.format == "messages"
    assert report.examples >= 40
    assert report.count("warning") == 0, [i.message for i in report.issues]
    kinds = report.stats["coverage"]["kinds"]
    for kind in ("user_story", "prd", "status_update", "okr", "competitive_analysis", "roadmap", "meeting_notes",
                 "stakeholder_email"):
        assert kinds[kind] >= 2, kind
    assert set(report.stats["turns"]) == {2}  # one request, one answer each


def test_pm_task_types_is_a_balanced_classification_set():
    report = check_file(EXAMPLES / "pm_task_types.jsonl")
    assert report.ok
    assert report.format == "classification"
    assert report.examples >= 60
    counts = report.stats["labels"]
    assert len(counts) >= 4
    assert max(counts.values()) == min(counts.values())
