"""Coverage per category: counts against the guide's targets, shown as a table, with the nudge to draft more."""

from __future__ import annotations

from tests.unit.dataset.conftest import stories
from tools.dataset.categories import category_coverage
from tools.dataset.model import Example
from tools.project import ProjectSpec

PM = ProjectSpec(name="PM assistant", purpose="Help a product manager with their writing", task_type="generation")


def _updates(n: int) -> list[Example]:
    return [Example.chat(("user", f"Write a weekly status update for the billing project, week {i}."),
                         ("assistant", f"Week {i}: on track.")) for i in range(n)]


def test_the_nudge_names_the_fullest_and_the_thinnest_category():
    cov = category_coverage([*stories(12), *_updates(2)], PM)
    assert cov.nudge is not None
    assert cov.nudge.text == "12 user stories, 2 status updates — draft 5 status updates?"
    assert (cov.nudge.key, cov.nudge.n) == ("status_update", 5)
    assert cov.nudge.focus == "Write a project status update."  # what draft_examples(focus=...) is handed
    assert cov.table() == [
        {"Category": "User stories", "Examples": 12, "Target": "20–30", "Status": "below target"},
        {"Category": "Status updates", "Examples": 2, "Target": "20–30", "Status": "below target"},
    ]


def test_a_category_the_purpose_names_shows_even_with_no_examples_and_advanced_ones_aim_lower():
    spec = PM.model_copy(update={"purpose": "Write launch plans and user stories"})
    cov = category_coverage(stories(25), spec)
    rows = {r["Category"]: r for r in cov.table()}
    assert rows["User stories"]["Status"] == "on target"
    assert rows["Go-to-market"] == {"Category": "Go-to-market", "Examples": 0, "Target": "10–20",
                                    "Status": "below target"}
    assert cov.nudge is not None
    assert cov.nudge.text == "25 user stories, 0 go-to-market — draft 5 go-to-market?"


def test_a_single_category_project_is_nudged_towards_its_target_and_left_alone_once_there():
    spec = ProjectSpec.model_validate({"name": "PM user stories", "purpose": "Turn ideas into user stories",
                                       "task_type": "generation"})
    few = category_coverage(stories(3), spec)
    assert few.nudge is not None
    assert few.nudge.text == "3 user stories (the guide asks for 20–30) — draft 5 user stories?"
    assert category_coverage(stories(31), spec).nudge is None
    assert category_coverage(stories(31), spec).table()[0]["Status"] == "above target"


def test_a_new_project_with_no_examples_sees_every_category():
    cov = category_coverage([], PM)
    assert len(cov.table()) == 13
    assert cov.unclassified == 0
    assert cov.nudge is not None
    assert cov.nudge.n == 5


def test_unclassified_requests_are_counted_not_hidden():
    cov = category_coverage([*stories(2), Example.chat(("user", "hello there"), ("assistant", "hi"))], PM)
    assert cov.unclassified == 1


def test_classifier_coverage_counts_labels_including_ones_outside_the_spec():
    spec = ProjectSpec(task_type="classification", labels=["bug", "feature"])
    rows = [Example.classified(f"crash {i}", "bug") for i in range(40)] + [Example.classified("add sso", "feature"),
                                                                           Example.classified("hi?", "question")]
    cov = category_coverage(rows, spec)
    assert [(r["Category"], r["Examples"]) for r in cov.table()] == [("bug", 40), ("feature", 1), ("question", 1)]
    assert cov.nudge is not None
    assert cov.nudge.text == "40 'bug' examples, 1 'feature' example — draft 5 'feature' examples?"


def test_tagger_coverage_counts_mentions_per_entity_type():
    spec = ProjectSpec(task_type="entity_extraction", entity_types=["ORG", "PERSON"])
    ex = Example(tokens=["Ana", "met", "Acme", "Corp", "and", "Globex"], tags=["B-PERSON", "O", "B-ORG", "I-ORG", "O",
                                                                             "B-ORG"])
    cov = category_coverage([ex] * 3, spec)
    assert [(r.key, r.count) for r in cov.rows] == [("ORG", 6), ("PERSON", 3)]
    assert cov.nudge is not None
    assert cov.nudge.text == "6 ORG mentions, 3 PERSON mentions — draft 5 texts mentioning PERSON?"
