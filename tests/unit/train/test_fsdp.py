import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mtw.cli import app
from tools.errors import UsageError
from tools.models.catalog import build_tiny_random
from tools.train.config import build_config
from tools.train.events import read_events
from tools.train.loss import lm_loss
from tools.train.modeling import apply_lora, load_tuned
from tools.train.sharding import pick_sharding, shard_base

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("setting", "world", "need_mb", "chosen"), [
    ("auto", 2, 9000.0, "fsdp"),   # the base does not fit one process: share it
    ("auto", 2, 500.0, "none"),    # it fits: every process holds it whole, no gathering per layer
    ("auto", 1, 9000.0, "none"),   # one process has no one to share with
    ("fsdp", 2, 500.0, "fsdp"),    # asked for
    ("none", 4, 9000.0, "none"),   # asked for
])
def test_auto_shards_only_a_base_that_does_not_fit_one_process(setting: str, world: int, need_mb: float,
                                                               chosen: str):
    assert pick_sharding(setting, world=world, need_mb=need_mb, budget_mb=1000.0) == chosen


def test_a_4bit_base_cannot_be_sharded():
    with pytest.raises(UsageError) as err:
        build_config("tiny-random", "d.jsonl", sets=["sharding=fsdp", "four_bit=true"])
    assert "sharding fsdp with four_bit" in err.value.message


def test_sharding_with_one_process_says_to_add_processes(tmp_path: Path, chat_file: Path):
    result = CliRunner().invoke(app, ["train", "--data", str(chat_file), "--model", "tiny-random", "--out",
                                      str(tmp_path / "run"), "--set", "sharding=fsdp"])
    assert result.exit_code == 2
    assert "--nproc 2" in result.output
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_sharded_base_computes_the_same_loss_and_adapter_gradients(tmp_path: Path):
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    def lora_model() -> torch.nn.Module:
        return apply_lora(build_tiny_random(seed=0), r=4, alpha=8, dropout=0.0,
                          targets=("q_proj", "v_proj"), seed=1)

    ids = torch.randint(10, 150, (1, 40), generator=torch.Generator().manual_seed(3))
    batch = {"input_ids": ids, "labels": ids.clone()}
    plain = lora_model()
    loss_plain, _ = lm_loss(plain, batch, 16)
    loss_plain.backward()

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        sharded = lora_model()
        whole = shard_base(sharded, "cpu", 1)
        loss_sharded, _ = lm_loss(sharded, batch, 16)
        loss_sharded.backward()
    finally:
        dist.destroy_process_group()
    params = dict(sharded.named_parameters())
    layer_weight = "base_model.model.model.layers.0.mlp.up_proj.weight"
    assert isinstance(params[layer_weight], DTensor)
    assert not isinstance(params["base_model.model.lm_head.weight"], DTensor)
    trained = [p for p in params.values() if p.requires_grad]
    assert trained  # the adapter stays whole on every process: no shard of it to gather for a checkpoint
    assert all(p in whole and not isinstance(p, DTensor) for p in trained)
    assert loss_sharded.item() == pytest.approx(loss_plain.item(), rel=1e-5)
    for name, p in plain.named_parameters():
        if p.requires_grad:
            assert params[name].grad is not None, name
            torch.testing.assert_close(params[name].grad, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(600)  # two `mtw train --nproc 2` runs, six processes in all, on a loaded 2-core machine
def test_two_sharded_processes_train_one_adapter_that_resumes(tmp_path: Path, chat_file: Path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MTW_PLAIN_PROGRESS": "1"}

    def mtw_train(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", "from mtw.cli import main; main()", "train",
                                 "--data", str(chat_file), "--model", "tiny-random", "--out", str(run),
                                 "--nproc", "2", *extra],
                                env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)

    proc = mtw_train("--set", "sharding=fsdp", "--set", "batch_size=2", "--set", "checkpoint_every=2",
                     "--set", "val_share=0", "--max-steps", "30")
    deadline = time.monotonic() + 250
    while not any(e["type"] == "checkpoint" for e in read_events(run)):
        assert time.monotonic() < deadline, proc.communicate()[0][-3000:]
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the processes checkpoint and stop together
    output = proc.communicate(timeout=60)[0]
    events = read_events(run)
    assert events[-1]["type"] == "stopped", output[-3000:]
    stopped_at = events[-1]["step"]

    proc = mtw_train("--resume")
    output = proc.communicate(timeout=250)[0]
    assert proc.returncode == 0, output[-3000:]
    events = read_events(run)
    starts = [e for e in events if e["type"] == "start"]
    assert [s["sharding"] for s in starts] == ["fsdp", "fsdp"]
    assert starts[-1]["world_size"] == 2
    assert starts[-1]["resumed_from"] == stopped_at
    assert events[-1]["type"] == "done"
    assert [e["step"] for e in events if e["type"] == "step"] == list(range(1, 31))  # none twice, none skipped
    model, _, _ = load_tuned(run)
    assert any("lora_" in n for n, _ in model.named_parameters())
