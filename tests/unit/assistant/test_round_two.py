"""Round 2 in the chat, end to end: a trained and exported v1, Improve it, the round's drafts, v2 trained on them,
v1 and v2 side by side, v2 promoted and shown as the current one in My models — by clicks and by typed words."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from assistant.state import nest
from tests.unit.assistant.helpers import Session
from tests.unit.assistant.test_journey import BENEFITS, CRITERIA, PERSONAS, DraftingLLM, to_data_choice
from tests.unit.assistant.test_stages import done
from tools import jobs, registry
from tools.dataset.readers import read_dataset

FEATURES = ["saved searches", "bulk price edits", "return labels", "loyalty points", "stock alerts", "split payments",
            "delivery slots", "product bundles", "invoice downloads", "size guides", "store locator", "back-in-stock",
            "referral codes", "order notes", "gift messages", "wishlist sharing", "tax receipts", "live chat",
            "quick reorder", "price history", "pickup lockers", "subscription pauses", "coupon stacking",
            "review photos", "address checks", "order merging", "cart reminders", "currency switch", "parcel photos",
            "vendor ratings"]


class Judge:
    """What the judge model answers in the Ollama test double: the same score on every criterion, set by the test
    (a double: it reads nothing of the answer it scores)."""

    def __init__(self, score: int) -> None:
        self.score = score

    def __call__(self, body: dict[str, Any]) -> str:
        if "format" not in body:  # a plain chat: the export's check of the model it created
            return "As a user, I want the served answer, so that it is checked."
        return json.dumps({c: {"score": self.score, "justification": "Scored by the test double."}
                           for c in ("accuracy", "format", "relevance", "completeness", "tone")})


def drafts(prompt: str) -> dict[str, Any]:
    """As many distinct user stories as the drafting prompt asks for, none drafted before."""
    k = int(re.search(r"Write (\d+) new", prompt).group(1))  # type: ignore[union-attr]
    out = []
    for _ in range(k):
        i = drafts.made  # type: ignore[attr-defined]
        drafts.made += 1  # type: ignore[attr-defined]
        feature = FEATURES[i % len(FEATURES)] + (f" for region {i // len(FEATURES)}" if i >= len(FEATURES) else "")
        out.append({"request": f"Write a user story for {feature}",
                    "answer": f"As a {PERSONAS[i % 12]}, I want {feature} so that {BENEFITS[(i * 5) % 12]}.\n\n"
                              f"Acceptance criteria:\n- {feature} {CRITERIA[(i * 7) % 12]}\n"
                              f"- {CRITERIA[(i * 11 + 3) % 12]}"})
    return {"examples": out}


def train(data: str, out: Path) -> Path:
    """A real tiny-random run of `mtw train` on DATA (two steps), as the run the chat just started would be."""
    from typer.testing import CliRunner

    from mtw.cli import app

    res = CliRunner().invoke(app, ["train", "--data", data, "--model", "tiny-random", "--out", str(out),
                                   "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    return out


async def run_training(s: Session, q: dict[str, Any], out: Path) -> dict[str, Any]:
    """The run the chat started, replaced by one trained here on the same data; the chat is told it finished."""
    assert q["kind"] == "training"
    jobs.stop_run(q["run_dir"])
    finished = train(str((await s.state())["data_path"]), out)
    await s.graph.aupdate_state(s.cfg, nest({"run_dir": str(finished), "reply": done(finished)}), as_node="listen")
    return await s.resume() or {}


class Act:
    """Answer the open question by clicking its button, or by typing the words a user would."""

    def __init__(self, s: Session, typed: bool) -> None:
        self.s, self.typed = s, typed

    async def __call__(self, key: str, words: str) -> dict[str, Any]:
        q = await (self.s.send(words) if self.typed else self.s.click(key))
        assert q is not None
        return q


@pytest.mark.timeout(900)  # two real tiny-random trainings, evaluations and exports
# typed in `make test`; by clicks in `make test-all` (the browser journey clicks through round two too)
@pytest.mark.parametrize("typed", [pytest.param(False, marks=pytest.mark.slow), True], ids=["clicks", "typed"])
async def test_round_two_retrains_as_v2_compares_it_with_v1_and_promotes_it(tmp_path, ollama, typed):
    judge = Judge(2)
    ollama.responder = judge
    drafts.made = 0  # type: ignore[attr-defined]
    s = Session(DraftingLLM(*[drafts] * 40))
    act = Act(s, typed)
    await to_data_choice(s)
    await act("sample", "start from the sample PM dataset")
    await act("continue", "continue to training")
    q = await act("tiny", "use tiny-random to try the steps")
    q = await act("start", "start training")
    q = await run_training(s, q, tmp_path / "v1")
    # v1: compared with its base (the judge gives 2 of 5), then put into Ollama as the first version
    q = await act("eval", "compare it with the base model")
    assert "improve" in q["choices"]
    q = await act("export", "put it into Ollama")
    q = await act("suggested", "use PM-UserStories-v1")
    q = await act("none", "none")
    assert "`ollama run PM-UserStories-v1`" in s.said[-1]
    assert "PM-UserStories-v1" in ollama.created
    # the Tasks panel: every stage of the round ticked, Deploy included, none running
    assert q["stage"] == "deploy"
    assert q["finished"]

    # round 2: the weakest areas named with why, then drafts for the first of them
    q = await act("improve", "improve it")
    assert not q.get("finished")
    plan = s.tables("Next round")[-1]
    assert plan["rows"]
    assert any("judge" in r[1] for r in plan["rows"])
    first = plan["rows"][0]
    assert q["then"] == "on_improve"
    assert q["choices"]["yes"] == f"Draft {first[2]} {first[0].lower()}"
    q = await act("yes", "yes")
    assert q["then"] == "on_review"
    kept = 0
    while q["then"] == "on_review":
        q = await act("keep", "keep")
        kept += 1
    assert kept == int(first[2])
    assert q["then"] == "on_after_drafts"
    assert f"**{45 + kept} examples**" in q["text"]
    q = await act("check", "check my examples")
    q = await act("continue", "continue to training")
    assert any(t.startswith("**Plan:**") and "tiny-random" in t for t in s.said[-2:])
    q = await act("start", "start training")
    round_data = str((await s.state())["data_path"])
    assert len(read_dataset(round_data).examples) == 45 + kept  # v2 learns from the round's dataset

    judge.score = 4  # the retrained model answers better
    q = await run_training(s, q, tmp_path / "v2")
    assert q["then"] == "on_next"
    assert "export" in q["choices"]
    q = await act("eval", "compare it with the base model")
    q = await act("export", "put it into Ollama")
    assert "**PM-UserStories-v2**" in q["text"]  # the next version is suggested
    q = await (s.send("PM-UserStories") if typed else s.click("suggested"))
    assert "**PM-UserStories-v2**" in q["text"]
    q = await act("none", "none")
    assert any("`ollama run PM-UserStories-v2`" in t for t in s.said[-3:])

    # v1 and v2 side by side, the better one named, then promoted after the confirmation
    both = s.tables("PM-UserStories-v1 and PM-UserStories-v2")[-1]
    assert both["columns"] == ["Metric", "PM-UserStories-v1", "PM-UserStories-v2"]
    assert both["rows"][0] == ["summary.judge_mean", "2", "4"]  # the deciding number heads the table
    assert s.said[-1].startswith("**PM-UserStories-v2** scores higher on summary.judge_mean (4 vs 2)")
    assert q["then"] == "on_promote_choice"
    assert "Promote **PM-UserStories-v2**" in q["text"]
    assert not registry.get("PM-UserStories-v2").promoted  # nothing before the user says so
    q = await act("yes", "yes")
    assert registry.get("PM-UserStories-v2").promoted
    assert not registry.get("PM-UserStories-v1").promoted
    assert q["then"] == "on_next"
    q = await act("models", "my models")
    listed = {r[1]: r[0] for r in s.tables("My models")[-1]["rows"]}
    assert listed == {"1": "PM-UserStories-v1", "2": "⭐ PM-UserStories-v2"}


def test_the_next_export_follows_the_name_the_user_gave_the_first_one():
    from assistant.stages.deploy import project_stem
    from tools.project import ProjectSpec, project_dir, slugify

    spec = ProjectSpec(name="User stories from ideas", task_type="generation")
    assert project_stem(spec.model_dump()) == "PM-UserStories"  # nothing exported yet: the project's own stem
    run = project_dir(slugify(spec.name)) / "runs" / "20261129-120000"
    registry.register(registry.ModelRecord(name="PM-Stories-v1", base_model="tiny-random", route="merged",
                                           ollama_tag="PM-Stories-v1", run_dir=str(run)))
    # a quick-path model and another project's model do not count
    registry.register(registry.ModelRecord(name="PM-UserStories-Styled-v1", base_model="qwen2.5:0.5b", route="spec",
                                           ollama_tag="PM-UserStories-Styled-v1"))
    other = project_dir("other-project") / "runs" / "20261129-130000"
    registry.register(registry.ModelRecord(name="Other-v3", base_model="tiny-random", route="merged",
                                           ollama_tag="Other-v3", run_dir=str(other)))
    assert project_stem(spec.model_dump()) == "PM-Stories"
    assert registry.suggest_name(project_stem(spec.model_dump())) == "PM-Stories-v2"
