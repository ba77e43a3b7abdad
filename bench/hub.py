"""A class through JupyterHub on loopback: N students log in together and each lands on their own dashboard.

Starts JupyterHub with ``docs/jupyterhub_config.py`` on free loopback ports (the proxy from ``npm ci``), logs N
students in from one headless Chromium (a browser context each: own cookies), and times each from pressing
"Sign in" until the dashboard's first figure is drawn (spawning their server and its kernel included). Then
it measures memory: the hub, its proxy and culler, each student's Jupyter server and its kernel, against a
plain ``attention-explorer serve`` kernel that has drawn the same page. Prints ``name: value`` lines.
Bounded: at most 30 students, loopback only, and it stops the hub and all it started when done.

    .venv/bin/python bench/hub.py --students 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM_ARGS, chromium_path, free_port  # noqa: E402
from tests.browser.helpers import WIDGETS_READY  # noqa: E402

CONFIG = ROOT / "docs" / "jupyterhub_config.py"
PASSWORD = "attention-class"  # the class password of these runs (loopback only)
PROXY = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
MAX_STUDENTS = 30
POLL_MS = 50
# The dashboard has painted: its tab bar and the first tab's first figure.
DASHBOARD_DRAWN = (f"() => !!document.querySelector('{WIDGETS_READY.split(',')[0]}')"
                   " && !!document.querySelector('.js-plotly-plot')")
KERNEL_ID = "() => JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"


@dataclass
class Hub:
    url: str  # the proxy's public address, ending in "/"
    process: subprocess.Popen
    state: Path  # database, cookie secret, the students' homes
    log: Path
    restart: Callable[[], None]  # stop the hub (SIGTERM) and start it again on the same state


# ----- the hub ----------------------------------------------------------------------------------------------
def proxy_missing() -> str:
    """Why the hub cannot start here ("" if it can): the proxy is installed by `npm ci`."""
    if PROXY.exists() or shutil.which("configurable-http-proxy"):
        return ""
    return "configurable-http-proxy is not installed: run `npm ci` in the repository (make hub does)"


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextmanager
def hub_server(idle_seconds: int | None = None, timeout: float = 120.0, extra_env: dict | None = None):
    """JupyterHub with the class configuration on free loopback ports; yields a ``Hub`` once it answers.

    On leaving, the hub is stopped (it stops its proxy and the culler), then anything it started that is still
    alive (the students' servers) is killed, and its state folder is removed."""
    import psutil

    state = Path(tempfile.mkdtemp(prefix="ae-hub-"))
    port, hub_port, api_port = distinct_free_ports(3)
    command = [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG), "--ip=127.0.0.1", f"--port={port}",
               "--JupyterHub.hub_ip=127.0.0.1", f"--JupyterHub.hub_port={hub_port}",
               f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api_port}"]
    env = dict(os.environ, AE_CLASS_PASSWORD=PASSWORD, AE_HUB_STATE=str(state), **(extra_env or {}))
    if idle_seconds is not None:
        env["AE_HUB_IDLE_SECONDS"] = str(idle_seconds)
    log = state / "hub.log"

    def launch() -> subprocess.Popen:
        with open(log, "a") as out:
            return subprocess.Popen(command, cwd=state, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    started: dict[int, psutil.Process] = {}

    def stop() -> None:
        started.update(descendants(hub.process.pid))
        hub.process.send_signal(signal.SIGTERM)  # the hub stops its proxy and services, not the servers
        try:
            hub.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            hub.process.kill()

    def restart() -> None:
        stop()
        hub.process = launch()
        wait_until_up(hub, timeout)

    hub = Hub(f"http://127.0.0.1:{port}/", launch(), state, log, restart)
    try:
        wait_until_up(hub, timeout)
        yield hub
    finally:
        # Nothing of the class outlives the block, so the hub is not asked to stop in order (its SIGTERM shutdown
        # waited 20-40 s on its proxy and services); it and everything it started are killed.
        started.update(descendants(hub.process.pid))
        hub.process.kill()
        hub.process.wait()
        for child in started.values():  # the students' servers (the config keeps them over a restart) and all
            try:
                child.kill()
            except psutil.Error:
                pass
        if os.environ.get("SHOW_HUB_LOG"):
            sys.stderr.write(log.read_text())
        shutil.rmtree(state, ignore_errors=True)


def descendants(pid: int) -> dict:
    import psutil

    try:
        return {p.pid: p for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def wait_until_up(hub: Hub, timeout: float) -> None:
    """Wait until the hub answers through its proxy (``/hub/api`` gives its version)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"JupyterHub exited with code {hub.process.returncode}:\n{log_tail(hub)}")
        try:
            with urllib.request.urlopen(hub.url + "hub/api", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterHub did not answer within {timeout:.0f} s:\n{log_tail(hub)}")


def log_tail(hub: Hub, lines: int = 30) -> str:
    return "\n".join(hub.log.read_text(errors="replace").splitlines()[-lines:])


# ----- a student ------------------------------------------------------------------------------------------------
async def log_in(context, url: str, name: str, password: str = PASSWORD):
    """Open the hub's login page in ``context`` and sign in; returns (the page, on its way to the student's
    server, and the ``time.perf_counter()`` of pressing "Sign in")."""
    page = await context.new_page()
    await page.goto(url + "hub/login", wait_until="domcontentloaded", timeout=60_000)
    await page.fill("#username_input", name)
    await page.fill("#password_input", password)
    pressed = time.perf_counter()
    await page.click("#login_submit")
    return page, pressed


async def wait_for_dashboard(page, timeout_s: float = 240.0) -> str:
    """Wait (through the spawn page) until the dashboard has drawn its first figure; returns its kernel id.

    A spawn that failed (the hub's progress page says so) raises at once, with the hub's words."""
    await page.wait_for_function(f"() => ({DASHBOARD_DRAWN})() || !!(document.body && document.body.innerText.includes('Spawn failed'))",
                                 polling=POLL_MS, timeout=timeout_s * 1000)
    if not await page.evaluate(DASHBOARD_DRAWN):
        raise RuntimeError("the hub could not start the student's server: "
                           + (await page.inner_text("body"))[:500].replace("\n", " "))
    return await page.evaluate(KERNEL_ID)


async def first_dashboard(browser, url: str, name: str) -> tuple:
    """One student: a browser context of their own, signed in, timed until the dashboard is drawn.

    Returns (page, seconds from "Sign in" to the first figure, kernel id)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page, pressed = await log_in(context, url, name)
    kernel_id = await wait_for_dashboard(page)
    return page, time.perf_counter() - pressed, kernel_id


# ----- memory ------------------------------------------------------------------------------------------------------
def memory_mb(process) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB; PSS splits shared pages among the processes that share them."""
    info = process.memory_full_info()
    return info.rss / 1e6, info.pss / 1e6


def hub_processes(hub: Hub) -> dict[str, list]:
    """The hub's processes by role: hub, proxy, culler, servers (one per student) and kernels."""
    import psutil

    roles: dict[str, list] = {"hub": [psutil.Process(hub.process.pid)], "proxy": [], "culler": [],
                              "servers": [], "kernels": []}
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "configurable-http-proxy" in line:
            roles["proxy"].append(child)
        elif "jupyterhub_idle_culler" in line:
            roles["culler"].append(child)
        elif "jupyterhub.singleuser" in line:
            roles["servers"].append(child)
        elif "ipykernel" in line:
            roles["kernels"].append(child)
    return roles


def serve_reference(browser_path: str) -> dict[str, float]:
    """A plain ``attention-explorer serve`` visit: its kernel's and its Voila server's memory once drawn."""
    import psutil

    from bench.classroom import classroom_server, kernel_memory_mb

    async def visit(url: str) -> str:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=browser_path, headless=True, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
                start = time.perf_counter()
                await page.goto(url, wait_until="domcontentloaded", timeout=180_000)
                kernel_id = await wait_for_dashboard(page)
                seconds = time.perf_counter() - start
                await asyncio.sleep(2)  # let the kernel settle as the hub's kernels did
                return kernel_id, seconds
            finally:
                await browser.close()

    with classroom_server(1, timeout=300) as (url, voila, _):
        kernel_id, seconds = asyncio.run(visit(url))
        kernel = kernel_memory_mb(voila)[kernel_id]
        server_rss, server_pss = memory_mb(psutil.Process(voila))
    return dict(serve_kernel_rss_mb=kernel.rss, serve_kernel_pss_mb=kernel.pss,
                serve_voila_server_rss_mb=server_rss, serve_voila_server_pss_mb=server_pss,
                serve_first_dashboard_s=seconds)


# ----- the class -----------------------------------------------------------------------------------------------------
async def run_class(hub: Hub, students: int) -> tuple[list[tuple[str, float, str]], dict]:
    """All students sign in together; returns (name, seconds to the first dashboard, kernel id) for each, and
    the memory of the hub's processes by role, read while the students' pages are still open."""
    from playwright.async_api import async_playwright

    names = [f"student {n + 1}" for n in range(students)]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            visits = await asyncio.gather(*(first_dashboard(browser, hub.url, name) for name in names))
            await asyncio.sleep(2)  # let the kernels settle after drawing
            memory = {role: [memory_mb(p) for p in processes] for role, processes in hub_processes(hub).items()}
        finally:
            await browser.close()
    return [(name, seconds, kernel_id) for name, (_, seconds, kernel_id) in zip(names, visits)], memory


def report(results: list, measured: dict[str, list], reference: dict[str, float]) -> None:
    students = len(results)
    lines: dict[str, float | int] = {"students": students}
    for name, seconds, _ in results:
        lines[f"first_dashboard_s[{name}]"] = seconds
    times = [seconds for _, seconds, _ in results]
    lines.update(first_dashboard_p50_s=statistics.median(times), first_dashboard_max_s=max(times))
    for role in ("hub", "proxy", "culler"):
        lines[f"{role}_rss_mb"] = sum(rss for rss, _ in measured[role])
        lines[f"{role}_pss_mb"] = sum(pss for _, pss in measured[role])
    for role, label in (("servers", "student_server"), ("kernels", "student_kernel")):
        lines[f"{label}_rss_mean_mb"] = statistics.mean(rss for rss, _ in measured[role])
        lines[f"{label}_pss_mean_mb"] = statistics.mean(pss for _, pss in measured[role])
    lines.update(reference)
    shared_pss = lines["hub_pss_mb"] + lines["proxy_pss_mb"] + lines["culler_pss_mb"]
    overhead = shared_pss / students + lines["student_server_pss_mean_mb"]
    lines["hub_overhead_per_student_pss_mb"] = overhead  # what the hub adds to a student's kernel
    lines["hub_overhead_vs_serve_kernel"] = overhead / lines["serve_kernel_pss_mb"]
    lines["student_total_pss_mb"] = overhead + lines["student_kernel_pss_mean_mb"]
    lines["servers_running"] = len(measured["servers"])
    lines["kernels_running"] = len(measured["kernels"])
    for name, value in lines.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=3, help=f"students signing in together (1..{MAX_STUDENTS})")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain serve run")
    parser.add_argument("--time-limit", type=float, default=900.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.students <= MAX_STUDENTS:
        parser.error(f"--students must be between 1 and {MAX_STUDENTS}")
    if chromium_path() is None:
        parser.error("no Chromium found; set CHROMIUM_PATH")
    if proxy_missing():
        parser.error(proxy_missing())
    reference = serve_reference(chromium_path()) if not args.no_reference else {"serve_kernel_pss_mb": float("nan")}
    start = time.perf_counter()
    with hub_server(extra_env={"AE_CLASS_SIZE": str(args.students)}) as hub:
        print(f"hub_ready_s: {time.perf_counter() - start:.3f}", flush=True)
        results, memory = asyncio.run(asyncio.wait_for(run_class(hub, args.students), args.time_limit))
    report(results, memory, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
