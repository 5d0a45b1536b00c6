"""The chat's comparison with a judge that misbehaves, and with an evaluation that fails: never a dead end."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from assistant.state import nest
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.assistant.test_stages import _finished_run
from tools.evaluate.judge import CRITERIA


class HostileJudge:
    """The judge model as the Ollama double plays it (a double): in turn a copy of the request, a loop of numbers,
    5/5 with the reason "5", a reply after a long delay and an invented key (asked again: the same), each followed
    by a proper judgement, then proper judgements only."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: dict[str, Any]) -> Any:
        self.calls += 1
        request = body["messages"][1]["content"].split("Request:\n")[1].split("\n\n")[0]
        fine = {c: {"score": 3, "justification": f"The {c} of this answer is acceptable."} for c in CRITERIA}
        hostile = {
            1: {c: {"score": 4, "justification": request} for c in CRITERIA},
            3: {c: {"score": 3, "justification": "1.1.1.2.3.4.1.1.1.2.3.4"} for c in CRITERIA},
            5: {c: {"score": 5, "justification": "5"} for c in CRITERIA},
            9: {**fine, "helpfulness": {"score": 5, "justification": "Helpful to the reader."}},
            10: {**fine, "helpfulness": {"score": 5, "justification": "Helpful to the reader."}},
        }
        if self.calls == 7:
            return {"content": json.dumps(fine), "delay_s": 5}
        return json.dumps(hostile.get(self.calls, fine))


@pytest.mark.timeout(600)
async def test_a_hostile_judge_leaves_scores_out_and_the_comparison_is_still_shown(tmp_path, ollama, monkeypatch):
    monkeypatch.setattr("tools.evaluate.judge.TIMEOUT_S", 0.2)  # the slow reply is given up on at once
    judge = HostileJudge()
    ollama.responder = judge
    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    await s.graph.aupdate_state(s.cfg, {"llm_ok": True}, as_node="listen")  # the assistant model judges
    q = await s.resume()
    q = await s.send("compare it with the base model")
    report = json.loads((finished / "eval" / "report.json").read_text())
    left = report["judge_left_out"]
    # a copy, numbers, 5/5 with "5", too slow, invented key: five answers without scores, the rest judged
    assert left["n"] == 5
    assert left["reasons"] == {"it copied the text it was judging instead of judging it": 1,
                               "it gave scores without reasons": 2, "it did not reply in time": 1,
                               "its reply did not fit the scoring form": 1}
    assert report["summary"]["tuned"]["judged"] + report["summary"]["base"]["judged"] == left["of"] - 5
    verdict = next(t for t in s.said if t.startswith("**Verdict.**"))
    assert f"The judge's scores were left out for 5 of {left['of']} answers" in verdict
    assert "because it did not reply in time" in verdict
    # the side by side, and the way to score answers oneself, are there all the same
    assert [t for t in s.tables() if "tuned better on" in t["title"]]
    assert any("left out for 5 of" in t and "**Score a few answers myself**" in t for t in s.said)
    assert "score" in q["choices"]
    # progress while it ran: the answers of each side, then the judging, counted
    status = [p["status"] for p in s.progress if p["key"] == "evaluate"]
    assert "Held-out examples" in status
    assert any(t.startswith("Tuned answers: ") for t in status)
    assert f"Judging: {left['of']} of {left['of']}" in status
    # nothing in the chat asks for a command-line flag
    assert not [t for t in s.said if "--judge" in t or "`mtw " in t]


async def test_a_failed_evaluation_is_said_plainly_and_never_ticked_as_done(tmp_path, ollama):
    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    q = await s.resume()
    shutil.rmtree(finished / "adapter")  # the comparison cannot load the tuned model now
    q = await s.send("compare it with the base model")
    said = s.said[-1]
    assert said.startswith("The comparison did not finish:")
    assert "has no finished adapter" in said
    assert "mtw train" not in said  # the fix is a terminal command: not shown in the chat
    assert q["then"] == "on_next"
    assert "eval" in q["choices"]  # the comparison is still on offer
    assert "score" not in q["choices"]  # there is nothing to score
    assert (q["stage"], q["finished"]) == ("evaluate", False)
    # once the model is in Ollama the round is at Deploy, but Evaluate stays unticked: it never finished
    await s.graph.aupdate_state(s.cfg, nest({"exported_name": "PM-X-v1"}), as_node="listen")
    q = await s.click("models")  # "My models" (none registered) comes back to what next, now at Deploy
    assert q["stage"] == "deploy"
    assert "evaluate" in q["skipped"]
