"""Teaching by preference in the chat: judgements collected in Try it and the comparison, by click and by typing,
kept in the project's judgement store; then "Improve with my ratings" trains a round, stopped and resumed."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from assistant.stages.prefer import pick_answer
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.assistant.test_stages import _finished_run
from tools import jobs
from tools.dataset.collect import judgement_store, pair, tally
from tools.dataset.store import DatasetStore
from tools.train.events import read_events

pytestmark = pytest.mark.timeout(300)

PROJECT = "User stories from ideas"


def test_typed_verdicts_on_two_answers_are_understood():
    for text, pick in [("the second one", "second"), ("left is better", "first"), ("Right is better!", "second"),
                       ("I prefer the first", "first"), ("the first one is much better", "first"),
                       ("second", "second"), ("the tuned one", "tuned"), ("base is better", "base"),
                       ("both are fine", "same"), ("neither", "same")]:
        assert pick_answer(text) == pick, text
    for prompt in ["Write a user story for the first login", "second-factor login story", "left navigation menu"]:
        assert pick_answer(prompt) == "", prompt


async def test_judgements_are_collected_in_try_it_by_click_and_by_typing(tmp_path):
    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    q = await s.resume()
    assert "ratings" in q["choices"]
    q = await s.send("try it")
    q = await s.send("Write a user story for exporting reports")
    assert "again" in q["choices"]
    assert "first" not in q["choices"]  # one answer so far: nothing to compare
    q = await s.click("again")
    assert [p for p in s.progress if p["title"] == "Tuned model, another answer"]
    assert {"first", "second"} <= set(q["choices"])
    assert "Which is better" in q["text"]
    q = await s.send("the second one")  # typed
    assert any(t.startswith("Kept: the second answer over the other (1 judgement so far)") for t in s.said)
    q = await s.send("Write a user story for saved views")
    q = await s.click("again")
    q = await s.click("first")  # clicked
    assert q["then"] == "on_try"
    q = await s.send("Write a user story for dark mode")
    q = await s.click("down")
    assert q["then"] == "on_wanted"
    q = await s.send("As a night-shift nurse, I want dark mode, so that the screen does not dazzle me.")
    assert q["then"] == "on_try"
    store = judgement_store(PROJECT)
    rows = store.examples()
    assert tally(store).pairs == 3
    assert tally(store).singles == 0  # the thumb down became the better-answer pair
    prefs = [r.preference() for r in rows]
    assert [p.prompt[-1].content for p in prefs] == ["Write a user story for exporting reports",
                                                    "Write a user story for saved views",
                                                    "Write a user story for dark mode"]
    assert rows[0].models == {"chosen": f"run:{finished}", "rejected": f"run:{finished}"}
    assert prefs[2].chosen[0].content.startswith("As a night-shift nurse")
    assert rows[2].models["chosen"] == "you"
    # the written answer is an example of the project's dataset too
    examples = DatasetStore(PROJECT).examples()
    assert examples[-1].answer().startswith("As a night-shift nurse")
    assert examples[-1].preference() is None
    q = await s.send("Write a user story for audit logs")
    q = await s.click("up")  # a thumb on a single answer is a judgement of its own
    assert tally(judgement_store(PROJECT)).singles == 1


async def test_the_comparison_asks_which_answer_is_better(tmp_path):
    s = Session(ScriptedLLM(ok=False))
    await _finished_run(tmp_path, s)
    q = await s.resume()
    q = await s.send("eval")
    assert q["choices"]["judge"] == "Pick the better answers"
    q = await s.click("judge")
    assert q["then"] == "on_judge"
    assert "**Left** (base model)" in q["text"]
    assert "**Right** (tuned model)" in q["text"]
    q = await s.send("left is better")
    q = await s.click("right")
    q = await s.send("about the same")
    q = await s.send("hmm, no idea what this is")
    assert "Say which answer is better" in s.said[-1]
    q = await s.click("done")
    assert q["then"] == "on_next"
    rows = judgement_store(PROJECT).examples()
    assert [r.models["chosen"].split(":")[0] for r in rows] == ["base", "run"]


def _wait(run: Path, predicate, timeout: float = 200) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in read_events(run):
            if predicate(ev):
                return ev
        time.sleep(0.2)
    raise AssertionError(f"no matching event in {run}: {read_events(run)[-3:]}")


async def _ended(s: Session, run: Path) -> dict:
    """Wait for the run's process to exit, then hand its outcome to the chat as the live view does."""
    psutil.Process(jobs.get_run(run).pid).wait(timeout=200)
    await s.graph.aupdate_state(s.cfg, {"reply": {"outcome": jobs.run_outcome(run)}}, as_node="listen")
    return await s.resume()


async def test_improve_with_ratings_says_how_many_more_then_trains_stops_and_resumes(tmp_path):
    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    q = await s.resume()
    store = judgement_store(PROJECT)
    for i in range(4):
        store.add(pair(f"Write a user story for feature {i}", f"As a user, I want feature {i}, so that I save time.",
                       f"feature {i}. do it.", chosen_by="you", rejected_by=f"run:{finished}"))
    q = await s.send("improve with my ratings")
    assert ("You have given 4 judgements; a preference round needs at least 10, so 6 more would let it start"
            in q["text"])
    assert set(q["choices"]) == {"try", "back"}
    q = await s.click("back")
    for i in range(4, 11):
        store.add(pair(f"Write a user story for feature {i}", f"As a user, I want feature {i}, so that I save time.",
                       f"feature {i}. do it.", chosen_by="you", rejected_by=f"run:{finished}"))
    # a slip: the first judgement given the other way round
    store.add(pair("Write a user story for feature 0", "feature 0. do it.",
                   "As a user, I want feature 0, so that I save time.", chosen_by="you", rejected_by="you"))
    q = await s.click("ratings")
    assert any("**Preference round:** 12 judgements" in t and "DPO" in t for t in s.said)
    q = await s.click("start")
    assert any(t.startswith("Checked the judgements: ") and "first: Line 12 prefers the answer that line 1 rejected"
               in t for t in s.said)
    assert q["kind"] == "training"
    run = Path(q["run_dir"])
    assert run != finished
    record = jobs.get_run(run)
    assert f"--method dpo --from-run {finished}" in record.message
    assert (await s.state())["pref_from"] == str(finished)
    _wait(run, lambda e: e["type"] == "step")
    q = await s.click("stop")
    q = await _ended(s, run)
    assert q["then"] == "on_after_run"
    assert "resume" in q["choices"]
    q = await s.click("resume")
    assert q["kind"] == "training"
    q = await _ended(s, run)
    assert any("Training finished" in t for t in s.said)
    assert q["then"] == "on_next"
    events = read_events(run)
    assert [e["type"] for e in events].count("start") == 2
    assert events[-1]["type"] == "done"
    assert events[-1]["metrics"]["method"] == "dpo"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    # the comparison after a round: with its base, then with the version it started from
    q = await s.send("eval")
    versus = [t for t in s.tables() if t["title"].startswith(f"New version vs {finished.name}")]
    assert versus
    assert versus[0]["rows"][0][0] == "Your judged prompts"
    assert any(t.startswith("**Round verdict.** By the format checks (no judge model), the new version wins")
               for t in s.said)
    assert (run / "eval" / "round.json").is_file()
    assert q["then"] == "on_next"
