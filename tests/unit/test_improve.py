"""Round 2: the weakest categories from judge scores, the user's ratings and coverage, with draft counts."""

from __future__ import annotations

from tests.unit.dataset.conftest import stories
from tools.dataset.model import Example
from tools.evaluate.playground import Rating
from tools.improve import plan_round
from tools.project import ProjectSpec

PM = ProjectSpec(name="PM assistant", purpose="Write user stories and status updates", task_type="generation")


def _updates(n: int) -> list[Example]:
    return [Example.chat(("user", f"Write a weekly status update for the billing project, week {i}."),
                         ("assistant", f"Week {i}: on track, invoices ship Friday.")) for i in range(n)]


def _judged(prompt: str, scores: dict[str, int]) -> dict:
    judge = {c: {"score": s, "justification": "because"} for c, s in scores.items()}
    return {"id": prompt[:10], "category": "contextual_understanding", "prompt": prompt,
            "tuned": {"judge": judge, "judge_mean": sum(scores.values()) / len(scores)}}


GOOD_SCORES = {"accuracy": 5, "format": 5, "relevance": 4, "completeness": 4, "tone": 5}
POOR_SCORES = {"accuracy": 3, "format": 2, "relevance": 3, "completeness": 3, "tone": 3}


def test_a_small_dataset_is_still_the_foundation_round():
    plan = plan_round(PM, [*stories(10), *_updates(2)])
    assert plan.round == "foundation"
    assert plan.total == 38
    assert [a.key for a in plan.areas] == ["status_update", "user_story"]  # the thinnest first
    assert plan.areas[0].reasons == ["only 2 examples; the guide asks for 20–30"]
    assert plan.areas[0].draft > plan.areas[1].draft


def test_round_two_names_the_weakest_category_with_every_reason():
    data = [*stories(30), *_updates(25)]
    report = {"prompts": [_judged("Write a status update: the launch is 2 weeks behind", POOR_SCORES),
                          _judged("Write a user story for password reset", GOOD_SCORES)]}
    ratings = [Rating(prompt="Weekly status update for the mobile team", answer="...", score=2),
               Rating(prompt="Status update for the execs: we slipped a week", answer="...", score=1, thumbs="down"),
               Rating(prompt="Status update for the data team", answer="...", score=5, thumbs="up"),
               Rating(prompt="Write a user story for SSO", answer="...", score=5, variant="base")]
    plan = plan_round(PM, data, report=report, ratings=ratings)
    assert plan.round == "weak areas"
    (area,) = plan.areas
    assert area.key == "status_update"
    assert area.focus == "Write a project status update."
    assert area.reasons == ["the judge scored the tuned answers 2.8/5, weakest on format (2.0); the target is 4 "
                            "or more", "you rated 2 of 3 answers poorly (average 2.7/5)"]
    assert 25 <= plan.total <= 50
    assert area.draft == plan.total
    assert plan.summary().startswith("Next round, weak areas (the guide's 25–50): draft 25 examples — 25 status "
                                     "updates (the judge scored")


def test_when_everything_is_on_target_the_round_is_polish():
    plan = plan_round(PM, [*stories(30), *_updates(25)],
                      report={"prompts": [_judged("Write a user story for SSO", GOOD_SCORES)]})
    assert plan.round == "polish"
    assert 10 <= plan.total <= 25
    assert {a.key for a in plan.areas} == {"status_update", "user_story"}


def test_a_classifier_round_targets_labels_with_a_low_f1():
    spec = ProjectSpec(task_type="classification", labels=["bug", "feature"])
    data = [Example.classified(f"crash {i}", "bug") for i in range(30)] + \
           [Example.classified(f"add thing {i}", "feature") for i in range(30)]
    report = {"heldout": {"tuned": {"per_label": {"bug": {"f1": 0.92}, "feature": {"f1": 0.41}}}}}
    plan = plan_round(spec, data, report=report)
    assert plan.round == "weak areas"
    assert [a.key for a in plan.areas] == ["feature"]
    assert plan.areas[0].reasons == ["F1 0.41 on the held-out texts (aim for 0.7 or more)"]
