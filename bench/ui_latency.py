"""UI latency: `mtw ui` cold start (process start → first HTTP 200 on /) and a wizard turn's overhead.

A turn is an answer going into the wizard's graph until its next question, with the assistant model
played by the Ollama test double answering at once, so what is measured is our own overhead: the
graph, its SQLite checkpoints, the structured-output round trip and the doctor checks.

    python bench/ui_latency.py
    python bench/ui_latency.py --runs 5 --turns 60 --json bench/out/ui.json

Targets (issue 7): cold start ≤ 3 s, turn overhead p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLD_START_TARGET_S = 3.0
TURN_P95_TARGET_MS = 100.0
ANSWERS = {
    "purpose": "Write user stories for our checkout team",
    "audience": "Engineers and designers on the squad",
    "house_style": "Short, As a / I want / So that, then acceptance criteria",
    "samples": "As a shopper I want to save my cart so that I can finish later.",
    "never_do": "Never invent metrics",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mtw_command() -> list[str]:
    """The installed `mtw` beside this Python (what a user runs), else the same entry point through -c."""
    script = Path(sys.executable).with_name("mtw")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from mtw.cli import main; main()"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---------------------------------------------------------------- cold start


def cold_start(env: dict[str, str], timeout_s: float = 60.0) -> float:
    """Seconds from starting `mtw ui --port N` to the first 200 on its signed-in link; the server is stopped after."""
    from assistant.access import ui_token

    port = free_port()
    # the install's token, as `mtw ui` prints it (created here first if this MTW_HOME has none yet)
    url = f"http://127.0.0.1:{port}/?token={ui_token(Path(env['MTW_HOME']))}"
    start = time.perf_counter()
    proc = subprocess.Popen([*mtw_command(), "ui", "--port", str(port), "--no-browser"], env=env,
                            cwd=env["MTW_HOME"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        while time.perf_counter() - start < timeout_s:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                raise RuntimeError(f"`mtw ui` exited with {proc.returncode} before serving a page:\n{err}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"`mtw ui` served no page within {timeout_s:.0f} s")
    finally:
        # the session we started holds the server and anything it spawned
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- turn overhead


def reply_for(body: dict[str, Any]) -> str:
    """The double's structured answer: the slot the prompt asks about, filled with the user's words."""
    prompt = body["messages"][-1]["content"]
    fields = list((body.get("format") or {}).get("properties") or {})
    answer = re.search(r'^The user answered: "(.*)"$', prompt, re.M)
    name, text = (fields[0] if len(fields) == 1 else ""), (answer.group(1) if answer else "")
    if name in ("never_do", "labels", "entity_types"):
        return json.dumps({name: [text]})
    if name == "task_type":
        return json.dumps({"task_type": "generation"})
    return json.dumps({name: text} if name else {})


# clicks that keep the journey inside the chat: the sample dataset, go on once it checks out, and try the
# steps on tiny-random rather than download a base model
PREFERRED = ("sample", "continue", "generation", "tiny")
# a turn past these would start a multi-GB download or a training process: the conversation ends there
STOP_AT = {"on_confirm_training", "pull_assistant_model"}


def answer_for(question: dict[str, Any]) -> str | None:
    """What a user would click or type for this question; None ends the conversation."""
    if question.get("kind") == "confirm":
        return "confirm"
    slot = str(question.get("slot") or question.get("then"))
    if question.get("kind") != "question" or question.get("then") in STOP_AT:
        return None
    choices = question.get("choices") or {}
    preferred = [c for c in PREFERRED if c in choices]
    if preferred:
        return preferred[0]
    if slot in ANSWERS or not choices:
        return ANSWERS.get(slot, "Yes")
    return str(next(iter(choices)))


async def drive(turns: int, double_url: str, db: Path) -> tuple[list[float], dict[str, list[float]]]:
    """Run conversations until `turns` answers were timed: (first-turn seconds, answer seconds by question)."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.types import Command

    from assistant.context import WizardContext
    from assistant.graph import builder
    from assistant.llm import LLM
    from tools.settings import get_settings

    saver = AsyncSqliteSaver(await aiosqlite.connect(db))
    await saver.setup()
    graph: Any = builder.compile(checkpointer=saver)
    firsts: list[float] = []
    answers: dict[str, list[float]] = {}
    timed = 0
    thread = 0
    try:
        while timed < turns:
            thread += 1
            config = {"configurable": {"thread_id": f"bench-{thread}"}}
            ctx = WizardContext(llm=LLM(host=double_url), settings=get_settings(), thread_id=f"bench-{thread}")
            value: Any = None
            slot = ""
            while timed < turns:
                question = None
                start = time.perf_counter()
                inp: Any = {} if value is None else Command(resume=value)
                async for mode, chunk in graph.astream(inp, config, context=ctx, stream_mode=["custom", "updates"]):
                    if mode == "updates" and "__interrupt__" in chunk:
                        question = chunk["__interrupt__"][0].value
                elapsed = time.perf_counter() - start
                if value is None:
                    firsts.append(elapsed)
                else:
                    answers.setdefault(slot, []).append(elapsed)
                    timed += 1
                value = answer_for(question) if question else None
                if value is None:
                    break  # the end of what a turn can do without a download or a training run
                slot = str(question.get("slot") or question.get("then")) if question else ""
    finally:
        await saver.conn.close()
    return firsts, answers


def turn_overhead(turns: int, env: dict[str, str]) -> tuple[list[float], dict[str, list[float]], int]:
    """Time answer turns against the Ollama test double; also how many model calls they made."""
    from tests.fakes.ollama_double import OllamaDouble

    os.environ.update(env)
    from tools.settings import get_settings

    get_settings.cache_clear()
    double = OllamaDouble(models=[f"{get_settings().assistant_model}:latest"]).start()
    double.responder = reply_for
    try:
        firsts, answers = asyncio.run(drive(turns, double.url, Path(env["MTW_HOME"]) / "bench-checkpoints.db"))
        return firsts, answers, len(double.requests_to("/api/chat"))
    finally:
        double.stop()


# ---------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts to time")
    parser.add_argument("--turns", type=int, default=40, help="answer turns to time")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="mtw-ui-bench-"))
    # no network: the Hub (asked for a base model's size) answers "unreachable" at once, as Ollama does here
    env = dict(os.environ, MTW_HOME=str(home), OLLAMA_HOST="http://127.0.0.1:9", HF_ENDPOINT="http://127.0.0.1:9",
               HF_HOME=str(home / "hf"), PYTHONUNBUFFERED="1")
    out: dict[str, Any] = {"command": " ".join(["python", "bench/ui_latency.py",
                                                *(argv if argv is not None else sys.argv[1:])])}
    try:
        if not args.skip_cold_start:
            starts = [cold_start(env) for _ in range(args.runs)]
            out["cold_start_s"] = {"runs": [round(s, 3) for s in starts], "median": round(statistics.median(starts), 3),
                                   "target": COLD_START_TARGET_S}
            print(f"cold start (mtw ui → first 200 on /): median {statistics.median(starts):.2f} s over "
                  f"{len(starts)} runs {[round(s, 2) for s in starts]}  (target ≤ {COLD_START_TARGET_S:.0f} s)")
        firsts, answers, calls = turn_overhead(args.turns, env)
        ms = [x * 1000 for xs in answers.values() for x in xs]
        by_slot = {slot: round(max(xs) * 1000, 1) for slot, xs in answers.items()}
        slowest = sorted(by_slot.items(), key=lambda kv: -kv[1])[:3]
        p50, p95 = percentile(ms, 0.5), percentile(ms, 0.95)
        out["turn_ms"] = {"p50": round(p50, 1), "p95": round(p95, 1), "max": round(max(ms), 1),
                          "turns": len(ms), "model_calls": calls, "max_ms_by_question": by_slot,
                          "first_turn_ms": [round(x * 1000, 1) for x in firsts], "target_p95": TURN_P95_TARGET_MS}
        print(f"answer turn overhead (graph + checkpoints + instant model): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
              f"max {max(ms):.1f} ms over {len(ms)} turns, {calls} structured model calls  "
              f"(target p95 ≤ {TURN_P95_TARGET_MS:.0f} ms)")
        interview = [x * 1000 for slot, xs in answers.items() if not slot.startswith("on_") for x in xs]
        if interview:
            out["turn_ms"]["interview_p50"] = round(percentile(interview, 0.5), 1)
            out["turn_ms"]["interview_p95"] = round(percentile(interview, 0.95), 1)
            print(f"interview answers only (no dataset work): p50 {percentile(interview, 0.5):.1f} ms, "
                  f"p95 {percentile(interview, 0.95):.1f} ms over {len(interview)} turns")
        print("slowest answers by question: " + ", ".join(f"{slot} {v:.0f} ms" for slot, v in slowest))
        print(f"first turn (greeting + machine checks): median {statistics.median(firsts) * 1000:.0f} ms "
              f"over {len(firsts)} conversations")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
