"""The Transformer lab's translator box: type a text, press Translate, see what the model writes and where each
written character looked (its cross-attention), with a notice about the answer.

Thin: the ``typed`` setting is bound to the text box, the session decodes and the box draws its ``translation``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from explorer.views import training as view
from explorer.widgets.controls import STATUS_STYLES, bind, button, shows_errors, tagged
from explorer.widgets.large_head import LargeHead
from explorer.widgets.plot import PlotView

HINT = ("<small>Each row is a character the model wrote, each column a character it read: the cross-attention of "
        "the first model, every layer and head. Click a head to open it large.</small>")


class TranslatorBox(widgets.VBox):
    """Text box and Translate button (in the controls), and the output with its cross-attention (on the right)."""

    def __init__(self, session):
        self.session = session
        self.typed = tagged(widgets.Text(placeholder="3 March 2021", continuous_update=False,
                                         layout=widgets.Layout(width="200px")), "ae-tl-typed")
        self.binding = bind(self.typed, session, "typed")
        self.button = button("Translate", self.translate, "ae-tl-translate", width="90px")
        self.typed.on_submit(lambda _: self.translate())
        self.controls = widgets.VBox([widgets.HBox([self.typed, self.button])])
        self.output = tagged(widgets.HTML(), "ae-tl-output")
        self.maps: PlotView | None = None
        self.large = LargeHead("ae-tl-translation-large")  # a head of the grid, clicked open
        self.figures = widgets.VBox()
        super().__init__([self.output, self.figures])
        self.add_class("ae-tl-translator")
        session.observe(lambda _: self.show(), "translation")
        self.show()

    @shows_errors
    def translate(self) -> None:
        self.session.update(typed=self.typed.value)
        self.session.translate()

    def show(self) -> None:
        result = self.session.translation
        self.layout.display = None if result is not None else "none"
        if result is None:
            return
        notice, kind = html.escape(self.session.translation_notice), self.session.translation_kind  # right: green
        self.output.value = (f"<b>Translation</b> <span style='font-family:monospace'>{html.escape(result.source)}</span>"
                             f" → <b style='font-family:monospace'>{html.escape(result.target) or '(nothing)'}</b>"
                             f"<br><span class='ae-notice ae-status-{kind}' style='{STATUS_STYLES[kind]}'>{notice}</span>")
        if result.cross is None:
            self.figures.children = []
            return
        figure = view.all_heads_figure(result.cross, "your text · cross-attention")
        if self.maps is None:
            self.maps = PlotView(figure, name="ae-tl-translation")
            self.maps.on_click(lambda trace, point: self.open_head(trace))
        else:
            self.maps.show(figure)
        self.figures.children = [widgets.HTML(HINT), self.maps, self.large]
        if self.large.shown is not None:  # the head opened large follows the new translation
            self.open_head(self.large.shown[0] * result.cross.n_heads + self.large.shown[1])

    def open_head(self, trace: int) -> None:
        """Open head ``trace`` of the grid (layer by layer, head by head) large below it."""
        cross = self.session.translation.cross
        layer, head = divmod(int(trace), cross.n_heads)
        if layer < cross.n_layers:
            self.large.show_head(cross, layer, head, f"your text · cross-attention · layer {layer}, head {head}")
