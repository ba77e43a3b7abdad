"""Browser tests: serve the dashboard with Voila on a free port and drive it in headless Chromium.

Chromium is Debian's (``CHROMIUM_PATH`` or the ``chromium`` on PATH), driven by Playwright's Python package.
Without a browser these tests skip, unless ``REQUIRE_BROWSER=1`` (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "explorer.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Error in kernel", "An error occurred while executing")


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if not path:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but no Chromium was found (set CHROMIUM_PATH or install chromium).")
        pytest.skip("no Chromium found; set CHROMIUM_PATH to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def dashboard_url(browser, tmp_path_factory):
    """Voila serving the dashboard notebook the way ``attention-explorer serve`` does (warm kernel pool)."""
    from explorer.cli import pool_size, voila_command, voila_env, wait_until_warm

    port = free_port()
    log_path = tmp_path_factory.mktemp("voila") / "voila.log"
    env = voila_env(dict(os.environ, AE_FAST="1"))
    students = 2
    command = voila_command(DASHBOARD, port, open_browser=False, students=students, ip="127.0.0.1")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        # A page that lands on a kernel still running the dashboard was seen to fail in CI with "widget model
        # not found", so the tests start when the pool is warm, as the serve command says "Ready" then.
        if not wait_until_warm(process, port, pool_size(students), timeout=180.0):
            raise RuntimeError(f"Voila exited with code {process.returncode}" if process.poll() is not None
                               else "Voila's warm kernels were not ready within 180 s")
        yield url
    finally:
        stop_server(process, log_path, "SHOW_VOILA_LOG")


def stop_server(process: subprocess.Popen, log_path: Path, show_log: str, timeout: float = 20.0) -> None:
    """Stop a server a fixture started (killed if it does not stop); its log goes to stderr if ``show_log`` is set."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
    if os.environ.get(show_log):
        sys.stderr.write(log_path.read_text())


@pytest.fixture
def page(browser):
    """A fresh page; the test fails if the page logs a console error or shows a Python traceback."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    trace = record_trace(page) if os.environ.get("AE_BROWSER_TRACE") else None
    yield page
    body = page.inner_text("body") if not page.is_closed() else ""
    errors = list(errors)  # what the test saw; loads cut short by closing the page below do not count
    context.close()
    if trace is not None:
        folder = Path(os.environ["AE_BROWSER_TRACE"])
        folder.mkdir(parents=True, exist_ok=True)
        test = os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0]
        (folder / (re.sub(r"\W+", "_", test) + ".txt")).write_text("\n".join(trace))
    shown = [marker for marker in TRACEBACK_MARKERS if marker in body]
    assert not shown, f"the page shows a Python error: {shown}"
    real_errors = [e for e in errors if not ("favicon" in e and e.startswith("Failed to load"))]
    assert not real_errors, f"console errors in the page: {real_errors}"


def record_trace(page) -> list[str]:
    """For debugging flaky pages (``AE_BROWSER_TRACE=folder``): a timed line per kernel message and console line.

    Each test's page gets a file in the folder: when the page asked for the widgets' states, when and how big
    the answer was, what the page sent back, and every console message.
    """
    start = time.monotonic()
    lines: list[str] = []

    def log(text: str) -> None:
        lines.append(f"{time.monotonic() - start:7.2f} {text}")

    def frame(direction: str, payload) -> None:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        found = [re.search(rf'"{key}": ?"([\w.]+)"', text) for key in ("msg_type", "method", "execution_state")]
        said = re.search(r'"text": ?"(.{0,200})', text)  # what a stream message printed
        log(f"{direction} {len(text):8d} " + " ".join(m.group(1) for m in found if m) + (f" {said.group(1)}" if said else ""))

    def on_websocket(socket) -> None:
        log(f"websocket {socket.url}")
        socket.on("framesent", lambda payload: frame("->", payload))
        socket.on("framereceived", lambda payload: frame("<-", payload))

    page.on("websocket", on_websocket)
    page.on("console", lambda message: log(f"console {message.type} {message.text[:300]}"))
    return lines
