"""Format checks that need no LLM, the built-in suite, and the user's prompts file."""

import pytest

from tools.errors import UsageError
from tools.evaluate.suite import (
    BUILTIN,
    CATEGORIES,
    TestPrompt,
    check_answer,
    check_list,
    check_update,
    check_user_story,
    dataset_structure,
    follows_format,
    load_prompts_file,
    structure_of,
)

STORY = """As a registered user
I want to reset my password by email
So that I can get back into my account

Acceptance criteria:
- A reset link is sent within 1 minute
- The link expires after 24 hours
"""


def test_user_story_passes_with_all_parts():
    assert check_user_story(STORY).passed


@pytest.mark.parametrize(("drop", "named"), [
    ("So that I can get back into my account\n", "'So that …'"),
    ("Acceptance criteria:\n- A reset link is sent within 1 minute\n- The link expires after 24 hours\n",
     "acceptance criteria"),
])
def test_user_story_names_the_missing_part(drop, named):
    r = check_user_story(STORY.replace(drop, ""))
    assert not r.passed
    assert named in r.detail


@pytest.mark.parametrize("benefit", ["so I can get back in", "so we can keep working", "so my team can plan",
                                     "so admins can audit it"])
def test_the_benefit_may_be_written_the_short_way(benefit):
    assert check_user_story(STORY.replace("So that I can get back into my account", benefit)).passed


def test_the_story_shape_is_persona_want_and_criteria_without_the_benefit():
    from tools.evaluate.suite import story_shape

    assert story_shape("**User story**\nAs a new customer, I want dark mode.\n\n**Acceptance criteria**\n- a toggle")
    assert not story_shape("**Story: x**\n\n**Acceptance criteria:** The user can set it")  # no persona, no items
    assert not story_shape("As a user I want x")


def test_so_alone_is_not_a_benefit():
    r = check_user_story(STORY.replace("So that I can get back into my account", "so it is done"))
    assert not r.passed
    assert "'So that …'" in r.detail


def test_user_story_needs_a_criterion_after_the_heading():
    r = check_user_story(STORY.split("Acceptance criteria:")[0] + "Acceptance criteria: TBD")
    assert not r.passed
    assert "acceptance criterion" in r.detail


def test_given_when_then_counts_as_a_criterion():
    text = STORY.split("Acceptance criteria:")[0] + "Acceptance criteria: Given a user, when they ask, then a mail goes"
    assert check_user_story(text).passed


def test_list_counts_items():
    assert check_list("1. a\n2. b\n3) c\n- d\n* e", 5).passed
    r = check_list("1. a\n2. b", 5)
    assert not r.passed
    assert "2 list items, asked for 5" in r.detail


def test_update_needs_delay_and_next_steps():
    assert check_update("We are 2 weeks behind. Next steps: we will ship on May 3.").passed
    assert "what happens next" in check_update("The release slipped by two weeks.").detail


def test_check_answer_flags_runaway_and_template_text():
    p = TestPrompt(prompt="x", format="user_story")
    checks = {c.name: c for c in check_answer(p, STORY + "<|im_start|>user", stopped=False)}
    assert not checks["stops"].passed
    assert not checks["no_template_text"].passed
    assert "<|im_start|>" in checks["no_template_text"].detail
    assert checks["user_story"].passed
    assert follows_format(check_answer(p, STORY, stopped=True))


def test_builtin_suite_covers_the_four_categories_with_checks():
    assert {p.category for p in BUILTIN} == set(CATEGORIES)
    assert len({p.id for p in BUILTIN}) == len(BUILTIN)
    assert all(p.format or p.must_mention for p in BUILTIN)


def test_prompts_file_plain_text_and_jsonl(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("Write a PRD outline\n\nDraft a release note\n", encoding="utf-8")
    assert [p.prompt for p in load_prompts_file(txt)] == ["Write a PRD outline", "Draft a release note"]
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"prompt": "A story for login", "format": "user_story", "id": "login"}\n', encoding="utf-8")
    (p,) = load_prompts_file(jl)
    assert (p.id, p.format) == ("login", "user_story")


def test_prompts_file_errors_name_the_line_and_field(tmp_path):
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"prompt": "ok"}\n{"prompt": "x", "colour": "red"}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(UsageError) as exc:
        load_prompts_file(jl)
    msg = str(exc.value)
    assert "line 2: colour" in msg
    assert "line 3: not valid JSON" in msg
    with pytest.raises(UsageError, match="Cannot read the prompts file"):
        load_prompts_file(tmp_path / "missing.txt")


def test_the_sample_datasets_own_format_is_headings_and_lists():
    import json
    from pathlib import Path

    sample = Path(__file__).parents[3] / "examples" / "pm_dataset.jsonl"
    answers = [json.loads(line)["messages"][-1]["content"] for line in sample.read_text().splitlines()]
    assert dataset_structure(answers) == ["headings", "lists"]
    # prose with no structure is no one's format
    assert dataset_structure(["Just a sentence.", "Another one.", "**Title**\n- a\n- b"]) == []


def test_an_answer_is_checked_for_the_structure_its_reference_shares_with_the_data():
    p = TestPrompt(prompt="Write the weekly update.", structure=["headings", "lists"])
    shaped = "**Status**\nOn track.\n\n**Done this week**\n- API\n- docs"
    assert structure_of(shaped) == ["headings", "lists"]
    assert follows_format(check_answer(p, shaped, True))
    flat = "The API is done and the docs are next; we are on track."
    (check,) = [c for c in check_answer(p, flat, True) if c.name == "dataset_format"]
    assert not check.passed
    assert check.detail == "missing section headings and bulleted or numbered lists"
