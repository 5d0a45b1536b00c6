"""UI under load: N chat clients at once through the first interview turns while a tiny-random training job runs.

Each client is a chat tab without a browser (chainlit's socket.io protocol, `tests/reliability/chat.py`): it
signs in with the printed link's token, opens a new conversation and answers the interview up to the spec,
timing each answer from sending it to the next question on screen. The assistant model is down (the wizard runs
as a guided form), so what is measured is the server: the graph, its checkpoints, chat history, the socket. The
baseline is the same clients one at a time, in the same run, before the load.

    python bench/ui_load.py
    python bench/ui_load.py --clients 20 --json bench/out/ui_load.json

Goal (issue 13): 0 errors; p50 / p95 turn times recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from ui_latency import free_port, mtw_command, percentile  # noqa: E402

# what in the server's own output counts as an error
ERROR_MARKS = ("Traceback", "ERROR", "UNIQUE constraint", "Something went wrong")


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`mtw ARGS` in its own process group (so it and anything it starts can be stopped), output to LOG."""
    with open(log, "wb") as out:
        return subprocess.Popen([*mtw_command(), *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(probe: Any, what: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> Any:
    """Poll PROBE until it returns something; fails with the process's output if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {timeout_s:.0f} s:\n{log.read_text()[-2000:]}")


def steps(run: Path) -> int:
    """The last training step the run has logged."""
    events = run / "events.jsonl"
    if not events.is_file():
        return 0
    done = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return max((e["step"] for e in done if e.get("type") == "step"), default=0)


async def client(url: str, cookies: dict[str, str]) -> tuple[list[float], list[str]]:
    """One chat tab through the interview: (turn seconds, errors it saw)."""
    from tests.reliability.chat import Chat, timed_interview

    chat = Chat(url, cookies)
    try:
        await chat.open()
        times = await timed_interview(chat)
        troubles = [t for t in chat.texts() if "Something went wrong" in t]
        return times, chat.errors + troubles
    except Exception as exc:  # counted: any client that fails is an error of the run
        return [], [f"{type(exc).__name__}: {exc}"]
    finally:
        await chat.close()


async def crowd(url: str, cookies: dict[str, str], n: int) -> list[tuple[list[float], list[str]]]:
    return list(await asyncio.gather(*(client(url, cookies) for _ in range(n))))


def summary(results: list[tuple[list[float], list[str]]]) -> dict[str, Any]:
    firsts = [t[0] * 1000 for t, _ in results if t]
    turns = [x * 1000 for t, _ in results for x in t[1:]]
    out: dict[str, Any] = {"clients": len(results), "errors": [e for _, errs in results for e in errs],
                           "turns": len(turns)}
    if turns:
        out.update(turn_p50_ms=round(percentile(turns, 0.5)), turn_p95_ms=round(percentile(turns, 0.95)),
                   turn_max_ms=round(max(turns)), first_question_p50_ms=round(percentile(firsts, 0.5)),
                   first_question_p95_ms=round(percentile(firsts, 0.95)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="chat clients at once")
    parser.add_argument("--baseline", type=int, default=3, help="clients run one at a time first, for the baseline")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    from assistant.access import ui_token

    home = Path(tempfile.mkdtemp(prefix="mtw-ui-load-"))
    env = dict(os.environ, MTW_HOME=str(home), OLLAMA_HOST="http://127.0.0.1:9", HF_ENDPOINT="http://127.0.0.1:9",
               HF_HOME=str(home / "hf"), PYTHONUNBUFFERED="1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = ui_token(home)
    run = home / "load-run"
    out: dict[str, Any] = {"command": " ".join(["python", "bench/ui_load.py",
                                                *(argv if argv is not None else sys.argv[1:])])}
    ui = start(["ui", "--port", str(port), "--no-browser"], env, home / "ui.log")
    train: subprocess.Popen[bytes] | None = None
    try:
        import httpx

        def signed_in() -> dict[str, str] | None:
            """The cookies a browser holds after opening the printed link (the session, then chainlit's login)."""
            with httpx.Client(base_url=url, timeout=5) as browser:
                try:
                    if browser.get("/", params={"token": token}).status_code != 200:
                        return None
                    browser.post("/auth/header").raise_for_status()
                except httpx.HTTPError:
                    return None
                return dict(browser.cookies)

        cookies = wait_for(signed_in, "mtw ui serving its page", 120, ui, home / "ui.log")
        base = [asyncio.run(crowd(url, cookies, 1))[0] for _ in range(args.baseline)]
        out["alone"] = summary(base)

        train = start(["train", "--data", str(ROOT / "examples" / "pm_dataset.jsonl"), "--model", "tiny-random",
                       "--out", str(run), "--max-steps", "100000"], env, home / "train.log")
        wait_for(lambda: steps(run) >= 1, "training's first step", 600, train, home / "train.log")
        before = steps(run)
        started = time.perf_counter()
        loaded = asyncio.run(crowd(url, cookies, args.clients))
        out["load"] = summary(loaded)
        out["load"]["wall_s"] = round(time.perf_counter() - started, 1)
        training = train.poll() is None
        out["training"] = {"running_throughout": training, "steps_during_load": steps(run) - before}
        server_errors = [line for line in (home / "ui.log").read_text(errors="replace").splitlines()
                         if any(m in line for m in ERROR_MARKS)]
        out["server_error_lines"] = server_errors[:20]
        errors = len(out["load"]["errors"]) + len(out["alone"]["errors"]) + len(server_errors) + (not training)
        out["errors"] = errors
    finally:
        if train is not None:
            stop(train)
        stop(ui)
        shutil.rmtree(home, ignore_errors=True)

    a, ld = out["alone"], out["load"]
    print(f"alone ({a['clients']} clients one at a time): turn p50 {a.get('turn_p50_ms')} ms, "
          f"p95 {a.get('turn_p95_ms')} ms; first question p50 {a.get('first_question_p50_ms')} ms")
    print(f"{ld['clients']} clients at once with training running: turn p50 {ld.get('turn_p50_ms')} ms, "
          f"p95 {ld.get('turn_p95_ms')} ms, max {ld.get('turn_max_ms')} ms over {ld['turns']} turns; "
          f"first question p50 {ld.get('first_question_p50_ms')} ms, p95 {ld.get('first_question_p95_ms')} ms; "
          f"{ld['wall_s']} s in all")
    print(f"training kept running: {out['training']['running_throughout']} "
          f"({out['training']['steps_during_load']} steps during the load)")
    print(f"errors: {out['errors']}" + "".join(f"\n  {e}" for e in ld["errors"][:10] + out["server_error_lines"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
