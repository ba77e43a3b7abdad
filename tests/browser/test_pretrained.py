"""The Pretrained tab in a real browser: typed text, layer, head and clicks reach the figures; bertviz and exports
work with every request outside the local server blocked; the token bars follow the map on screen, the token
menu names tokens as the axes do, a name that cannot load stays in the box, a small multiple opens large."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from tests.browser.helpers import FIND_PLOT, figure_data, open_dashboard, select_tab, wait_for_figure

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))
HEAD = "ae-pretrained-head"


def block_other_hosts(page) -> list[str]:
    """Abort every request that is not to the local server; return the list of blocked addresses."""
    blocked: list[str] = []

    def route(request_route, request):
        host = urlparse(request.url).hostname
        if request.url.startswith(("data:", "about:", "blob:")) or host in ("127.0.0.1", "localhost"):
            request_route.continue_()
        else:
            blocked.append(request.url)
            request_route.abort()

    page.route("**/*", route)
    return blocked


def open_pretrained(page, url):
    open_dashboard(page, url)
    select_tab(page, "Pretrained")
    wait_for_figure(page, HEAD, timeout=120_000)


def head_axes(page):
    trace = figure_data(page, HEAD)[0]
    return trace["x"], trace["y"], trace["z"]


def click_cell(page, meta: str, row: int, n_rows: int, col: int = 0, n_cols: int = 1) -> None:
    """Click the middle of a cell of the heatmap tagged ``meta`` (a plotly figure or a canvas map)."""
    box = page.evaluate(
        f"(meta) => {{ const p = ({FIND_PLOT})(meta); p.scrollIntoView({{block: 'center'}});"
        " const r = p.aePlotArea ? p.aePlotArea() : p.querySelector('.nsewdrag').getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; }", meta)
    page.mouse.click(box["x"] + box["width"] * (col + 0.5) / n_cols, box["y"] + box["height"] * (row + 0.5) / n_rows)


def test_typed_text_layer_and_head_reach_the_axes(page, dashboard_url):
    blocked = block_other_hosts(page)
    sent: list[int] = []  # sizes of the messages the page sends its kernel
    page.on("websocket", lambda socket: socket.on("framesent", lambda payload: sent.append(len(payload))))
    open_pretrained(page, dashboard_url)
    x, _, _ = head_axes(page)
    assert "animal" in x

    box = page.locator(".ae-pretrained-text-a textarea")
    box.fill("Penguins swim quickly")
    box.press("Tab")  # leaving the box sends the text (continuous_update=False)
    page.wait_for_function(
        "(meta) => { const p = [...document.querySelectorAll('.js-plotly-plot, .ae-heatmap')].find(p => p.layout.meta === meta);"
        " return p && p.data[0].x.includes('swim'); }", arg=HEAD)
    x, y, z_before = head_axes(page)
    assert x[0] == "[CLS]" and x[-1] == "[SEP]" and "swim" in x and y == x
    before_head = len(sent)
    page.locator(".ae-pretrained-head select").select_option("5")
    page.wait_for_function(
        "(meta) => [...document.querySelectorAll('.js-plotly-plot, .ae-heatmap')].find(p => p.layout.meta === meta)"
        ".layout.title.text.includes('head 5')", arg=HEAD)
    page.wait_for_timeout(1000)
    # The page tells its kernel the new head, and does not send the redrawn figures back (about 50 kB before).
    assert sum(sent[before_head:]) < 5_000, sent[before_head:]
    readout = page.locator(".ae-pretrained-layer .widget-readout")
    readout.fill("5")
    readout.press("Enter")
    page.wait_for_function(
        "(meta) => [...document.querySelectorAll('.js-plotly-plot, .ae-heatmap')].find(p => p.layout.meta === meta)"
        ".layout.title.text === 'layer 5, head 5'", arg=HEAD)
    x, _, z_after = head_axes(page)
    assert "swim" in x and z_after != z_before

    click_cell(page, HEAD, row=2, n_rows=len(x))  # the row of "swim"
    page.wait_for_function(
        "(meta) => { const p = [...document.querySelectorAll('.js-plotly-plot, .ae-heatmap')].find(p => p.layout.meta === meta);"
        " return p.layout.shapes && p.layout.shapes.length === 2; }", arg=HEAD)
    page.wait_for_function(  # the token focus appears once a token is picked
        "() => { const p = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.layout.meta === 'ae-pretrained-focus');"
        " return p && p.layout.title.text.includes('swim'); }")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pretrained.png"), full_page=True)

    click_cell(page, "ae-pretrained-entropy", row=2, n_rows=6, col=7, n_cols=12)  # opens layer 2, head 7
    page.wait_for_function(
        "(meta) => [...document.querySelectorAll('.js-plotly-plot, .ae-heatmap')].find(p => p.layout.meta === meta)"
        ".layout.title.text === 'layer 2, head 7'", arg=HEAD)

    box.fill("")  # bad input: a message in the panel, and the view stays as it was
    box.press("Tab")
    page.wait_for_selector(".ae-pretrained .ae-status-error")
    assert "empty" in page.inner_text(".ae-pretrained .ae-status-error")
    assert head_axes(page)[0] == x
    assert not blocked, f"the tab asked for addresses outside this server: {blocked}"


def test_bertviz_renders_offline(page, dashboard_url):
    blocked = block_other_hosts(page)
    open_pretrained(page, dashboard_url)
    page.locator(".ae-pretrained-bertviz-render").click()
    frame_element = page.wait_for_selector(".ae-pretrained-bertviz iframe.ae-bertviz-frame", timeout=60_000)
    frame = frame_element.content_frame()
    frame.wait_for_selector("#vis svg text", timeout=30_000)  # drawn by bertviz's d3 code
    tokens = frame.eval_on_selector_all("#vis svg text", "els => els.map(e => e.textContent)")
    assert "animal" in tokens
    assert frame.evaluate("() => typeof window.d3 === 'object' && typeof window.requirejs === 'function'")
    frame_element.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pretrained-bertviz.png"), full_page=True)
    assert not blocked, f"bertviz asked for addresses outside this server: {blocked}"


def test_export_downloads_svg_and_npz(page, dashboard_url):
    blocked = block_other_hosts(page)
    open_pretrained(page, dashboard_url)
    page.locator(".ae-pretrained-export-target select").select_option("figure on screen")
    page.locator(".ae-pretrained-export-format select").select_option("svg")
    with page.expect_download() as svg:
        page.locator(".ae-pretrained-export").click()
    assert svg.value.suggested_filename == "pretrained-figure-on-screen.svg"
    drawn = Path(svg.value.path()).read_bytes()
    assert b"<svg" in drawn[:400] and drawn.count(b"<rect") > 200  # a vector drawing: a rect per cell
    assert b">animal</text>" in drawn and b">layer 0, head 0</text>" in drawn
    page.locator(".ae-pretrained-export-target select").select_option("attention maps")
    page.locator(".ae-pretrained-export-format select").select_option("npz")
    with page.expect_download() as npz:
        page.locator(".ae-pretrained-export").click()
    assert npz.value.suggested_filename == "pretrained-attention-maps.npz"
    assert Path(npz.value.path()).read_bytes()[:2] == b"PK"  # a zip archive, as .npz files are
    assert not blocked, f"exporting asked for addresses outside this server: {blocked}"


def test_the_token_bars_follow_the_mean_and_rollout_views(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=pretrained&preset=coreference")
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-focus'); return p && p.data.length; }}",
                           timeout=120_000)
    for view, words in (("mean", "mean over 12 heads"), ("rollout", "rollout through layer 3")):
        page.locator(".ae-pretrained-view button").filter(has_text=view).click()
        page.wait_for_function(f"(words) => ({FIND_PLOT})('ae-pretrained-focus').layout.title.text.includes(words)",
                               arg=words)
        page.wait_for_timeout(300)
        shown = page.evaluate(f"() => ({FIND_PLOT})('ae-pretrained-{view}').data[0]")
        it = shown["y"].index("it")
        bars = figure_data(page, "ae-pretrained-focus")[0]["y"]
        assert max(abs(a - b) for a, b in zip(bars, shown["z"][it])) < 2e-3, view


def test_the_token_menu_names_a_repeated_token_as_the_axis_does(page, dashboard_url):
    open_pretrained(page, dashboard_url)
    x, _, _ = head_axes(page)
    assert "the·2" in x
    options = [o.replace("\xa0", " ") for o in page.locator(".ae-pretrained-token select option").all_inner_texts()]
    assert f"{x.index('the·2')}: the·2" in options


def test_a_model_name_that_cannot_load_stays_in_the_box_with_the_reason(page, dashboard_url):
    open_pretrained(page, dashboard_url)
    box = page.locator(".ae-pretrained-model-name input")
    for typo, how in (("bert-base-uncased-typo", "click"), ("bert-base-uncased-typo2", "Enter")):
        box.fill(typo)
        if how == "Enter":
            box.press("Enter")
        else:
            page.locator(".ae-pretrained-load").click()
        page.wait_for_selector(f".ae-pretrained .ae-status-error:has-text('{typo}')", timeout=60_000)
        page.wait_for_timeout(500)
        assert box.input_value() == typo, how
    assert "animal" in head_axes(page)[0]  # the model and its view stayed


def test_a_head_of_the_layer_opens_large_and_the_ablation_axis_fits_the_change(page, dashboard_url):
    open_pretrained(page, dashboard_url)
    page.locator(".ae-pretrained-view button").filter(has_text="layer").click()
    wait_for_figure(page, "ae-pretrained-layer")
    page.wait_for_timeout(500)
    box = page.evaluate(f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-layer');"
                        " const r = p.querySelector('.draglayer .x2y2 .nsewdrag').getBoundingClientRect();"
                        " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; }")
    page.mouse.click(box["x"], box["y"])  # the second small multiple: head 1
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('{HEAD}'); return p && p.layout.title.text === 'layer 0, head 1'; }}")
    page.locator(".ae-pretrained-ablate").click()
    wait_for_figure(page, "ae-pretrained-ablation", timeout=120_000)
    layout = page.evaluate(f"() => {{ const p = ({FIND_PLOT})('ae-pretrained-ablation');"
                           " return {range: p.layout.yaxis.range, top: Math.max(...p.data[0].y), text: p.data[0].text}; }")
    assert abs(layout["range"][1] - 1.3 * layout["top"]) < 1e-6, "the axis follows the largest change"
    assert all(text not in ("", None) for text in layout["text"]), "each bar says its number"
