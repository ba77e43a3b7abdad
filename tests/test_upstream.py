"""Workarounds for upstream bugs live in one place each; these tests fail when upstream changes what they work
around, so the workaround is then re-checked and removed."""

from __future__ import annotations

import sys
from pathlib import Path

from explorer.cli import TEMPLATE_STATIC

ANYWIDGET_LAB = Path(sys.prefix) / "share/jupyter/labextensions/anywidget/static"


def test_anywidget_still_gives_a_widget_two_seconds_to_start():
    """anywidget_clock.js lengthens exactly this clock; when anywidget drops or changes it, remove the file."""
    bundles = [path.read_text(errors="replace") for path in ANYWIDGET_LAB.glob("*.js")]
    assert bundles, f"anywidget's lab bundle is not installed under {ANYWIDGET_LAB}"
    runtime = [text for text in bundles if "Failed to initialize model" in text]
    assert runtime, "anywidget no longer has its model-initialisation clock: remove anywidget_clock.js"
    assert any("AbortSignal.timeout(2000)" in text for text in runtime), \
        "anywidget changed its 2 s clock: check anywidget_clock.js still matches, or remove it"


def test_the_template_loads_the_workaround_before_the_widgets():
    template = (TEMPLATE_STATIC.parent / "index.html.j2").read_text()
    assert (TEMPLATE_STATIC / "anywidget_clock.js").exists()
    assert template.index("anywidget_clock.js") < template.index("super()")
