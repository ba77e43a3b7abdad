"""Browser tests: serve the dashboard with Voila on a free port and drive it in headless Chromium.

Chromium is Debian's (``CHROMIUM_PATH`` or the ``chromium`` on PATH), driven by Playwright's Python package.
Without a browser these tests skip, unless ``REQUIRE_BROWSER=1`` (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "explorer.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# anywidget logs this when a widget takes over 2 s to start (a busy machine compiling plotly's 5 MB bundle);
# the widget still starts. It fails a test only if some figure then never draws.
SLOW_WIDGET = "[anywidget] Failed to initialize model."
UNDRAWN_FIGURES = "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => !p.querySelector('.main-svg')).length"
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
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        if os.environ.get("SHOW_VOILA_LOG"):
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
    yield page
    body = page.inner_text("body") if not page.is_closed() else ""
    errors = list(errors)  # what the test saw; loads cut short by closing the page below do not count
    slow_start = SLOW_WIDGET in errors
    undrawn = page.evaluate(UNDRAWN_FIGURES) if slow_start and not page.is_closed() else 0
    context.close()
    shown = [marker for marker in TRACEBACK_MARKERS if marker in body]
    assert not shown, f"the page shows a Python error: {shown}"
    assert not undrawn, f"{undrawn} figure(s) never drew after '{SLOW_WIDGET}'"
    real_errors = [e for e in errors if e != SLOW_WIDGET and not ("favicon" in e and e.startswith("Failed to load"))]
    assert not real_errors, f"console errors in the page: {real_errors}"
