"""The "present" switch of the dashboard: large text, maps and click targets for a projector at 1280x720.

Turning it on puts the CSS class ``ae-present`` on the box it serves: the dashboard, or a panel of
``explorer.show()`` in a notebook (``presentable``). The controls grow by CSS (``PRESENT_CSS``, which the switch
brings into the page); each figure (``PlotView``, ``HeatmapView``) sees the class when it draws and enlarges its own
texts, so no figure is built again in the kernel. A link carries it as ``present=1``.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import ipywidgets as widgets
from traitlets import Bool

# ipywidgets size their controls from these variables: set on the dashboard, they reach every control inside.
PRESENT_CSS = """
.ae-present { --jp-widgets-font-size: 18px; --jp-widgets-inline-height: 38px;
  --jp-widgets-horizontal-tab-width: 200px;
  --jp-widgets-inline-label-width: 150px; --jp-ui-font-size1: 18px; --jp-content-font-size1: 18px; font-size: 18px; }
.ae-present .widget-html, .ae-present .widget-htmlmath, .ae-present .widget-label,
.ae-present .widget-button, .ae-present .widget-toggle-button, .ae-present select,
.ae-present input, .ae-present textarea { font-size: 18px; }
.ae-present .widget-button, .ae-present .widget-toggle-button { min-height: 38px; }
/* Buttons and labels sized in px for 13 px text take the room their larger words need. */
.ae-present .widget-toggle-buttons .widget-toggle-button { width: auto !important; min-width: 3.5em;
  padding-left: 0.6em; padding-right: 0.6em; }
.ae-present .widget-inline-hbox > .widget-label { width: auto !important;
  min-width: var(--jp-widgets-inline-label-width); }
.ae-present .lm-TabBar-tab, .ae-present .p-TabBar-tab { font-size: 18px; min-height: 36px; }
.ae-present .ae-status { font-size: 18px; }
.ae-present input[type="checkbox"], .ae-present input[type="radio"] { width: 22px; height: 22px; }
"""


class PresentSwitch(anywidget.AnyWidget):
    """A button that turns present mode on and off; ``on`` is its state."""

    _esm = Path(__file__).with_name("present.js")
    _css = PRESENT_CSS + """
.ae-present-switch { min-width: 110px; } .ae-present-switch.mod-active { background: #1a7f37; color: #fff; }"""
    on = Bool(False).tag(sync=True)


def presentable(box: widgets.DOMWidget, switch: PresentSwitch) -> None:
    """Let ``switch`` serve ``box`` (the dashboard, or a panel of ``show()``): it puts ``ae-present`` on the box from
    the kernel as well as in the page, so a page that connects later draws the box as it is."""
    box.add_class("ae-presentable")

    def follow(now: bool) -> None:
        (box.add_class if now else box.remove_class)("ae-present")

    switch.observe(lambda change: follow(change["new"]), "on")
    follow(switch.on)
