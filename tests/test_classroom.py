"""A small class on loopback: ``attention-explorer serve --students 3`` says when it is ready; three visitors at
once each get their own kernel, and those who stay see their own updates while one closes the page mid-update;
the server shows no sources, serves no files and refuses messages above its upload cap."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import urllib.error
import urllib.request

import pytest
from traitlets import Dict
from traitlets.config import Application

from bench.classroom import classroom_server, kernel_memory_mb, make_updates, open_visit, visit_word
from explorer.cli import WEBSOCKET_MAX_BYTES, kernel_threads, voila_command
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path

STUDENTS = 3
DASHBOARD_SOURCE = ("build_app(", "apply_link(", "from explorer")


@pytest.fixture(scope="module")
def classroom():
    if chromium_path() is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but no Chromium was found (set CHROMIUM_PATH or install chromium).")
        pytest.skip("no Chromium found; set CHROMIUM_PATH to run the classroom test")
    with classroom_server(STUDENTS, timeout=300) as server:
        yield server


def run_in_own_loop(coroutine):
    """``asyncio.run`` in a thread of its own: after the browser tests, Playwright keeps a loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def fetch(url: str) -> tuple[int, str]:
    """Status and body of a GET, following redirects."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


@pytest.mark.browser
def test_three_visitors_at_once_each_get_their_own_kernel_and_their_own_update(classroom):
    url, voila, log = classroom
    assert any(line.startswith(f"Ready for {STUDENTS} student(s)") for line in log)
    visits, left = run_in_own_loop(class_where_one_leaves(url))
    running = kernel_memory_mb(voila)
    assert len({visit.kernel_id for visit in visits + [left]}) == STUDENTS
    words = {visit.number: visit_word(visit.number, 0, 1) for visit in visits + [left]}
    for visit in visits:
        assert visit.kernel_id in running, "each visitor's kernel is one of the server's kernel processes"
        assert len(visit.updates_s) == 3
        others = set(words.values()) - {words[visit.number]}
        assert visit.tokens[0] == "[CLS]" and words[visit.number] in visit.tokens
        assert not others & set(visit.tokens), "a visitor must never see another visitor's text"


async def class_where_one_leaves(url: str):
    """All visitors open the Pretrained tab; then the last one closes the page while its new sentence is on the
    way, and the others make their updates at the same moment."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            opened = await asyncio.gather(*(open_visit(browser, url, n) for n in range(STUDENTS)))
            (leaver_page, leaver), staying = opened[-1], opened[:-1]

            async def leave():
                await leaver_page.locator(".ae-pretrained-text-a textarea").fill("A sentence nobody waits for.")
                await leaver_page.locator(".ae-pretrained-text-a textarea").press("Tab")
                await leaver_page.context.close()

            await asyncio.gather(leave(), *(make_updates(page, visit, 1, 0.0) for page, visit in staying))
        finally:
            await browser.close()
    return [visit for _, visit in staying], leaver


@pytest.mark.browser
def test_no_file_browser_and_no_notebook_source(classroom):
    url, _, _ = classroom
    for path in ("tree", "voila/tree", "voila/render/dashboards/explorer.ipynb", "voila/api/contents/",
                 "voila/files/dashboards/explorer.ipynb", "voila/files/explorer/cli.py", "voila/files/README.md"):
        status, body = fetch(url + path)
        assert status in (403, 404), f"/{path} answered {status}"
        assert "explorer.ipynb" not in body
    status, page = fetch(url)
    assert status == 200 and '"kernelId"' in page
    assert not [source for source in DASHBOARD_SOURCE if source in page]


@pytest.mark.browser
def test_messages_above_the_upload_cap_are_refused_and_those_below_answered(classroom):
    url, _, _ = classroom
    _, page = fetch(url)
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]+)"', page).group(1)
    channel = url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
    assert run_in_own_loop(kernel_info(channel, padding=WEBSOCKET_MAX_BYTES - 10_000)) == "kernel_info_reply"
    assert run_in_own_loop(kernel_info(channel, padding=WEBSOCKET_MAX_BYTES + 1)) is None


async def kernel_info(channel: str, padding: int) -> str | None:
    """Send a kernel_info request carrying ``padding`` bytes of metadata; the reply's type, or None if refused."""
    from tornado.websocket import WebSocketClosedError, websocket_connect

    connection = await websocket_connect(channel, max_message_size=64 * 2**20)
    request = {"header": {"msg_id": f"info-{padding}", "msg_type": "kernel_info_request", "session": "test",
                          "username": "", "version": "5.3", "date": ""},
               "parent_header": {}, "metadata": {"padding": "x" * padding}, "content": {}, "channel": "shell",
               "buffers": []}
    try:
        await connection.write_message(json.dumps(request))
        while (message := await asyncio.wait_for(connection.read_message(), 120)) is not None:
            reply = json.loads(message) if isinstance(message, str) else {}
            if reply.get("channel") == "shell" and reply["parent_header"].get("msg_id") == f"info-{padding}":
                connection.close()
                return reply["header"]["msg_type"]
    except WebSocketClosedError:
        pass  # the server hung up before the whole message was sent
    return None


def test_serve_command_caps_messages_serves_no_files_and_shares_the_cores():
    from pathlib import Path

    command = voila_command(Path("dash.ipynb"), 9000, open_browser=False, students=10)
    setting = next(arg for arg in command if arg.startswith("--Voila.tornado_settings="))

    class Voila(Application):
        tornado_settings = Dict(config=True)

    app = Voila()
    app.parse_command_line([setting])
    assert app.config.Voila.tornado_settings == {"websocket_max_message_size": WEBSOCKET_MAX_BYTES}
    assert "--VoilaConfiguration.file_denylist=.*" in command
    assert "--strip_sources=True" in command
    from explorer.data.images import MAX_UPLOAD_BYTES
    from explorer.data.sequences import MAX_TEXT_BYTES

    assert WEBSOCKET_MAX_BYTES >= 2 * max(MAX_UPLOAD_BYTES, MAX_TEXT_BYTES)
    assert kernel_threads(10 * (os.cpu_count() or 1)) == 1 and kernel_threads(1) == (os.cpu_count() or 1)


def test_server_extension_config_for_jupyterhub_and_binder_matches_the_serve_command():
    from pathlib import Path

    from traitlets.config.loader import PyFileConfigLoader

    from explorer.cli import IDLE_CULL_SECONDS

    root = Path(__file__).resolve().parents[1]
    config = PyFileConfigLoader("jupyter_server_config.py", path=str(root / "docs")).load_config()
    command = voila_command(Path("dash.ipynb"), 9000, open_browser=False)
    assert config.ServerApp.tornado_settings == {"websocket_max_message_size": WEBSOCKET_MAX_BYTES,
                                                 "compress_response": True,  # as explorer/voila_app.py does
                                                 "mathjax_url": None, "mathjax_config": None}  # as standalone Voila
    assert config.ServerApp.terminals_enabled is False
    assert config.VoilaConfiguration.strip_sources is True and "--strip_sources=True" in command
    assert config.VoilaConfiguration.file_denylist == [".*"]
    assert config.VoilaConfiguration.template == "explorer" and "--template=explorer" in command
    assert config.MappingKernelManager.cull_idle_timeout == IDLE_CULL_SECONDS
    assert config.ServerApp.default_url.endswith("dashboards/explorer.ipynb")
    assert (root / config.ServerApp.default_url.removeprefix("/voila/render/")).exists()
    for script in ("postBuild", "start"):
        assert os.access(root / script, os.X_OK), f"repo2docker runs {script} only if it is executable"


def test_the_dashboard_page_leaves_out_jupyterlab_plotly_in_serve_and_in_the_server_extension():
    from pathlib import Path

    from traitlets.config import Application
    from traitlets.config.loader import PyFileConfigLoader
    from voila.configuration import VoilaConfiguration

    from explorer.cli import PAGE_EXTENSIONS_LEFT_OUT

    class Voila(Application):
        classes = [VoilaConfiguration]

    app = Voila()
    app.parse_command_line([a for a in voila_command(Path("dash.ipynb"), 9000, open_browser=False)
                            if a.startswith("--VoilaConfiguration.extension_")])
    assert VoilaConfiguration(config=app.config).extension_denylist == ["jupyterlab-plotly"]
    assert PAGE_EXTENSIONS_LEFT_OUT == ("jupyterlab-plotly",)
    root = Path(__file__).resolve().parents[1]
    config = PyFileConfigLoader("jupyter_server_config.py", path=str(root / "docs")).load_config()
    assert config.VoilaConfiguration.extension_denylist == list(PAGE_EXTENSIONS_LEFT_OUT)
