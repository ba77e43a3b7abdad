"""The CBAM tab in a real browser: training redraws the spatial-map overlay; a bad ratio is explained."""

from __future__ import annotations

import pytest

from tests.browser.helpers import FIND_PLOT, figure_data, open_dashboard, wait_for_figure

pytestmark = pytest.mark.browser

OVERLAY = 2  # trace 0 is the first image, trace 1 its grey copy under the stage-1 map, trace 2 that map


def stage_one_map(page):
    return figure_data(page, "ae-cbam-gallery")[OVERLAY]["z"]


def open_cbam(page, url):
    open_dashboard(page, url, "tab=cbam")
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)


def test_training_changes_the_drawn_overlay_and_stop_keeps_it(page, dashboard_url):
    open_cbam(page, dashboard_url)
    before = stage_one_map(page)
    assert len(before) == 32 and all(0.0 <= v <= 1.0 for row in before for v in row)
    # Untrained, the accuracy curve is one point at step 0: the step axes must not reach below 0 around it.
    starts = page.evaluate(
        f"""(name) => {{
            const plot = ({FIND_PLOT})(name);
            return [plot._fullLayout.xaxis.range[0], plot._fullLayout.xaxis2.range[0]];
        }}""", "ae-cbam-curves")
    assert starts == [0, 0]

    page.locator(".ae-cbam-train").click()
    page.wait_for_function(
        """(before) => {
            const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.layout && p.layout.meta === 'ae-cbam-gallery');
            return JSON.stringify(plot.data[2].z) !== before;
        }""", arg=str(before).replace(" ", ""), timeout=120_000)
    page.locator(".ae-cbam-stop").click()
    page.wait_for_selector(".ae-cbam .ae-status-ok:has-text('Stopped')", timeout=60_000)
    after = stage_one_map(page)
    assert after != before
    curves = figure_data(page, "ae-cbam-curves")
    assert len(curves[0]["x"]) >= 10 and len(curves[1]["x"]) >= 10  # both nets trained


def test_ratio_of_zero_is_explained_and_nothing_is_lost(page, dashboard_url):
    open_cbam(page, dashboard_url)
    before = stage_one_map(page)
    box = page.locator(".ae-cbam-ratio input")
    box.fill("0")
    box.press("Enter")
    page.wait_for_selector(".ae-cbam .ae-status-error", timeout=30_000)
    assert "ratio" in page.inner_text(".ae-cbam .ae-status-error")
    assert stage_one_map(page) == before


def test_preset_link_rebuilds_the_nets_and_redraws_the_figures(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=cbam&preset=CBAM%3A%20spatial%20attention%20only")
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)
    page.wait_for_function(
        """() => {
            const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.layout && p.layout.meta === 'ae-cbam-channels');
            return plot && plot.data.length === 0 && /no channel attention/.test(plot.layout.title.text);
        }""", timeout=120_000)
    assert not page.locator(".ae-cbam-use-cbam input").is_disabled()
    assert len(figure_data(page, "ae-cbam-gallery")) == 4 * (1 + 2 * 8)  # image, 3 stages, 2 Grad-CAMs, 3 ViT maps
