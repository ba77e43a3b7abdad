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


def _interleave(context):
    """Two loads in two threads, in the order that leaks: A enters, B enters, A leaves, B leaves."""
    first, second = context(), context()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)


def test_transformers_still_leaks_its_patches_when_two_loads_interleave():
    """explorer/models/hf.py serialises loads and repairs these leaks; when this fails, it can go."""
    from transformers.initialization import no_init_weights, no_tie_weights
    from transformers.modeling_utils import PreTrainedModel

    from explorer.models import hf

    hf.restore()  # record the real methods first
    try:
        _interleave(no_tie_weights)
        _interleave(no_init_weights)
        assert hf._leaked(PreTrainedModel.tie_weights) and hf._leaked(PreTrainedModel.init_weights)
        import torch.nn.init
        assert hf._leaked(torch.nn.init.normal_)
    finally:
        repaired = hf.restore()
    assert "PreTrainedModel.tie_weights" in repaired and "torch.nn.init.normal_" in repaired
    assert not hf._leaked(PreTrainedModel.tie_weights) and not hf._leaked(torch.nn.init.normal_)
