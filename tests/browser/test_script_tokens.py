"""No token runs script in the page: a model folder whose tokenizer holds HTML and script tokens goes through every
view of the Pretrained tab (the canvas map with its tooltip, bertviz's head and model views, the SVG and JSON
exports) while every dialog and every ``alert`` in any frame is recorded; none may happen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.helpers import figure_data, open_dashboard, select_tab, wait_for_data, wait_for_figure

HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>"]
HEAD = "ae-pretrained-head"
# In every frame, an alert leaves a console line instead of a dialog: sandboxed frames cannot open dialogs at all,
# so a dialog listener alone would not see script that runs there.
RECORD_ALERTS = "window.alert = (x) => console.log('AE-ALERT ' + x);"


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("hostile-model")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat"]))
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    tokenizer.add_tokens(HOSTILE)
    import torch

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def bertviz_labels(page, wanted: str, timeout: float = 60.0) -> list[str]:
    """The labels bertviz drew in its frame once one of them is ``wanted`` (the frame is replaced when another view
    is rendered, and the old one may still be there for a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        element = page.query_selector(".ae-pretrained-bertviz iframe.ae-bertviz-frame")
        frame = element.content_frame() if element else None
        try:
            labels = frame.eval_on_selector_all("#vis svg text", "els => els.map(e => e.textContent)") if frame else []
        except PlaywrightError:  # the frame went away meanwhile
            labels = []
        if wanted in labels:
            return labels
        page.wait_for_timeout(300)
    raise AssertionError(f"bertviz never drew {wanted!r}")


def test_no_token_runs_script_in_any_view_or_export(page, dashboard_url, hostile_folder, tmp_path):
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(f"dialog {dialog.message}"), dialog.dismiss()))
    page.on("console", lambda message: alerts.append(message.text) if message.text.startswith("AE-ALERT") else None)
    page.add_init_script(RECORD_ALERTS)
    open_dashboard(page, dashboard_url)
    page.evaluate("() => alert('probe')")  # the listener hears an alert
    assert alerts == ["AE-ALERT probe"]
    alerts.clear()
    select_tab(page, "Pretrained")
    wait_for_figure(page, HEAD, timeout=120_000)
    page.locator(".ae-pretrained-model-name input").fill(str(hostile_folder))
    page.locator(".ae-pretrained-load").click()
    page.wait_for_selector(".ae-pretrained .ae-status:has-text('2 layers x 2 heads')", timeout=120_000)
    box = page.locator(".ae-pretrained-text-a textarea")
    box.fill(f"the cat {HOSTILE[0]} sat {HOSTILE[1]} on the mat")
    box.press("Tab")
    data = wait_for_data(page, HEAD, lambda d: HOSTILE[0] in (d[0]["x"] or []), timeout=60)
    assert HOSTILE[1] in data[0]["x"]  # the tokens reach the page, as labels

    for view in ("head", "layer", "mean", "rollout"):
        page.locator(".ae-pretrained-view").get_by_role("button", name=view, exact=True).click()
        page.wait_for_timeout(800)
        for canvas in page.locator(".ae-pretrained canvas").all():  # hover every cell row: the tooltip shows labels
            if not canvas.is_visible():
                continue
            box_ = canvas.bounding_box()
            for step in range(1, 12):
                page.mouse.move(box_["x"] + box_["width"] * step / 12, box_["y"] + box_["height"] * step / 12)
                page.wait_for_timeout(30)
    tips = page.eval_on_selector_all(".ae-heatmap-tip", "els => els.map(e => e.innerHTML).join(' ')")
    assert "<img" not in tips and "<script" not in tips

    for kind, drawn in (("head view", HOSTILE[0]), ("model view", "Layers")):  # the model view labels no tokens
        page.locator(".ae-pretrained").get_by_role("button", name=kind, exact=True).click()
        page.locator(".ae-pretrained-bertviz-render").click()
        assert drawn in bertviz_labels(page, drawn)
        page.wait_for_timeout(1000)

    page.locator(".ae-pretrained-view").get_by_role("button", name="head", exact=True).click()
    page.locator(".ae-pretrained-export-target select").select_option("figure on screen")
    page.locator(".ae-pretrained-export-format select").select_option("svg")
    with page.expect_download() as svg:
        page.locator(".ae-pretrained-export").click()
    drawing = Path(svg.value.path()).read_text()
    # the map draws a long label cut with "…" (present mode's room), so the escaped start of the token is what shows
    assert "&lt;img src=x" in drawing and "<img" not in drawing and "<script" not in drawing
    page.locator(".ae-pretrained-export-target select").select_option("attention maps")
    page.locator(".ae-pretrained-export-format select").select_option("json")
    with page.expect_download() as maps:
        page.locator(".ae-pretrained-export").click()
    assert HOSTILE[1] in Path(maps.value.path()).read_text()
    exported = tmp_path / "figure.svg"
    exported.write_text(drawing)
    viewer = page.context.new_page()  # the exported drawing opened on its own, as a student would
    viewer.on("dialog", lambda dialog: (alerts.append(f"dialog {dialog.message}"), dialog.dismiss()))
    viewer.goto(exported.as_uri())
    viewer.wait_for_timeout(1000)
    viewer.close()
    assert not alerts, alerts
    assert figure_data(page, HEAD)
