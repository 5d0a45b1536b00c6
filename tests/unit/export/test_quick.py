"""The quick path's pure parts: the SYSTEM prompt from a spec and the choice of few-shot examples."""

from __future__ import annotations

from pathlib import Path

from tools.export.quick import MAX_PAIR_CHARS, pick_few_shot, project_dataset, system_prompt, training_system_prompt
from tools.project import ProjectSpec

PAIRS = [
    ("Write a user story for password reset.", "As a user, I want to reset my password."),
    ("Write a user story for CSV export.", "As an analyst, I want to export CSV files."),
    ("Write a user story for password change.", "As a user, I want to change my password."),
    ("Explain OKRs vs KPIs.", "OKRs are goals; KPIs are health metrics."),
    ("Draft a stakeholder update: launch slips two weeks.", "Hi all, the launch moves to 14 March."),
    ("Summarise this very long PRD.", "x" * MAX_PAIR_CHARS),
]


def test_few_shot_starts_on_topic_then_spreads_out() -> None:
    chosen = pick_few_shot(PAIRS, k=3, focus="user story with acceptance criteria")
    prompts = [p for p, _ in chosen]
    assert prompts[0].startswith("Write a user story")
    # the two password stories are near-duplicates: only one of them makes it in
    assert sum("password" in p for p in prompts) == 1
    assert len(set(prompts)) == 3
    assert all(len(p) + len(a) <= MAX_PAIR_CHARS for p, a in chosen)
    assert pick_few_shot(PAIRS, k=3, focus="user story with acceptance criteria") == chosen


def test_few_shot_handles_too_few_or_empty_pairs() -> None:
    assert pick_few_shot([], k=3) == []
    assert pick_few_shot([("", "x"), ("q", " ")], k=3) == []
    assert sorted(pick_few_shot(PAIRS[:2], k=5)) == sorted(PAIRS[:2])


def test_system_prompt_carries_every_part_of_the_spec() -> None:
    spec = ProjectSpec(name="PM", purpose="Write release notes.", audience="customers", house_style="Short.",
                       never_do=["Promise dates", " "], samples=["Sample A " * 200, "Sample B", "Sample C"])
    text = system_prompt(spec)
    assert "Write release notes." in text
    assert "Your readers are: customers." in text
    assert "House style: Short." in text
    assert "Never:\n- Promise dates" in text
    assert "- \n" not in text
    assert "Sample B" in text
    assert "Sample C" not in text
    assert len(text) < 2500


def test_system_prompt_for_classification_names_the_labels() -> None:
    spec = ProjectSpec(purpose="Route tickets", task_type="classification", labels=["bug", "feature"])
    assert "exactly one of these labels and nothing else: bug, feature" in system_prompt(spec)
    assert system_prompt(ProjectSpec()) == "You are a helpful writing assistant."


def test_project_dataset_is_the_newest_data_file_outside_runs(tmp_path: Path) -> None:
    import os

    (tmp_path / "spec.json").write_text("{}", encoding="utf-8")
    assert project_dataset(tmp_path) is None
    old = tmp_path / "datasets" / "a.jsonl"
    new = tmp_path / "datasets" / "b.jsonl"
    run = tmp_path / "runs" / "r1" / "c.jsonl"
    for i, f in enumerate((old, new, run)):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}\n", encoding="utf-8")
        os.utime(f, (1_000_000 + i, 1_000_000 + i))
    assert project_dataset(tmp_path) == new


def test_a_shared_training_system_prompt_is_found(tmp_path: Path) -> None:
    import json

    def rows(systems: list[str | None]) -> Path:
        path = tmp_path / "d.jsonl"
        path.write_text("".join(json.dumps({"messages": ([{"role": "system", "content": s}] if s else [])
                                            + [{"role": "user", "content": f"q{i}"},
                                               {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                                for i, s in enumerate(systems)), encoding="utf-8")
        return path

    assert training_system_prompt(rows(["You are PM-bot.", "You are PM-bot."])) == "You are PM-bot."
    assert training_system_prompt(rows(["You are PM-bot.", None])) is None
    assert training_system_prompt(rows(["A", "B"])) is None
    assert training_system_prompt(rows([None, None])) is None
