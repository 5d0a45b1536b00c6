"""Several chat tabs at once while a training job runs: every one gets through the interview without an error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.chat import Chat, timed_interview
from tests.reliability.conftest import signed_in_client

# a load test: `make test-all`
pytestmark = [pytest.mark.reliability, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def started(run: Path) -> bool:
    events = run / "events.jsonl"
    return events.is_file() and any(json.loads(line).get("type") == "start"
                                    for line in events.read_text().splitlines() if line.strip())


@pytest.mark.timeout(900)  # a training process starting and five interviews, on a busy machine
async def test_five_chats_at_once_during_training_all_reach_the_spec_without_an_error(launch, tmp_path):
    w = launch()
    run = tmp_path / "run"
    train = subprocess.Popen([sys.executable, "-m", "mtw.cli", "train", "--data",
                              str(ROOT / "examples" / "pm_dataset.jsonl"), "--model", "tiny-random", "--out", str(run),
                              "--max-steps", "100000"], env={**os.environ, "MTW_HOME": str(w.home)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not started(run):  # the job is under way (its start event written) before the chats begin
            assert train.poll() is None, "training exited before it started"
            await asyncio.sleep(0.2)
        cookies = dict(signed_in_client(w).cookies)

        async def tab() -> Chat:
            chat = await Chat(w.url, cookies).open()
            try:
                await timed_interview(chat)
            finally:
                await chat.close()
            return chat

        chats = await asyncio.gather(*(tab() for _ in range(5)))
        assert train.poll() is None, "training stopped during the chats"
    finally:
        os.killpg(train.pid, signal.SIGTERM)
        train.wait(60)
    assert [c.errors for c in chats] == [[]] * 5
    assert not [t for c in chats for t in c.texts() if "Something went wrong" in t]
    log = Path(w.log.name).read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "UNIQUE constraint" not in log, log[-3000:]
