"""The Pretrained tab with a tiny random Marian folder in a real browser: the cross-attention map, the alignment
picture and bertviz's encoder-decoder view appear, with every request outside the local server blocked."""

from __future__ import annotations

import os
from pathlib import Path

from tests.browser.helpers import FIND_PLOT, figure_data, wait_for_data, wait_for_figure
from tests.browser.test_pretrained import block_other_hosts, open_pretrained
from tests.test_seq2seq import minilm_tokenizer, save_tiny

SHOTS = Path(os.environ.get("AE_SHOTS", "/tmp/shots"))
HEAD, ALIGNMENT = "ae-pretrained-head", "ae-pretrained-alignment"


def title_of(page, meta: str) -> str:
    return page.evaluate(f"(meta) => {{ const p = ({FIND_PLOT})(meta); return p ? p.layout.title.text : ''; }}", meta)


def test_a_marian_folder_shows_cross_attention_and_its_alignment(page, dashboard_url, tmp_path):
    folder = save_tiny(tmp_path / "marian", "marian", minilm_tokenizer())
    blocked = block_other_hosts(page)
    open_pretrained(page, dashboard_url)
    box = page.locator(".ae-pretrained-model-name input")
    box.fill(str(folder))
    box.press("Tab")  # the model box sends its value on leaving it (continuous_update=False)
    page.wait_for_function(f"(meta) => ({FIND_PLOT})(meta).layout.title.text.startsWith('cross-attention')",
                           arg=HEAD, timeout=120_000)
    text = page.locator(".ae-pretrained-text-b textarea")
    text.fill("a cat is here")
    text.press("Tab")
    wait_for_figure(page, ALIGNMENT, timeout=60_000)
    data = wait_for_data(page, ALIGNMENT, lambda d: "here" in (d[-1]["text"] or []))
    source, written = data[-2]["text"], data[-1]["text"]
    assert "animal" in source and "street" in source  # the tab's example sentence is the source
    assert written[1:5] == ["a", "cat", "is", "here"]
    assert any(trace["x"] for trace in data[:-2]), "no line joins a written token to the source"
    head = figure_data(page, HEAD)[0]
    assert head["x"][:3] == source[:3] and head["y"][0] == "[PAD]"  # queries: what the decoder read
    assert "you typed" in page.inner_text(".ae-pretrained-translation")
    assert page.locator(".ae-pretrained-ablate").is_hidden()  # head ablation is for encoders

    page.locator(".ae-pretrained-part button", has_text="encoder").click()
    page.wait_for_function(f"(meta) => ({FIND_PLOT})(meta).layout.title.text.startsWith('encoder self-attention')",
                           arg=HEAD)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pretrained-seq2seq.png"), full_page=True)

    page.locator(".ae-pretrained-bertviz-render").click()
    frame_element = page.wait_for_selector(".ae-pretrained-bertviz iframe.ae-bertviz-frame", timeout=60_000)
    frame = frame_element.content_frame()
    frame.wait_for_selector("#vis svg text", timeout=30_000)
    tokens = frame.eval_on_selector_all("#vis svg text", "els => els.map(e => e.textContent)")
    assert "street" in tokens
    options = frame.eval_on_selector_all("select option", "els => els.map(e => e.textContent)")
    assert {"Encoder", "Decoder", "Cross"} <= set(options), options
    frame.select_option("#filter", label="Cross")  # the target's tokens on the left, the source's on the right
    frame.wait_for_function("() => [...document.querySelectorAll('#vis svg text')].some(e => e.textContent === 'here')")
    tokens = frame.eval_on_selector_all("#vis svg text", "els => els.map(e => e.textContent)")
    assert "street" in tokens and "here" in tokens
    frame_element.screenshot(path=str(SHOTS / "pretrained-seq2seq-bertviz.png"))

    box.fill(str(tmp_path / "nowhere"))  # bad input: a message, and the translator and its view stay
    box.press("Tab")
    page.wait_for_selector(".ae-pretrained .ae-status-error")
    assert title_of(page, HEAD).startswith("encoder self-attention")
    assert not blocked, f"the tab asked for addresses outside this server: {blocked}"
