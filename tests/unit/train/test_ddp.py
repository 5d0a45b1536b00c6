import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tools.train.events import read_events
from tools.train.launch import launch_argv
from tools.train.modeling import load_tuned

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_cpu_processes_train_one_adapter(tmp_path: Path, chat_file: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(chat_file), "--model", "tiny-random", "--out", str(run),
                                      "--nproc", "2", "--set", "batch_size=2", "--set", "val_share=0.2",
                                      "--set", "eval_every=2", "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    events = read_events(run)
    start = events[0]
    assert start["type"] == "start"
    assert start["world_size"] == 2
    assert start["sharding"] == "none"  # auto: tiny-random fits one process, so each holds it whole
    assert start["estimate_s"] > 0
    # only the main process narrates: one event per step, not two
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3, 4]
    assert events[-1]["type"] == "done"
    assert events[-1]["metrics"]["steps"] == 4
    assert (run / "config.yaml").read_text().startswith("# mtw train")
    model, _, cfg = load_tuned(run)
    assert cfg.max_steps == 4
    assert any("lora_" in n for n, _ in model.named_parameters())


def test_machines_meet_at_the_first_ones_address(tmp_path: Path):
    one = launch_argv(tmp_path, 2)
    assert "--standalone" in one
    assert "--nproc_per_node=2" in one
    two = launch_argv(tmp_path, 4, nnodes=2, node_rank=1, master="10.0.0.1:29500", resume=True)
    assert "--standalone" not in two
    for flag in ("--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29500",
                 "--nproc_per_node=4", "--resume"):
        assert flag in two


@pytest.mark.parametrize(("args", "says"), [
    (["--nnodes", "2", "--node-rank", "0"], "--nnodes needs --master ADDR:PORT"),
    (["--nnodes", "2", "--node-rank", "2", "--master", "127.0.0.1:29500"], "--node-rank 2 is not one of the 2"),
    (["--nnodes", "2", "--node-rank", "1", "--master", "127.0.0.1"], "--master '127.0.0.1' is not ADDR:PORT"),
])
def test_a_bad_multi_machine_launch_says_what_to_give(tmp_path: Path, chat_file: Path, args: list[str], says: str):
    result = CliRunner().invoke(app, ["train", "--data", str(chat_file), "--model", "tiny-random", "--out",
                                      str(tmp_path / "run"), *args])
    assert result.exit_code == 2
    assert says in result.output
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _machines(chat_file: Path, runs: list[Path], port: int, *extra: str) -> list[subprocess.Popen[str]]:
    """Two `mtw train` processes meeting on 127.0.0.1, each with its own run folder (nothing shared)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MTW_PLAIN_PROGRESS": "1"}
    return [subprocess.Popen([sys.executable, "-c", "from mtw.cli import main; main()", "train",
                              "--data", str(chat_file), "--model", "tiny-random", "--out", str(run),
                              "--nproc", "1", "--nnodes", "2", "--node-rank", str(rank),
                              "--master", f"127.0.0.1:{port}", *extra],
                             env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
            for rank, run in enumerate(runs)]


@pytest.mark.slow
@pytest.mark.timeout(600)  # four `mtw train` processes, eight with their workers: 5 minutes on a loaded 2-core machine
def test_two_machines_train_one_adapter_that_resumes(tmp_path: Path, chat_file: Path):
    runs = [tmp_path / "machine0", tmp_path / "machine1"]
    sets = ["--set", "batch_size=2", "--set", "checkpoint_every=2", "--set", "val_share=0", "--max-steps", "8"]
    procs = _machines(chat_file, runs, _free_port(), *sets)
    deadline = time.monotonic() + 250
    while not any(e["type"] == "checkpoint" for e in read_events(runs[0])):
        assert time.monotonic() < deadline, procs[0].communicate()[0][-3000:]
        assert procs[0].poll() is None, procs[0].communicate()[0][-3000:]
        time.sleep(0.5)
    for p in procs:  # Ctrl-C on both machines: every process gets it, the workers checkpoint and stop together
        os.killpg(p.pid, signal.SIGINT)
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    events = read_events(runs[0])
    assert events[-1]["type"] == "stopped", outputs[0][-3000:]
    stopped_at = events[-1]["step"]
    assert not read_events(runs[1])  # only machine 0 writes the run

    procs = _machines(chat_file, runs, _free_port(), "--resume")
    outputs = [p.communicate(timeout=250)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    events = read_events(runs[0])
    resumed = [e for e in events if e["type"] == "start"][-1]
    assert resumed["world_size"] == 2
    assert resumed["resumed_from"] == stopped_at
    assert events[-1]["type"] == "done"
    assert events[-1]["metrics"]["steps"] == 8
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, 9))  # no step trained twice, none skipped
    model, _, _ = load_tuned(runs[0])
    assert any("lora_" in n for n, _ in model.named_parameters())
