import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tools.jobs import get_run, start_detached, stop_run
from tools.train.config import build_config
from tools.train.events import read_events
from tools.train.sft import train

# in `make test`: the Stop button's engine side (a clean stop, then a resume that ends like a run never stopped)
pytestmark = pytest.mark.timeout(240)

STEPS = 30
SETS = ["learning_rate=3e-3", "batch_size=2", "val_share=0", "checkpoint_every=3", "lora_dropout=0.1"]


def wait_for(run: Path, predicate, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in read_events(run):
            if predicate(ev):
                return ev
        time.sleep(0.01)
    raise AssertionError(f"no matching event in {run / 'events.jsonl'}: {read_events(run)[-3:]}")


def test_sigterm_then_kill_then_resume_finishes_like_an_uninterrupted_run(chat_file: Path, tmp_path: Path):
    run = tmp_path / "run"
    # 1. a detached run, stopped with SIGTERM: checkpoint, a clean "stopped" event, exit 0
    record = start_detached(str(chat_file), "tiny-random", run, sets=SETS, max_steps=STEPS)
    assert record.status == "starting"
    assert get_run(record.id).run_dir == str(run.resolve())
    wait_for(run, lambda e: e["type"] == "step")
    assert stop_run(record.id)  # SIGTERM
    assert psutil.Process(record.pid).wait(timeout=60) == 0
    assert not stop_run(record.id)
    stopped = read_events(run)[-1]
    assert stopped["type"] == "stopped", stopped
    n = stopped["step"]
    assert re.fullmatch(rf"stopped at step {n}; resume with `mtw train .* --out {run} .*--resume`", stopped["message"])
    assert (run / "checkpoints" / f"step-{n:06d}" / "state.pt").is_file()
    assert not any(e["type"] == "failed" for e in read_events(run))
    assert get_run(record.id).status == "stopped"

    # 2. resumed detached, then killed with SIGKILL right after a new checkpoint: nothing clean happens
    again = start_detached(str(chat_file), "tiny-random", run, resume=True)
    ckpt = wait_for(run, lambda e: e["type"] == "checkpoint" and e["step"] > n)
    os.kill(again.pid, signal.SIGKILL)
    psutil.Process(again.pid).wait(timeout=30)
    assert read_events(run)[-1]["type"] != "done"
    assert get_run(run).status == "lost"

    # 3. --resume from the CLI finishes the same number of steps, with the same data order and schedule
    result = CliRunner().invoke(app, ["train", "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    events = read_events(run)
    starts = [e for e in events if e["type"] == "start"]
    assert [s["resumed_from"] for s in starts] == [0, n, starts[2]["resumed_from"]]
    assert starts[2]["resumed_from"] >= ckpt["step"]
    done = events[-1]
    assert done["type"] == "done"
    assert done["metrics"]["steps"] == STEPS

    reference = train(build_config("tiny-random", str(chat_file), sets=SETS, max_steps=STEPS), tmp_path / "ref")
    ref_steps = {e["step"]: e for e in read_events(tmp_path / "ref") if e["type"] == "step"}
    last_steps = {e["step"]: e for e in events if e["type"] == "step"}
    assert set(last_steps) == set(ref_steps)
    for step in (1, n + 1, STEPS):
        assert last_steps[step]["lr"] == pytest.approx(ref_steps[step]["lr"])
        assert last_steps[step]["loss"] == pytest.approx(ref_steps[step]["loss"], abs=1e-4)
    assert done["metrics"]["train_loss"] == pytest.approx(reference["metrics"]["train_loss"], abs=1e-4)
    assert get_run(run).status == "done"
    log = (run / "train.log").read_text()
    assert "Traceback" not in log
    assert f"stopped at step {n}" in log


def test_resume_with_a_new_max_steps_trains_to_it_or_says_why_it_cannot(chat_file: Path, tmp_path: Path):
    run = tmp_path / "run"

    def stop_at_step_3(ev: dict) -> None:  # Ctrl-C during step 3: the run checkpoints and stops
        if ev["type"] == "step" and ev["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train(build_config("tiny-random", str(chat_file), sets=SETS, max_steps=6), run, listener=stop_at_step_3)
    assert stopped["type"] == "stopped"
    n = stopped["step"]
    config = (run / "config.yaml").read_text()
    refused = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", str(n)])
    assert refused.exit_code == 2
    said = " ".join(refused.output.split())
    assert f"has trained {n} steps already, so --max-steps {n} would train nothing more" in said
    assert (run / "config.yaml").read_text() == config  # nothing changed
    longer = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "9"])
    assert longer.exit_code == 0, longer.output
    assert "--max-steps 9: the run now ends at step 9 (it was 6)" in " ".join(longer.output.split())
    done = read_events(run)[-1]
    assert done["type"] == "done"
    assert done["metrics"]["steps"] == 9
    assert "--max-steps 9" in (run / "config.yaml").read_text().splitlines()[0]  # the command that reproduces it
    again = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "12"])
    assert again.exit_code == 2
    assert "has already finished" in " ".join(again.output.split())
