"""A warm kernel that waited for its visitor longer than Voila's execution timeout still serves a clean page:
the waiting is not a cell that runs (``--VoilaExecutor.timeout`` is set to 5 s here, the wait is longer)."""

from __future__ import annotations

import os
import subprocess
import time

from explorer.cli import voila_command, voila_env, wait_until_warm
from tests.browser.conftest import DASHBOARD, ROOT, free_port
from tests.browser.helpers import open_dashboard, wait_for_figure

TIMEOUT = 5


def test_a_warm_kernel_that_waited_past_the_timeout_serves_a_page_without_error(page, tmp_path):
    port = free_port()
    command = [part if not part.startswith("--VoilaExecutor.timeout=") else f"--VoilaExecutor.timeout={TIMEOUT}"
               for part in voila_command(DASHBOARD, port, open_browser=False, students=1, ip="127.0.0.1")]
    assert f"--VoilaExecutor.timeout={TIMEOUT}" in command
    with open(tmp_path / "voila.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=voila_env(dict(os.environ, AE_FAST="1")), stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        assert wait_until_warm(process, port, 1, timeout=180.0)
        time.sleep(3 * TIMEOUT)  # the warm kernel waits for its visitor three times the timeout
        open_dashboard(page, f"http://127.0.0.1:{port}/")
        wait_for_figure(page, "ae-weights")
        page.wait_for_timeout(2000)
        body = page.inner_text("body")
        assert "timed out" not in body.lower() and "Cell execution" not in body, body[:500]
    finally:
        page.context.close()  # before the server stops, so the page logs no lost connection
        process.terminate()
        process.wait(timeout=15)
