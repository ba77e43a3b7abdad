"""Single visits to a served dashboard, each with a warm kernel: the time to the first plot and the bytes the
page transfers on a first visit and on a repeat visit (the browser's cache warm). Used by bench/classroom.py.

A visit is timed from asking for the page until the Mechanism tab's weights figure (the first tab) is drawn.
Before each visit the server's warm pool is full again, so every visit gets a kernel that has already run
the dashboard, as a student arriving at a prepared class does. Bytes are what came over HTTP (Chrome's
``encodedDataLength`` summed over the page's requests: compressed bodies and headers; the websocket's widget
messages are not counted).
"""

from __future__ import annotations

import statistics
import time
from urllib.parse import urlparse

from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.browser.helpers import FIND_PLOT

FIRST_PLOT = "ae-weights"  # the Mechanism tab's weights: the first figure a visitor sees
WARM_TIMEOUT_S = 180.0


async def wait_until_pool_full(voila: int, port: int, kernels: int = 1, timeout: float = WARM_TIMEOUT_S) -> None:
    import asyncio

    from explorer.cli import warm_kernels

    deadline = time.monotonic() + timeout
    while warm_kernels(voila, port) < kernels:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server's warm pool was not full again within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def timed_visit(context, url: str) -> tuple[float, int]:
    """Open the dashboard in ``context``; (seconds until the first plot is drawn, bytes transferred over HTTP)."""
    page = await context.new_page()
    session = await context.new_cdp_session(page)
    received: list[float] = []
    session.on("Network.loadingFinished", lambda event: received.append(event.get("encodedDataLength", 0)))
    await session.send("Network.enable")
    start = time.perf_counter()
    await page.goto(url, wait_until="domcontentloaded", timeout=180_000)
    await page.wait_for_function(f"(name) => {{ const p = ({FIND_PLOT})(name); return !!p && p.data.length > 0; }}",
                                 arg=FIRST_PLOT, polling=25, timeout=180_000)
    seconds = time.perf_counter() - start
    await page.wait_for_load_state("networkidle", timeout=60_000)  # count the requests that follow the plot too
    await page.close()
    return seconds, int(sum(received))


async def single_visits(url: str, voila: int, visits: int = 5) -> dict[str, float]:
    """``visits`` first visits (a fresh browser context each) and one repeat visit in the last one's context."""
    from playwright.async_api import async_playwright

    port = urlparse(url).port
    firsts: list[tuple[float, int]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            for number in range(visits):
                context = await browser.new_context(viewport={"width": 1400, "height": 900})
                await wait_until_pool_full(voila, port)
                firsts.append(await timed_visit(context, url))
                if number == visits - 1:  # the same browser comes back: its cache holds the static files
                    await wait_until_pool_full(voila, port)
                    repeat = await timed_visit(context, url)
                await context.close()
        finally:
            await browser.close()
    return {
        "first_plot_s": statistics.median(seconds for seconds, _ in firsts),
        "first_plot_min_s": min(seconds for seconds, _ in firsts),
        "first_plot_max_s": max(seconds for seconds, _ in firsts),
        "first_plot_repeat_s": repeat[0],
        "page_bytes_first": statistics.median(size for _, size in firsts),
        "page_bytes_repeat": repeat[1],
    }
