"""Assistant turns on a real small model: how long each chat turn takes with SmolLM2-135M-Instruct as the assistant.

The wizard's graph is driven as the chat drives it (typed answers, "not sure", a question, drafting, a rewrite, a
choice said in other words), its model being SmolLM2-135M-Instruct served by llama-server behind the Ollama test
double's real-model mode (format= as llama.cpp's grammar, as Ollama does it). Each turn is timed from the message to
the next question. The baseline, measured in the same run on the same prompts: the same calls as the wizard made
them before they were bounded (the whole spec schema to fill, no num_predict, no time limit, no repetition stop).

    LLAMA_CPP_DIR=../shared/engines/llama.cpp python bench/assistant_turns.py
    LLAMA_CPP_DIR=../shared/engines/llama.cpp python bench/assistant_turns.py --json bench/results/turns.json

Goal (issue 25): no turn over 60 s on a quiet machine, and never a wait without a way on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TURN_GOAL_S = 60.0
TURNS: list[tuple[str, Any]] = [
    ("purpose", "Write user stories from one-line feature ideas"),
    ("question", "what is LoRA?"),
    ("not sure", "not sure"),
    ("audience", "our engineers and designers"),
    ("house style", "plain, with bullets"),
    ("samples", "skip"),
    ("never do", "Never invent metrics, dates or deadlines"),
    ("confirm", "confirm"),
    ("choice in other words", "I'd like to draft them together with you"),
]
_TEXTS = {"type": "array", "items": {"type": "string"}}
OLD_SPEC_SCHEMA = {"type": "object", "properties": {k: {"type": "string"} for k in (
    "name", "purpose", "audience", "house_style")} | {
    "task_type": {"enum": ["generation", "classification", "entity_extraction", ""]},
    "never_do": _TEXTS, "labels": _TEXTS, "entity_types": _TEXTS}}
"""The one schema every interview answer was read with before: eight fields for a small model to fill."""


async def drive(turn_limit_s: float) -> list[dict[str, Any]]:
    """Each turn of the conversation with the real model: seconds, the question it ended at, what was said."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from assistant.context import WizardContext
    from assistant.graph import builder
    from assistant.llm import LLM
    from tools.settings import get_settings

    graph = builder.compile(checkpointer=InMemorySaver())
    ctx = WizardContext(llm=LLM(), settings=get_settings(), thread_id="bench", time_limit_s=turn_limit_s)
    cfg = {"configurable": {"thread_id": "bench"}}
    out: list[dict[str, Any]] = []

    async def turn(name: str, value: Any) -> dict[str, Any]:
        said: list[str] = []
        question: dict[str, Any] = {}
        start = time.perf_counter()
        async for mode, chunk in graph.astream({} if value is None else Command(resume=value), cfg, context=ctx,
                                               stream_mode=["custom", "updates"]):
            if mode == "custom" and chunk.get("ui") == "say":
                said.append(chunk["text"])
            if mode == "updates" and "__interrupt__" in chunk:
                question = chunk["__interrupt__"][0].value
        row = {"turn": name, "seconds": round(time.perf_counter() - start, 2),
               "next": question.get("slot") or question.get("then", ""),
               "fallback": any("I stopped waiting" in t or "took longer" in t or "repeating" in t for t in said)}
        out.append(row)
        print(f"  {name:<24} {row['seconds']:>7.1f} s  → {row['next']}", flush=True)
        return question

    await turn("start", None)
    q: dict[str, Any] = {}
    for name, value in TURNS:
        q = await turn(name, value)
    if q.get("then") == "on_data_choice" and "draft" in q.get("choices", {}):
        # the model did not place the words: the button, as a person would click it next
        q = await turn("draft (clicked)", {"qid": q["id"], "value": "draft", "label": "Draft examples with me"})
    if q.get("then") == "on_review":
        await turn("rewrite", "make it shorter")
    return out


def baseline(cap_s: float) -> list[dict[str, Any]]:
    """The interview's readings and a draft as they were asked before: the whole spec schema, no token limit, no
    time limit. Read as they stream, and left at `cap_s` (the figure is then "more than cap_s")."""
    from assistant import prompts
    from tools import ollama_api
    from tools.dataset.draft import SYSTEM, _draft_prompt
    from tools.dataset.drafted import ChatBatch
    from tools.project import ProjectSpec
    from tools.settings import assistant_model

    client = ollama_api.client(timeout=cap_s + 60)
    spec = ProjectSpec(purpose=TURNS[0][1], task_type="generation", audience=TURNS[3][1], house_style=TURNS[4][1])
    asks = [(name, f"Spec so far: {{}}\nQuestion (about '{slot}'): {prompts.questions()[slot]['question']}\n"
                   f"Answer: {answer}\nReturn the fields this answer fills.", OLD_SPEC_SCHEMA,
             prompts.text("interview_system.md"))
            for name, slot, answer in (("purpose", "purpose", TURNS[0][1]), ("audience", "audience", TURNS[3][1]),
                                       ("house style", "house_style", TURNS[4][1]))]
    asks.append(("draft 5", _draft_prompt(spec, 5, []), ChatBatch.model_json_schema(), SYSTEM))
    rows = []
    for name, prompt, schema, system in asks:
        start = time.perf_counter()
        pieces, done_reason, capped = 0, "", False
        stream = client.chat(assistant_model(), messages=[{"role": "system", "content": system},
                                                          {"role": "user", "content": prompt}],
                             format=schema, options={"temperature": 0}, stream=True)
        for part in stream:
            pieces += 1
            done_reason = part.done_reason or done_reason
            if time.perf_counter() - start > cap_s:
                capped = True
                stream.close()
                break
        rows.append({"call": name, "seconds": round(time.perf_counter() - start, 2), "pieces": pieces,
                     "done_reason": done_reason, "capped": capped})
        print(f"  {name:<24} {'>' if capped else ' '}{rows[-1]['seconds']:>6.1f} s  {pieces} pieces "
              f"({'still writing' if capped else done_reason})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unbounded calls (they can take minutes)")
    parser.add_argument("--turn-limit", type=float, default=45.0, help="the wizard's limit for one model answer")
    parser.add_argument("--baseline-cap", type=float, default=300.0, help="leave an unbounded call after this long")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mtw-bench-turns-"))
    os.environ.update(MTW_HOME=str(home / "home"), MTW_ASSISTANT_MODEL="smollm2:135m", HF_HUB_OFFLINE="1")

    from tests.fakes.llama_engine import llama_cpp_dir
    from tests.fakes.real_model import real_model_double
    from tools.settings import get_settings

    if llama_cpp_dir() is None:
        sys.exit("Set LLAMA_CPP_DIR to a built llama.cpp (../shared/engines/llama.cpp).")
    double = real_model_double(home / "engine").start()
    os.environ["OLLAMA_HOST"] = double.url
    get_settings.cache_clear()
    try:
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("the wizard's turns (bounded):")
        turns = asyncio.run(drive(args.turn_limit))
        before = [] if args.no_baseline else (print("the same calls unbounded (before):"),
                                              baseline(args.baseline_cap))[1]
    finally:
        double.stop()
    worst = max(turns, key=lambda r: r["seconds"])
    result = {"model": "smollm2:135m (Q4_1, llama-server)", "cores": os.cpu_count(),
              "load_average": round(os.getloadavg()[0], 1), "turns": turns, "baseline": before,
              "worst_turn_s": worst["seconds"], "worst_turn": worst["turn"], "goal_s": TURN_GOAL_S,
              "within_goal": worst["seconds"] <= TURN_GOAL_S}
    print(f"worst turn: {worst['turn']} {worst['seconds']:.1f} s (goal ≤ {TURN_GOAL_S:.0f} s on a quiet machine)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
