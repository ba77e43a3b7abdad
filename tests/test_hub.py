"""JupyterHub for a class, started for real on loopback with docs/jupyterhub_config.py.

Three students sign in with the class password (one name with a space and Unicode letters), each lands on
the dashboard in a server of their own, each page has its own kernel in its owner's server, and a sentence
typed by one student is seen by that student only. A student cannot open another's server or its API. A
wrong password gets a clear login error and no server; the same name signing in from a second browser
reaches the same server, with a kernel of its own. With every request outside the machine blocked (a class
offline), the Mechanism tab's equations are typeset, not raw LaTeX. The hub restarted under the class keeps every server:
an open page reconnects to its kernel, a new visit reaches the same server. A second hub with a short idle timeout culls an idle
student's server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.cookiejar
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bench.hub import CONFIG, KERNEL_ID, PASSWORD, hub_processes, hub_server, log_in, proxy_missing, wait_for_dashboard
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.browser.helpers import FIND_PLOT, WIDGETS_READY

# As typed at the login page; the hub lowercases names (so "ADA" is "ada").
STUDENTS = ("ada", "Zoë Ångström", "grace hopper")
WORDS = ("river", "garden", "castle")  # each student's own word, one token each
RESTART_WORD = "bridge"  # typed by the second student after the hub was restarted
HEAD = "ae-pretrained-head"
IDLE_SECONDS = 20


def needs_browser_and_proxy() -> None:
    missing = ("no Chromium found (set CHROMIUM_PATH)" if chromium_path() is None else proxy_missing())
    if missing:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def idle_hub():
    """A hub whose servers are culled after 20 idle seconds, with one student's server started and left alone
    (it idles while the class test runs, so the two take the time of one)."""
    needs_browser_and_proxy()
    with hub_server(idle_seconds=IDLE_SECONDS) as hub:
        sign_in_without_a_browser(hub.url, "idle student")
        yield hub


@pytest.fixture(scope="module")
def class_hub():
    needs_browser_and_proxy()
    with hub_server(extra_env={"AE_CLASS_SIZE": str(len(STUDENTS))}) as hub:
        yield hub


def sign_in_without_a_browser(url: str, name: str) -> None:
    """Post the login form (with its XSRF token) and follow the hub to the spawn page: the server starts."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(url + "hub/login", timeout=60) as response:
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', response.read().decode()).group(1)
    form = urllib.parse.urlencode({"username": name, "password": PASSWORD, "_xsrf": xsrf}).encode()
    with opener.open(url + "hub/login?next=", data=form, timeout=120) as response:
        assert "/hub/spawn" in response.url, response.url


def run_in_own_loop(coroutine):
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright keeps a loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def user_url(url: str, typed_name: str) -> str:
    return url + "user/" + urllib.parse.quote(typed_name.lower(), safe="") + "/"


async def own_sentence(page, word: str) -> list[str]:
    """Open the Pretrained tab, type a sentence with ``word`` and wait until the head map shows it; its tokens."""
    await page.locator(WIDGETS_READY).filter(has_text="Pretrained").first.click(timeout=120_000)
    await page.wait_for_function(f"(name) => {{ const p = ({FIND_PLOT})(name); return !!p && p.data.length > 0; }}",
                                 arg=HEAD, timeout=240_000)
    box = page.locator(".ae-pretrained-text-a textarea")
    await box.fill(f"The {word} was seen by the whole class.")
    await box.press("Tab")  # leaving the box sends the text
    await page.wait_for_function(f"([name, word]) => {{ const p = ({FIND_PLOT})(name);"
                                 " return !!p && p.data[0].x.includes(word); }", arg=[HEAD, word], timeout=180_000)
    return await page.evaluate(f"(name) => ({FIND_PLOT})(name).data[0].x", HEAD)


async def offline(context) -> None:
    """Let the browser reach only this machine, as in a classroom without internet."""
    async def route(request_route, request):
        host = urllib.parse.urlparse(request.url).hostname
        if request.url.startswith(("data:", "about:", "blob:")) or host in ("127.0.0.1", "localhost"):
            await request_route.continue_()
        else:
            await request_route.abort()

    await context.route("**/*", route)


async def equations_as_shown(page) -> str:
    """The Mechanism tab's steps (the dashboard's first tab) as the page shows them, once MathJax has had its
    chance to typeset them."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    await page.wait_for_selector(".ae-steps", timeout=120_000)
    try:
        await page.wait_for_selector(".ae-steps mjx-container", timeout=60_000)
    except PlaywrightTimeout:
        pass  # the text below says what the student sees instead
    return await page.inner_text(".ae-steps")


async def kernels_of(context, server: str) -> list[str] | None:
    """The kernel ids that ``server`` lists to this browser context (None if it refuses)."""
    response = await context.request.get(server + "api/kernels", max_redirects=0)
    if response.status != 200:
        return None
    return [kernel["id"] for kernel in await response.json()]


async def a_class(hub) -> dict:
    """The whole class in one browser; returns what each step saw, for the test to check."""
    from playwright.async_api import async_playwright

    url = hub.url
    seen: dict = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            new_context = lambda: browser.new_context(viewport={"width": 1400, "height": 900})  # noqa: E731

            # A wrong password: the login page again, with the hub's words, and no server.
            page, _ = await log_in(await new_context(), url, STUDENTS[0], "not-the-class-password")
            await page.wait_for_selector(".alert-danger, #login_error, .login_error", timeout=60_000)
            seen["wrong_password"] = (page.url, await page.inner_text("body"))
            seen["servers_after_wrong_password"] = len(hub_processes(hub)["servers"])
            await page.context.close()

            contexts = [await new_context() for _ in STUDENTS]
            for context in contexts:
                await offline(context)
            pages = [page for page, _ in await asyncio.gather(
                *(log_in(context, url, name) for context, name in zip(contexts, STUDENTS)))]
            seen["kernel_ids"] = await asyncio.gather(*(wait_for_dashboard(page) for page in pages))
            seen["urls"] = [page.url for page in pages]
            seen["equations"] = await asyncio.gather(*(equations_as_shown(page) for page in pages))
            seen["tokens"] = await asyncio.gather(*(own_sentence(page, word) for page, word in zip(pages, WORDS)))
            servers = [user_url(url, name) for name in STUDENTS]
            seen["kernels"] = [[await kernels_of(context, server) for server in servers] for context in contexts]

            # The first student tries the second's server: its dashboard, and its kernel API.
            intruder = await contexts[0].new_page()
            response = await intruder.goto(servers[1] + "voila/render/dashboards/explorer.ipynb",
                                           wait_until="domcontentloaded", timeout=60_000)
            seen["intrusion"] = (response.status, intruder.url, await intruder.content())
            api = await contexts[0].request.get(servers[1] + "api/kernels")
            seen["intrusion_api"] = (api.status, await api.text())

            # The same name from a second browser: the same server, a page and kernel of its own.
            again, _ = await log_in(await new_context(), url, STUDENTS[0].upper())
            seen["again_kernel"] = await wait_for_dashboard(again)
            seen["again_url"] = again.url
            seen["again_kernels"] = await kernels_of(again.context, servers[0])
            seen["first_tokens_after"] = await pages[0].evaluate(f"(name) => ({FIND_PLOT})(name).data[0].x", HEAD)

            # The page travels compressed through the proxy.
            bundle = await contexts[0].request.get(servers[0] + "voila/templates/explorer/static/plotly.min.js",
                                                   headers={"Accept-Encoding": "gzip"})
            seen["bundle"] = (bundle.status, bundle.headers.get("content-encoding"))

            # The teacher restarts the hub during the class: the servers keep running, and the open page of a
            # student reconnects to the same kernel; a new visit reaches the same server, still signed in.
            before = {p.pid: p for p in hub_processes(hub)["servers"]}
            await asyncio.to_thread(hub.restart)
            seen["servers_kept"] = [p.is_running() for p in before.values()]
            seen["servers_respawned"] = len(hub_processes(hub)["servers"])
            seen["tokens_after_restart"] = await own_sentence(pages[1], RESTART_WORD)
            seen["kernel_after_restart"] = await pages[1].evaluate(KERNEL_ID)
            revisit = await contexts[2].new_page()
            await revisit.goto(url + "hub/", wait_until="domcontentloaded", timeout=60_000)
            seen["revisit_kernel"] = await wait_for_dashboard(revisit)
            seen["revisit_url"] = revisit.url
            seen["revisit_kernels"] = await kernels_of(contexts[2], servers[2])
        finally:
            await browser.close()
    return seen


@pytest.mark.browser
def test_a_class_signs_in_and_each_student_reaches_only_their_own_server(class_hub, idle_hub):
    seen = run_in_own_loop(a_class(class_hub))

    page_url, body = seen["wrong_password"]
    assert "/hub/login" in page_url and "Invalid username or password" in body
    assert seen["servers_after_wrong_password"] == 0

    names = [name.lower() for name in STUDENTS]
    for name, landed in zip(names, seen["urls"]):
        assert urllib.parse.unquote(landed).split("?")[0].endswith(f"/user/{name}/voila/render/dashboards/explorer.ipynb")
    for shown in seen["equations"]:  # typeset by the MathJax served with the page, not asked of a CDN
        assert "Score" in shown and "$$" not in shown and "\\frac" not in shown, shown[:200]
    kernel_ids = seen["kernel_ids"]
    assert len(set(kernel_ids)) == len(STUDENTS)
    for i, listed in enumerate(seen["kernels"]):
        assert kernel_ids[i] in listed[i], "a student's kernel runs in their own server"
        assert all(other is None for j, other in enumerate(listed) if j != i), "another student's server answered"
    for i, tokens in enumerate(seen["tokens"]):
        assert WORDS[i] in tokens
        assert not set(WORDS[:i] + WORDS[i + 1:]) & set(tokens), "a student must never see another's sentence"

    status, landed, content = seen["intrusion"]
    assert status == 403 or "/hub/login" in landed, (status, landed)
    assert kernel_ids[1] not in content and '"kernelId"' not in content
    api_status, api_body = seen["intrusion_api"]
    assert api_status in (401, 403) and kernel_ids[1] not in api_body

    assert urllib.parse.unquote(seen["again_url"]).split("?")[0].endswith(f"/user/{names[0]}/voila/render/dashboards/explorer.ipynb")
    assert seen["again_kernel"] not in kernel_ids and {seen["again_kernel"], kernel_ids[0]} <= set(seen["again_kernels"])
    assert WORDS[0] in seen["first_tokens_after"], "the first page keeps its own kernel and sentence"

    assert seen["bundle"] == (200, "gzip")

    assert seen["servers_kept"] == [True] * len(STUDENTS), "a hub restart stopped a student's server"
    assert seen["servers_respawned"] == 0, "the restarted hub started new servers instead of reusing them"
    assert RESTART_WORD in seen["tokens_after_restart"] and WORDS[1] not in seen["tokens_after_restart"]
    assert seen["kernel_after_restart"] == kernel_ids[1], "the open page kept its kernel over the restart"
    assert urllib.parse.unquote(seen["revisit_url"]).split("?")[0].endswith(f"/user/{names[2]}/voila/render/dashboards/explorer.ipynb")
    assert {seen["revisit_kernel"], kernel_ids[2]} <= set(seen["revisit_kernels"]), "the same server, after the restart"
    homes = class_hub.state / "homes"
    assert sorted(p.name for p in homes.iterdir()) == sorted(names)
    for name in names:
        assert (homes / name / "dashboards" / "explorer.ipynb").exists()


@pytest.mark.browser
def test_an_idle_server_is_culled(idle_hub):
    deadline, servers = time.monotonic() + 150, None
    while time.monotonic() < deadline:
        servers = len(hub_processes(idle_hub)["servers"])
        log = idle_hub.log.read_text(errors="replace")
        if servers == 0 and "Culling server" in log:
            break
        time.sleep(1)
    assert "Culling server idle student" in log, "the culler never stopped the idle student's server"
    assert servers == 0, "the idle student's server is still running"


def load_hub_config(monkeypatch, tmp_path, **env):
    from traitlets.config.loader import PyFileConfigLoader

    for name in ("AE_CLASS_PASSWORD", "AE_HUB_IDLE_SECONDS", "AE_CLASS_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AE_HUB_STATE", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()


def test_the_hub_refuses_to_start_without_a_class_password(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="AE_CLASS_PASSWORD"):
        load_hub_config(monkeypatch, tmp_path, AE_CLASS_PASSWORD="short")


def test_the_hub_uses_the_serve_settings_and_the_helm_values_agree(monkeypatch, tmp_path):
    import yaml
    from traitlets.config.loader import PyFileConfigLoader

    from explorer.cli import serve_env

    config = load_hub_config(monkeypatch, tmp_path, AE_CLASS_PASSWORD="a-class-password")
    server = PyFileConfigLoader("jupyter_server_config.py", path=str(CONFIG.parent)).load_config()
    assert config.Spawner.default_url == server.ServerApp.default_url
    assert f"--config={CONFIG.parent / 'jupyter_server_config.py'}" in config.Spawner.args
    expected = serve_env(30, base={})
    assert {k: config.Spawner.environment[k] for k in expected} == expected
    culler = config.JupyterHub.services[0]["command"]
    assert "--timeout=1200" in culler and "--cull-every=60" in culler

    deploy = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text()
    helm = yaml.safe_load(deploy.split("**Helm values**", 1)[1].split("```yaml", 1)[1].split("```", 1)[0])
    assert helm["singleuser"]["defaultUrl"] == config.Spawner.default_url
    assert helm["singleuser"]["startTimeout"] == config.Spawner.start_timeout
    assert helm["singleuser"]["extraEnv"]["AE_CLASSROOM"] == config.Spawner.environment["AE_CLASSROOM"]
    assert helm["hub"]["config"]["JupyterHub"]["authenticator_class"] == config.JupyterHub.authenticator_class
    assert helm["hub"]["config"]["JupyterHub"]["tornado_settings"] == config.JupyterHub.tornado_settings
    assert helm["hub"]["config"]["SharedPasswordAuthenticator"]["allow_all"] is True
    assert helm["cull"] == {"enabled": True, "timeout": 1200, "every": 60}
