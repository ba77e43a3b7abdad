"""Where the seconds to the first plot go: one served dashboard, ``--visits`` single visits with a warm kernel.

Each visit is timed from asking for the page (as bench/first_visit.py does for ``first_plot_s``), with marks the
page sets itself: the HTML parsed (``dom_ready_s``), plotly.js run (``plotly_ready_s``), the kernel's websocket
created and open (Voila creates it once its JupyterLab extensions have loaded), the tab bar drawn (the widget
states have arrived and the views exist), the first figure and the weights figure drawn. Also the page's main
thread time (Chrome's ``ScriptDuration`` and ``TaskDuration``) and the JavaScript it fetched. Prints the median
of each as ``name: value`` lines, with ``machine_reference_s`` (bench/classroom.py's) to compare runs.

    .venv/bin/python bench/first_paint.py --visits 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.classroom import classroom_server, machine_reference_s  # noqa: E402
from bench.first_visit import FIRST_PLOT, wait_until_pool_full  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.browser.helpers import FIND_PLOT  # noqa: E402

MARKS = """(() => {
  const marks = window.__aeMarks = {};
  const mark = (name) => { if (!(name in marks)) marks[name] = performance.now(); };
  const look = () => {
    if (window.Plotly) mark('plotly_ready');
    if (document.querySelector('.ae-app .lm-TabBar-tab')) mark('tab_bar');
    if (document.querySelector('.ae-app .js-plotly-plot')) mark('any_figure');
  };
  document.addEventListener('DOMContentLoaded', () => {
    mark('dom_ready');
    new MutationObserver(look).observe(document.body, { childList: true, subtree: true });
  });
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); mark('socket_created'); this.addEventListener('open', () => mark('socket_open')); }
  };
})()"""
PHASES = ("dom_ready", "plotly_ready", "socket_created", "socket_open", "tab_bar", "any_figure")


async def visit(context, url: str) -> dict[str, float]:
    page = await context.new_page()
    await page.add_init_script(MARKS)
    session = await context.new_cdp_session(page)
    await session.send("Performance.enable")
    start = time.perf_counter()
    await page.goto(url, wait_until="domcontentloaded", timeout=180_000)
    await page.wait_for_function(f"(name) => {{ const p = ({FIND_PLOT})(name); return !!p && p.data.length > 0; }}",
                                 arg=FIRST_PLOT, polling=25, timeout=180_000)
    seconds = time.perf_counter() - start
    marks = await page.evaluate("() => window.__aeMarks")
    scripts = await page.evaluate("""() => performance.getEntriesByType('resource')
        .filter(r => r.name.split('?')[0].endsWith('.js')).reduce((sum, r) => sum + r.decodedBodySize, 0)""")
    metrics = {m["name"]: m["value"] for m in (await session.send("Performance.getMetrics"))["metrics"]}
    await page.close()
    result = {f"{name}_s": marks[name] / 1000 for name in PHASES if name in marks}
    result.update(first_plot_s=seconds, script_s=metrics.get("ScriptDuration", 0.0),
                  main_thread_s=metrics.get("TaskDuration", 0.0), javascript_mb=scripts / 1e6)
    return result


async def visits(url: str, voila: int, count: int) -> list[dict[str, float]]:
    from playwright.async_api import async_playwright

    port, results = urlparse(url).port, []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            for _ in range(count):
                context = await browser.new_context(viewport={"width": 1400, "height": 900})
                await wait_until_pool_full(voila, port)
                results.append(await visit(context, url))
                await context.close()
        finally:
            await browser.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=3, help="single visits (1..10)")
    args = parser.parse_args(argv)
    if not 1 <= args.visits <= 10:
        parser.error("--visits must be between 1 and 10")
    if chromium_path() is None:
        parser.error("no Chromium found; set CHROMIUM_PATH")
    print(f"machine_reference_s: {machine_reference_s():.3f}", flush=True)
    with classroom_server(1) as (url, voila, _):
        results = asyncio.run(asyncio.wait_for(visits(url, voila, args.visits), 900))
    for name in [f"{phase}_s" for phase in PHASES] + ["first_plot_s", "script_s", "main_thread_s", "javascript_mb"]:
        values = [r[name] for r in results if name in r]
        if values:
            print(f"{name}: {statistics.median(values):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
