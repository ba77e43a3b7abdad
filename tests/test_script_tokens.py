"""No token can run script in the page: bertviz's page is sandboxed and its tokens cannot end a <script>; the
canvas map's tooltip and SVG export treat labels as text."""

from __future__ import annotations

import html
import re
from pathlib import Path

import torch

from explorer.maps import AttentionMaps
from explorer.views.bertviz import bertviz_page, iframe, script_json

HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>", "<!--", "a&b\"c"]
JS = Path(__file__).resolve().parents[1] / "explorer" / "widgets" / "heatmap_view.js"


def hostile_maps():
    weights = torch.softmax(torch.randn(1, 2, len(HOSTILE), len(HOSTILE), generator=torch.Generator().manual_seed(0)), -1)
    return AttentionMaps(tokens=HOSTILE, weights=weights)


def test_bertviz_tokens_cannot_close_the_script_they_sit_in():
    page, _ = bertviz_page(hostile_maps(), "head")
    assert "</script><script>alert(2)" not in page and "<img src=x onerror" not in page.replace(
        script_json(HOSTILE[0]), "")
    for token in HOSTILE:
        assert script_json(token) in page  # the token is there, as a JSON string the page's JavaScript reads back
    plain = AttentionMaps(tokens=list("abcd"), weights=hostile_maps().weights)
    assert page.count("</script>") == bertviz_page(plain, "head")[0].count("</script>")  # no script ends early


def test_script_json_reads_back_as_the_same_text():
    import json

    for token in HOSTILE:
        text = script_json(token)
        assert "</" not in text and "<!--" not in text
        assert json.loads(text.replace("<\\/", "</").replace("<\\!--", "<!--")) == token


def test_bertviz_goes_into_a_frame_that_may_run_scripts_but_has_no_origin():
    frame = iframe("<p>x</p>", 300)
    sandbox = re.search(r'sandbox="([^"]*)"', frame).group(1).split()
    assert sandbox == ["allow-scripts"] and "allow-same-origin" not in frame
    assert html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1)) == "<p>x</p>"


def test_the_canvas_map_sets_labels_as_text_and_escapes_them_in_svg():
    source = JS.read_text(encoding="utf-8")
    assert "innerHTML" not in source and "tip.replaceChildren" in source
    escape = re.search(r"const esc = \(s\) => (.*?);\n", source, re.S).group(1)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        assert f'/{char}/g, "{entity}"' in escape
