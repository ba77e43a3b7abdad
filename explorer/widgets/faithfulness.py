"""The "how faithful is this map?" section a tab adds under its maps: a button, Stop, progress, every method's
importances as bars over the tokens and the scores as a table (``explorer.sessions.faithful`` does the work)."""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from explorer.faithfulness import MAX_TOKENS
from explorer.views import faithfulness as view
from explorer.widgets.controls import button, guarded, tagged
from explorer.widgets.plot import PlotView

EXPLAINED = ("Each method scores every token for the output named below; the table says how well each agrees with "
             "what the model does when tokens are replaced (leave-one-out, deletion and insertion curves). "
             f"At most {MAX_TOKENS} tokens. The ★ marks the method whose map is on screen.")


class FaithfulnessSection(widgets.VBox):
    """``starred()`` names the method of the map on screen (or None); ``redraw_star()`` after it changes."""

    def __init__(self, check, starred: Callable[[], str | None], name: str, what: str = "this map", extra=()):
        super().__init__(layout=widgets.Layout(width="100%", margin="8px 0 0 0"))
        self.add_class(f"ae-{name}-faith")
        self.check, self.starred, self.name = check, starred, name
        run = guarded(check.session, check.run)
        self.run_button = button(f"How faithful is {what}?", run, f"ae-{name}-faith-run", "info", "balance-scale",
                                 "230px")
        self.stop_button = button("Stop", guarded(check.session, check.stop), f"ae-{name}-faith-stop", "warning",
                                  "stop", "80px")
        self.progress = tagged(widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="200px")),
                               f"ae-{name}-faith-progress")
        self.bars = PlotView(name=f"ae-{name}-faith-bars")
        self.table = tagged(widgets.HTML(), f"ae-{name}-faith-scores")
        self.results = widgets.VBox([self.bars, self.table], layout=widgets.Layout(display="none", width="100%"))
        self.children = [widgets.HTML("<b>How faithful is this map?</b>"),
                         widgets.HTML(f"<div style='font-size:12px;max-width:640px'>{EXPLAINED}</div>"),
                         widgets.HBox([*extra, self.run_button, self.stop_button, self.progress],
                                      layout=widgets.Layout(flex_flow="row wrap", align_items="center")),
                         self.results]
        check.observe(lambda change: setattr(self.progress, "value", change["new"]), "progress")
        check.observe(lambda _: self.redraw(), "record")
        self._shown: tuple | None = None
        self.redraw()

    def redraw(self) -> None:
        """Draw the result on screen; only when it or the starred method changed."""
        record, starred = self.check.record, self.starred()
        if record is None:
            self.results.layout.display = "none"
            return
        if self._shown == (id(record), starred):
            return
        self._shown = (id(record), starred)
        self.bars.show(view.importance_figure(record, starred))
        self.table.value = view.scores_html(record, starred)
        self.results.layout.display = None
