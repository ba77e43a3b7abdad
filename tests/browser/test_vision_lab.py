"""The Vision tab in a real browser: the CBAM net, the plain CNN and the ViT train together; the ViT's column changes."""

from __future__ import annotations

import pytest

from tests.browser.helpers import FIND_PLOT, figure_data, open_dashboard, wait_for_figure

pytestmark = pytest.mark.browser

READ_COLUMN = f"""([name, title]) => {{
    const plot = ({FIND_PLOT})(name);
    const titles = plot.layout.annotations.map(a => a.text).filter(t => t.startsWith('<b>')).slice(1);
    const index = titles.map(t => t.replace(/<br>/g, ' ').replace(/<\\/?b>/g, '')).indexOf(title);
    return index < 0 ? null : JSON.stringify(plot.data[2 + 2 * index].z);
}}"""


def vit_column(page, title="rollout (ViT)"):
    return page.evaluate(READ_COLUMN, ["ae-cbam-gallery", title])


def test_three_nets_train_and_the_vit_rollout_column_changes(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=vision")
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)
    before = vit_column(page)
    assert before is not None, "the gallery has no ViT rollout column"
    page.locator(".ae-cbam-train").click()
    page.wait_for_function(f"""(before) => ({READ_COLUMN})(["ae-cbam-gallery", "rollout (ViT)"]) !== before""",
                           arg=before, timeout=120_000)
    page.locator(".ae-cbam-stop").click()
    page.wait_for_selector(".ae-vision .ae-status-ok:has-text('Stopped')", timeout=60_000)
    assert vit_column(page) != before
    curves = figure_data(page, "ae-cbam-curves")
    assert [trace["name"] for trace in curves[:3]] == ["CBAM net", "plain baseline", "ViT"]
    assert all(len(trace["x"]) >= 10 for trace in curves[:3])  # all three nets trained
    lines = [trace["name"] for trace in figure_data(page, "ae-cbam-localization")]
    assert "ViT CLS map" in lines and "ViT rollout" in lines


def test_the_old_cbam_link_opens_the_vision_tab(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=cbam")
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)
    assert page.locator(".ae-app .lm-TabBar-tab.lm-mod-current, .ae-app .p-TabBar-tab.p-mod-current").inner_text() == "Vision"


CLICK_POINT = f"""([name, trace, px, py]) => {{
    const plot = ({FIND_PLOT})(name);
    const index = plot.data.findIndex(t => t.name === trace);
    const axis = (id, letter) => plot._fullLayout[letter + 'axis' + id.slice(1)];
    const xa = axis(plot.data[index].xaxis || 'x', 'x'), ya = axis(plot.data[index].yaxis || 'y', 'y');
    const box = plot.getBoundingClientRect();
    return {{x: box.x + xa._offset + xa.l2p(px), y: box.y + ya._offset + ya.l2p(py)}};
}}"""


def test_clicking_a_patch_of_the_vit_map_shows_what_it_attends_to(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=vision")
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)
    point = page.evaluate(CLICK_POINT, ["ae-cbam-gallery", "rollout (ViT)", 13, 9])  # patch size 4: row 2, column 3
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(f"""() => ({FIND_PLOT})("ae-cbam-gallery").data.some(t => t.name === "r2c3, head 0 (ViT)")""",
                           timeout=60_000)
    assert vit_column(page, "r2c3, head 0 (ViT)") is not None
    labels = page.evaluate(f"""() => ({FIND_PLOT})("ae-cbam-gallery").layout.annotations.map(a => a.text)""")
    assert "r2c3" in labels


def test_a_pretrained_vit_folder_draws_every_layer_and_head(page, dashboard_url, tmp_path):
    from tests.test_pretrained_vision import save_tiny

    folder = save_tiny(tmp_path / "tiny-vit")
    open_dashboard(page, dashboard_url, "tab=vision")
    wait_for_figure(page, "ae-cbam-gallery", timeout=120_000)
    page.locator(".ae-vision-pretrained-folder input").fill(str(folder))
    page.locator(".ae-vision-pretrained-folder input").press("Enter")
    page.locator(".ae-vision-pretrained-load").click()
    wait_for_figure(page, "ae-vision-pretrained-heads", timeout=120_000)
    names = [trace.get("name") for trace in figure_data(page, "ae-vision-pretrained-heads")]
    assert names.count("head 3") == 2  # 2 layers x 4 heads
    assert "rollout to layer 0" in [trace.get("name") for trace in figure_data(page, "ae-vision-pretrained-maps")]
