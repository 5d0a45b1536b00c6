"""A conversation saved before the stage sub-states goes on after the upgrade, with nothing the user made lost."""

from __future__ import annotations

from typing import Any, TypedDict

import aiosqlite
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from assistant.checkpoints import UpgradingSqliteSaver, upgrade
from assistant.graph import builder
from assistant.state import STAGE_OF, SUBSTATES, WizardState
from tests.unit.assistant.helpers import ScriptedLLM, Session

FLAT_FIELDS = [*(key for key in WizardState.__annotations__ if key not in SUBSTATES), *STAGE_OF]
"""Every field of the state as the version before the sub-states kept it: one flat channel each."""

FlatState = TypedDict("FlatState", {key: Any for key in FLAT_FIELDS}, total=False)  # type: ignore[misc]

SPEC = {"name": "PM User Stories", "purpose": "Turn feature requests into user stories", "task_type": "generation",
        "audience": "product managers", "house_style": "", "samples": [], "never_do": [], "labels": [],
        "entity_types": [], "base_model": "tiny-random", "preset": "balanced"}
WHAT_NEXT = {"id": 12, "kind": "question", "text": "**PM-X-v1** is in your Ollama — try it with `ollama run "
             "PM-X-v1`. What next?", "choices": {"check": "Check PM-X-v1 as Ollama serves it", "try": "Try it",
             "score": "Score a few answers myself", "judge": "Pick the better answers",
             "improve": "Improve it (next round)", "ratings": "Improve with my ratings", "models": "My models",
             "new": "Start a new model"}, "free_text": False, "optional": False, "then": "on_next",
             "stage": "deploy", "slot": "", "effects": ["export"], "finished": True, "skipped": []}
"""The hub after a run that was compared and exported, as the earlier version asked it."""


async def save_flat_conversation(path: str, thread: str) -> None:
    """What the earlier version left in checkpoints.db: every field flat, the graph waiting at `listen`."""
    def choose_next(state: FlatState) -> Command[Any]:  # as its ask(): the fields, the question, then listen
        return Command(update={"spec": SPEC, "llm_ok": False, "spec_path": "/projects/pm/spec.yaml",
                               "asked_slots": ["purpose", "audience"], "data_path": "/projects/pm/data.jsonl",
                               "data_ok": True, "train_model": "tiny-random", "train_sets": {"epochs": "1"},
                               "run_dir": "/runs/pm-1", "train_outcome": {"status": "done", "step": 8},
                               "evaluated": True, "exported_name": "PM-X-v1", "question": WHAT_NEXT,
                               "qid": WHAT_NEXT["id"], "suggested": ""}, goto="listen")

    def listen(state: FlatState) -> dict[str, Any]:
        return {"reply": interrupt(state["question"])}

    old = StateGraph(FlatState)
    old.add_node("choose_next", choose_next, destinations=("listen",))
    old.add_node("listen", listen)
    old.add_edge(START, "choose_next")
    async with aiosqlite.connect(path) as conn:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        await old.compile(checkpointer=saver).ainvoke({}, {"configurable": {"thread_id": thread}})
        saved = await saver.aget_tuple({"configurable": {"thread_id": thread}})
    assert saved is not None
    assert saved.checkpoint["channel_values"]["run_dir"] == "/runs/pm-1"


async def test_a_conversation_saved_flat_goes_on_with_its_spec_run_and_question(tmp_path):
    path = str(tmp_path / "checkpoints.db")
    await save_flat_conversation(path, "old-thread")
    async with aiosqlite.connect(path) as conn:
        s = Session(ScriptedLLM(ok=False), thread="old-thread")
        s.graph = builder.compile(checkpointer=UpgradingSqliteSaver(conn))
        q = await s.send("where are we?")
        assert q == WHAT_NEXT  # the same question is open again
        assert ("So far: project **PM User Stories**, dataset `/projects/pm/data.jsonl`, run `/runs/pm-1` (done), "
                "model **PM-X-v1** in Ollama.") in s.said[-1]
        state = await s.state()
        assert state["spec"] == SPEC
        assert (state["run_dir"], state["train_sets"], state["asked_slots"]) == ("/runs/pm-1", {"epochs": "1"},
                                                                                 ["purpose", "audience"])
        # the journey goes on from the old fields: back at the hub, its menu is the one asked before the upgrade
        q = await s.click("new")
        assert q["then"] == "on_start_over"
        q = await s.click("no")
        assert q["then"] == "on_next"
        assert q["choices"] == WHAT_NEXT["choices"]
        saved = await s.graph.checkpointer.aget_tuple(s.cfg)
        assert "run_dir" not in saved.checkpoint["channel_values"]  # written back in the new shape
        assert saved.checkpoint["channel_values"]["train"]["run_dir"] == "/runs/pm-1"


def test_a_field_left_in_a_pending_write_lands_in_its_sub_state():
    found = CheckpointTuple(
        config={"configurable": {"thread_id": "t"}},
        checkpoint={"v": 4, "id": "1", "ts": "", "channel_values": {"spec": SPEC, "run_dir": "/runs/pm-1"},
                    "channel_versions": {"spec": "1", "run_dir": "2"}, "versions_seen": {}, "updated_channels": None},
        metadata={}, pending_writes=[("task", "events_since", 40), ("task", "qid", 3)])
    upgraded = upgrade(found)
    assert upgraded is not None
    assert upgraded.checkpoint["channel_values"] == {"spec": SPEC, "train": {"run_dir": "/runs/pm-1"}}
    assert upgraded.checkpoint["channel_versions"] == {"spec": "1", "train": "2"}
    assert upgraded.pending_writes == [("task", "train", {"events_since": 40}), ("task", "qid", 3)]
    assert upgrade(upgraded) is upgraded  # the new shape is read as it is

