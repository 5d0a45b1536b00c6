"""Browser tests: a real Chromium drives `mtw ui` started on a free port, Ollama being the test double."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
UPDATE_SCREENSHOTS = "MTW_UPDATE_SCREENSHOTS"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Wizard:
    """A running `mtw ui` process and where it keeps its data."""

    def __init__(self, home: Path, ollama_host: str, logs: Path, args: tuple[str, ...] = (),
                 port: int | None = None, module: str = "mtw.cli", env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cookie = ""
        env = dict(os.environ, MTW_HOME=str(home), OLLAMA_HOST=ollama_host, PYTHONUNBUFFERED="1", **(env or {}))
        self.log = open(logs / f"ui-{self.port}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", module, "ui", "--port", str(self.port),
                                      "--no-browser", *args],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mtw ui exited early: {Path(self.log.name).read_text()[-2000:]}")
            try:
                # the link `mtw ui` printed, as a user opens it
                printed = re.search(r"\?token=([\w-]+)", Path(self.log.name).read_text())
                token = printed.group(1) if printed else ""
                reply = httpx.get(self.url, params={"token": token}, timeout=1)
                if reply.status_code == 200:
                    # with a password (off loopback) there is no token and no session cookie until a login
                    self.cookie = reply.cookies.get(f"mtw_session_{self.port}", "")
                    self.token = token
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("mtw ui did not serve its page within 90 s")

    def sign_in(self, page) -> None:
        """Give PAGE's browser this wizard's session cookie, as opening the printed ?token= link does."""
        if not self.cookie:
            return
        page.context.add_cookies([{"name": f"mtw_session_{self.port}", "value": self.cookie, "domain": "127.0.0.1",
                                   "path": "/", "httpOnly": True, "sameSite": "Strict"}])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def start_wizard(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Start `mtw ui`; a test's browser page is signed in to it with the token, as a user would be."""
    started: list[Wizard] = []

    def _start(ollama_host: str, home: Path | None = None) -> Wizard:
        w = Wizard(home or tmp_path / "home", ollama_host, tmp_path)
        started.append(w)
        request.node.mtw_wizards = started
        if "page" in request.fixturenames:
            w.sign_in(request.getfixturevalue("page"))
        return w

    yield _start
    for w in started:
        w.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    """A failed browser test shows what the page said last and what the wizard logged: on a busy CI machine that is
    all there is to tell a lost click from a wizard that stopped answering."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    page = getattr(item, "funcargs", {}).get("page")
    if page is not None:
        try:
            report.sections.append(("page text (last 3000 characters)", page.inner_text("body")[-3000:]))
        except Exception as exc:  # noqa: BLE001 - a closed page must not hide the failure itself
            report.sections.append(("page text", f"unavailable: {exc}"))
    for w in getattr(item, "mtw_wizards", []):
        w.log.flush()
        report.sections.append((f"wizard log {w.port} (last 4000 characters)", Path(w.log.name).read_text()[-4000:]))


# module scope: the sync API runs its own event loop, which must be gone before async tests run
@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


@pytest.fixture
def screenshot(page, tmp_path: Path) -> Callable[[str], Path]:
    """Save the visible page as NAME: in the test's tmp folder, or over docs/NAME with MTW_UPDATE_SCREENSHOTS=1.

    A plain test run must leave the git tree as it found it; `make screenshots` refreshes the README's pictures.
    """
    folder = DOCS if os.environ.get(UPDATE_SCREENSHOTS) == "1" else tmp_path

    def _save(name: str) -> Path:
        path = folder / name
        page.mouse.move(1, 1)  # a pointer left over a chart would show its toolbar in the picture
        page.wait_for_timeout(300)
        page.screenshot(path=str(path), full_page=False)
        return path

    return _save
