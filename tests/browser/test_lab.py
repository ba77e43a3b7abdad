"""The lessons in JupyterLab, as a student opens them: Lab's own Run menu runs every cell in Chromium.

JupyterLab runs on a copy of notebooks/ (running cells must not write outputs into the repository) with the
environment of ``attention-explorer lab``. Each lesson must finish with no error output and no "Error
displaying widget", and each panel must fit a notebook column 900 px wide without a horizontal scroll bar.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, free_port, stop_server
from tests.browser.helpers import figure_data, wait_for_change, wait_for_figure

LESSONS = sorted(path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLUMN_PX = 900
CELLS_DONE_SECONDS = 600  # a lesson trains small models (AE_FAST=1 shortens that) on a shared machine
# An output that overflows its column: Lab's output areas scroll sideways (overflow-x: auto) when a widget
# is wider than they are, so scrollWidth > clientWidth is the scroll bar a student would see.
OVERFLOWING_OUTPUTS = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')]
    .filter(o => o.querySelector('.widget-box, .jupyter-widgets, .ae-columns'))
    .filter(o => o.scrollWidth > o.clientWidth + 1)
    .map(o => `${o.scrollWidth} > ${o.clientWidth}: ${o.innerText.slice(0, 80)}`)
    // A figure wider than its box is clipped rather than scrolled: plotly drew it before the box had its width.
    .concat([...document.querySelectorAll('.jp-NotebookPanel .ae-plot')]
        .filter(p => p.querySelector('.main-svg') && p.querySelector('.main-svg').getBoundingClientRect().width
                     > p.getBoundingClientRect().width + 1)
        .map(p => `figure ${p.className}: ${p.querySelector('.main-svg').getBoundingClientRect().width} px`
                  + ` in ${p.getBoundingClientRect().width} px`))"""


@pytest.fixture(scope="module")
def lab_url(browser, tmp_path_factory):
    """JupyterLab, token-less on loopback, on a copy of the lessons."""
    from explorer.cli import lab_command, voila_env

    root = tmp_path_factory.mktemp("lessons")
    for lesson in LESSONS:
        shutil.copy(ROOT / "notebooks" / lesson, root / lesson)
    port = free_port()
    log_path = root.parent / "lab.log"
    # Lab's own settings and workspaces, fresh: no news toast over the cells, and no lesson tab reopened from a
    # saved workspace (each lesson opens alone in a workspace of its own).
    settings = root.parent / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    command = lab_command(root, port, open_browser=False, ip="127.0.0.1") + [
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root.parent / 'lab-workspaces'}",
        "--IdentityProvider.token=", "--ServerApp.disable_check_xsrf=True",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    env = voila_env(dict(os.environ, AE_FAST="1"))
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "api/status", timeout=5).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        stop_server(process, log_path, "SHOW_LAB_LOG")


@pytest.fixture
def lab_page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()


def open_lesson(page, url: str, lesson: str) -> None:
    """Open ``lesson`` in Lab and size the window so that the notebook's output column is 900 px wide."""
    page.goto(f"{url}lab/workspaces/{Path(lesson).stem}/tree/{lesson}?reset", wait_until="domcontentloaded")
    column = """() => { const editor = document.querySelector(
        '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor');
        return editor ? editor.getBoundingClientRect().width : 0; }"""
    page.wait_for_function(f"() => ({column})() > 0", timeout=120_000)
    seen = []
    for _ in range(6):  # the side bars keep their width, so one correction is usually enough
        page.wait_for_timeout(500)  # Lab lays the panel out again after a resize
        width = page.evaluate(column)
        size = page.viewport_size
        seen.append((size["width"], width))
        if abs(width - COLUMN_PX) < 4:
            return
        page.set_viewport_size({"width": max(400, int(size["width"] + COLUMN_PX - width)), "height": size["height"]})
    raise AssertionError(f"could not size the notebook column to {COLUMN_PX}px (viewport, column: {seen})")


def run_all_cells(page) -> None:
    """Lab's Run menu > Run All Cells, then wait until every code cell shows its execution count."""
    # Run All before the kernel is connected was seen to run nothing: wait for Lab to report the kernel idle.
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel").filter(has_text="Run All Cells").first.click()
    # Done when every code cell shows its execution count, or as soon as a cell shows an error (Lab then skips
    # the cells after it, which would otherwise keep their empty prompts until the timeout).
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel');
            if ([...panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
                .some(o => /Traceback|Error/.test(o.innerText))) return true;
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=CELLS_DONE_SECONDS * 1000, polling=500)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000)


def errors_shown(page) -> list[str]:
    """Error outputs (tracebacks, which Lab draws as stderr) and widgets that failed to display."""
    shown = page.evaluate("""() => [...document.querySelectorAll('.jp-NotebookPanel '
        + '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(o => o.innerText).filter(text => /Traceback|Error/.test(text))""")
    body = page.inner_text(".jp-NotebookPanel")
    return shown + (["Error displaying widget"] if "Error displaying widget" in body else [])


def last_cell_panel_drawn(page) -> None:
    """The last cell shows the lesson's panel: wait until its widgets are drawn before judging the page."""
    page.wait_for_function("""() => { const cells = document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell');
        return cells.length && cells[cells.length - 1].querySelector('.jp-OutputArea-output .widget-box'); }""",
                           timeout=120_000)
    page.wait_for_timeout(1000)


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_in_jupyterlab_and_its_panels_fit_the_column(lab_page, lab_url, lesson):
    try:
        open_lesson(lab_page, lab_url, lesson)
        run_all_cells(lab_page)
        assert errors_shown(lab_page) == []
        last_cell_panel_drawn(lab_page)
        assert errors_shown(lab_page) == []
        try:  # a figure follows its box's width within a frame or two
            lab_page.wait_for_function(f"() => ({OVERFLOWING_OUTPUTS})().length === 0", timeout=10_000)
        except Exception:  # noqa: BLE001 - the assertion below says what overflows
            pass
        assert lab_page.evaluate(OVERFLOWING_OUTPUTS) == []
        if lesson.startswith("09"):  # the scores table of the check run in the lesson, and its corpus tables
            assert lab_page.locator(".jp-NotebookPanel .ae-faith-scores").count() >= 1
            # text_content: Lab skips painting cells off screen, and inner_text leaves their words out
            assert "Spearman ρ with leave-one-out" in lab_page.locator(".jp-NotebookPanel .ae-faith-scores").first.text_content()
        if lesson.startswith("01"):
            wait_for_figure(lab_page, "ae-weights")
            before = figure_data(lab_page, "ae-weights")[0]["z"]
            lab_page.locator(".ae-score button").filter(has_text="additive").click()
            assert wait_for_change(lab_page, "ae-weights", before)[0]["z"] != before
            assert errors_shown(lab_page) == []
    except Exception:
        if os.environ.get("AE_LAB_SHOT"):  # a picture of the page, for a failure seen only in CI
            shot = f"{os.environ['AE_LAB_SHOT']}-{Path(lesson).stem}.png"
            lab_page.screenshot(path=shot, full_page=True)
            Path(shot + ".html").write_text(lab_page.content())
        raise
