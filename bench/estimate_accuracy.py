"""The plan's time against the run's: `mtw train` as a user starts it, estimate vs measured wall time.

Each case is a fresh `mtw train` process in a fresh MTW_HOME (so the calibration is measured inside the
run, as on a user's first run with that model). Three figures per case:
- estimated_s: the whole run's time the plan showed (the start event's `estimate_s`), goal within ±50 %;
- after_10_s: time spent at step 10 plus the ETA then, goal within ±20 %;
- measured_s: from starting the process to its exit.

    python bench/estimate_accuracy.py
    python bench/estimate_accuracy.py --json results/estimate_cpu.json --steps 30

The small-50m case trains at batch 1 (about 1,200 tokens a step on the PM examples with tiny-random's
character vocabulary): at the default batch 4 a step takes minutes on two busy cores, and the case would not
finish; the estimate is for the run as configured either way.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMALL: dict[str, Any] = dict(hidden_size=512, num_hidden_layers=10, num_attention_heads=8, num_key_value_heads=4,
             intermediate_size=1536, vocab_size=30524, tie_word_embeddings=True)
"""The ~50M-parameter Llama shape of bench/train_throughput.py ("small"), with tiny-random's vocabulary."""


def build_small_model(folder: Path) -> Path:
    """A random-init ~50M model folder (config, weights, tokenizer): a real `--model FOLDER` to train."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tools.models.catalog import tiny_random_tokenizer

    tok = tiny_random_tokenizer()
    config = LlamaConfig(**SMALL, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=0,
                         max_position_embeddings=4096)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tagging_data(path: Path, n: int = 60) -> Path:
    """Entity-tagging rows (tokens + tags), seeded."""
    rng = random.Random(0)
    features = ["search", "billing", "dark mode", "exports", "alerts", "invites", "audit log", "sso"]
    months = ["March", "April", "May", "June", "July"]
    rows = []
    for _ in range(n):
        f, m = rng.choice(features), rng.choice(months)
        tokens = ["Ship", *f.split(), "by", m, "for", "the", "web", "team"]
        tags = ["O", "B-FEATURE", *["I-FEATURE"] * (len(f.split()) - 1), "O", "B-DATE", "O", "O", "O", "O"]
        rows.append({"tokens": tokens, "tags": tags})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_case(name: str, data: Path, model: str, steps: int, work: Path, sets: list[str]) -> dict[str, Any]:
    """One `mtw train` from process start to exit, in its own MTW_HOME."""
    run = work / name
    env = {**os.environ, "MTW_HOME": str(work / f"home-{name}"), "MTW_PLAIN_PROGRESS": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "from mtw.cli import main; main()", "train", "--data", str(data),
           "--model", model, "--out", str(run), "--max-steps", str(steps), "--set", "eval_every=10", *sets]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    measured = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    events = [json.loads(line) for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    start = next(e for e in events if e["type"] == "start")
    tenth = next((e for e in events if e["type"] == "step" and e["step"] == 10), None)
    after_10 = None if tenth is None or tenth.get("eta_s") is None else tenth["ts"] - t0 + tenth["eta_s"]
    return {"name": name, "estimated_s": start.get("estimate_s"), "measured_s": round(measured, 1),
            "after_10_s": None if after_10 is None else round(after_10, 1), "steps": steps}


def ratio(est: float | None, measured: float) -> str:
    return "—" if est is None else f"{est / measured:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per case (default 20)")
    parser.add_argument("--case", action="append", choices=["tiny-random", "minilm-classify", "minilm-tagging",
                                                             "small-50m"], help="run only these cases")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    wanted = args.case or ["tiny-random", "minilm-classify", "minilm-tagging", "small-50m"]
    cases = []
    with tempfile.TemporaryDirectory(prefix="mtw-estimate-") as tmp:
        work = Path(tmp)
        plans: dict[str, tuple[Path, str, list[str]]] = {
            "tiny-random": (ROOT / "examples" / "pm_dataset.jsonl", "tiny-random", []),
            "minilm-classify": (ROOT / "examples" / "pm_task_types.jsonl", "minilm", []),
            "minilm-tagging": (tagging_data(work / "tags.jsonl"), "minilm", []),
        }
        if "small-50m" in wanted:
            plans["small-50m"] = (ROOT / "examples" / "pm_dataset.jsonl", str(build_small_model(work / "small")),
                                  ["--set", "batch_size=1"])
        for name in wanted:
            data, model, sets = plans[name]
            case = run_case(name, data, model, args.steps, work, sets)
            cases.append(case)
            print(f"{name:16s} estimated {case['estimated_s']}s  after 10 steps {case['after_10_s']}s  "
                  f"measured {case['measured_s']}s  (ratios {ratio(case['estimated_s'], case['measured_s'])}, "
                  f"{ratio(case['after_10_s'], case['measured_s'])})", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cases": cases}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
