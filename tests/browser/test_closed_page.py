"""A closed page leaves no work running: on ``attention-explorer serve --students 2``, a page starts a long
training and goes away; its kernel's CPU falls to idle within a minute, and the kernel is left for the culler.

One page is closed as a visitor closes a tab (the page says bye); the other's browser is killed, as a laptop that
is shut or loses the network, and only the server notices that its connection is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

from bench.classroom import classroom_server
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path, free_port
from tests.browser.helpers import open_dashboard, select_tab, wait_for_figure

IDLE_PERCENT = 10.0  # of one core, over a few seconds: a kernel that only answers the server's heartbeats
WITHIN_SECONDS = 60.0


@pytest.fixture(scope="module")
def classroom():
    if chromium_path() is None:
        pytest.skip("no Chromium found; set CHROMIUM_PATH to run the closed-page test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AE_FAST", "1")
        patch.setenv("AE_MAX_TRAIN_STEPS", "10000000")  # the teacher lifted the class's cap: nothing ends the run
        with classroom_server(2, timeout=300) as (url, voila_pid, log):
            yield url, voila_pid, log


def cpu_percent(process: psutil.Process, seconds: float) -> float:
    """The share of one core ``process`` (all its threads) uses over the next ``seconds``."""
    before = sum(process.cpu_times()[:2])
    time.sleep(seconds)
    return 100.0 * (sum(process.cpu_times()[:2]) - before) / seconds


def page_kernel(page, voila_pid: int) -> psutil.Process:
    """The kernel of ``page``: the page knows its kernel's id, and Voila starts each kernel with its id."""
    kernel_id = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
    return next(p for p in psutil.Process(voila_pid).children(recursive=True)
                if any(part.endswith(f"kernel-{kernel_id}.json") for part in p.cmdline()))


def start_long_training(page, classroom) -> psutil.Process:
    """Open the dashboard, start 10 million steps in the Transformer tab; returns the kernel that trains."""
    url, voila_pid, _ = classroom
    page.set_default_timeout(120_000)
    open_dashboard(page, url)
    select_tab(page, "Train a Transformer")
    wait_for_figure(page, "ae-tl-heads-0", timeout=120_000)
    steps = page.locator(".ae-tl-steps input")
    steps.fill("10000000")
    steps.press("Enter")
    page.locator(".ae-tl-train").click()
    page.wait_for_function("() => /step [1-9]/.test(document.querySelector('.ae-tl-step').innerText)")
    kernel = page_kernel(page, voila_pid)
    training = cpu_percent(kernel, 5.0)
    assert training > IDLE_PERCENT, f"the training kernel used only {training:.0f}% of a core"
    return kernel


def assert_falls_idle(kernel: psutil.Process, gone: float) -> None:
    used = 100.0
    while time.monotonic() - gone < WITHIN_SECONDS and used > IDLE_PERCENT:
        used = cpu_percent(kernel, 3.0)
    assert used <= IDLE_PERCENT, f"{time.monotonic() - gone:.0f} s after the page went its kernel used {used:.0f}%"
    assert kernel.is_running()  # idle and left for the server's culler; nothing killed it


def test_closing_the_tab_during_training_leaves_its_kernel_idle(browser, classroom):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    kernel = start_long_training(context.new_page(), classroom)
    context.close()
    assert_falls_idle(kernel, time.monotonic())


def test_a_killed_browser_during_training_leaves_its_kernel_idle(browser, classroom, tmp_path):
    port = free_port()
    chromium = subprocess.Popen([chromium_path(), "--headless=new", f"--remote-debugging-port={port}",
                                 f"--user-data-dir={tmp_path / 'chromium'}", *CHROMIUM_ARGS,
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                remote = browser.browser_type.connect_over_cdp(f"http://127.0.0.1:{port}")
                break
            except Exception:  # noqa: BLE001 - Chromium is still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        kernel = start_long_training(remote.contexts[0].new_page(), classroom)
    finally:
        os.killpg(chromium.pid, signal.SIGKILL)  # no pagehide, no bye: the page just stops
        chromium.wait()
    assert_falls_idle(kernel, time.monotonic())
