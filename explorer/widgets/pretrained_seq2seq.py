"""The encoder-decoder part of the Pretrained tab: which attention (cross, encoder, decoder), the translation, and
the alignment picture. ``PretrainedPanel`` shows it instead of its encoder-only controls when the session's model
is an encoder-decoder; the main map, the entropy map and bertviz's frame stay the panel's own.
"""

from __future__ import annotations

from dataclasses import replace

import ipywidgets as widgets

from explorer.views import bertviz as bertviz_view
from explorer.views import pretrained as view
from explorer.views import seq2seq as seq2seq_view
from explorer.views import words
from explorer.widgets.controls import bind, explain, section, tagged

PARTS = (("cross", "cross"), ("encoder", "encoder"), ("decoder", "decoder"))
TEXT_TITLES = {False: ("Text A", "Text B (optional)"), True: ("Source", "Target (empty: the model translates)")}


class Seq2SeqParts:
    """Controls and figures an encoder-decoder adds to the Pretrained panel."""

    def __init__(self, panel):
        self.panel = panel
        session = panel.session
        self.part = tagged(widgets.ToggleButtons(options=PARTS, style=dict(button_width="70px"),
                                                 tooltips=["decoder rows over source tokens", "source over source",
                                                           "target over earlier target"]), "ae-pretrained-part")
        self.binding = bind(self.part, session, "part")
        self.translation = tagged(widgets.HTML(), "ae-pretrained-translation")
        self.alignment_box = tagged(widgets.Box(layout=widgets.Layout(width="100%")), "ae-pretrained-alignment-box")
        self.controls = section("Attention of the encoder-decoder", self.part)
        self.outputs = widgets.VBox([self.translation, self.alignment_box], layout=widgets.Layout(width="100%"))
        self.show_family(False)

    def show_family(self, seq2seq: bool) -> None:
        """Show the encoder-decoder's controls and figures, or the encoder's (text B's meaning, ablation, focus)."""
        panel, shown, hidden = self.panel, None if seq2seq else "none", "none" if seq2seq else None
        self.controls.layout.display = self.outputs.layout.display = shown
        for widget in (panel.mode, panel.ablation_section, panel.focus_column, panel.ablation_column):
            widget.layout.display = hidden
        for box, title in zip(panel.text_sections, TEXT_TITLES[seq2seq]):
            box.children[0].value = f"<b>{title}</b>"

    def redraw(self, reading, layer: int, head: int, token: int | None, stale: str = "") -> None:
        """The chosen part's map in the panel's main box, its head entropy, the translation and the alignment."""
        panel, session = self.panel, self.panel.session
        if session.view not in ("head", "layer", "mean"):
            return  # the session refuses the encoder-only views for an encoder-decoder
        maps = reading.parts[session.part]
        place = min(layer, maps.n_layers - 1)
        if session.view == "layer":
            panel._show(panel.main, "layer", view.layer_update(maps, place), lambda: view.layer_figure(maps, place),
                        stale=stale)
            explain(panel.main_words, words.layer_grid(place, maps.n_heads))
        else:
            mark = token if session.part != "encoder" else None
            update = (view.mean_update(maps, place, mark) if session.view == "mean"
                      else view.head_update(maps, place, head, mark))
            update = replace(update, title=f"{maps.meta.kind}: {update.title}")
            if session.part == "cross":  # a column here is a source token: only the target row is outlined
                update = replace(update, outlines=update.outlines[:1])
            panel._show(panel.main, session.view, update, stale=stale)
            explain(panel.main_words, words.mean_map(place, maps.n_heads) if session.view == "mean"
                    else words.head_map(update.title, causal=session.part == "decoder"))
        entropy = view.entropy_update(reading.entropy[session.part], len(maps.keys), place, head)
        panel._show(panel.entropy_box, "entropy", entropy, stale=stale)
        explain(panel.entropy_words, words.entropy_map())
        translation = reading.translation
        self.translation.value = seq2seq_view.translation_html(session.text_a, translation.target,
                                                               translation.translated, maps.meta.notice)
        cross, written, chosen = reading.parts["cross"], translation.written, None if session.view == "mean" else head
        panel._show(self.alignment_box, "alignment", seq2seq_view.alignment_update(cross, written, layer, chosen, token),
                    lambda: seq2seq_view.alignment_figure(cross, written, layer, chosen, token))

    def bertviz_job(self, reading, kind: str, layer: int):
        """The work that builds bertviz's encoder-decoder view, and the numbers of tokens and layers it shows."""
        cross = reading.parts["cross"]
        shown = min(max(len(cross.tokens), len(cross.keys)), bertviz_view.MAX_TOKENS)
        return (lambda: bertviz_view.bertviz_seq2seq_page(reading.parts, kind, layer)), shown, cross.n_layers
