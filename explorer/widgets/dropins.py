"""bertviz's ``head_view`` and ``model_view``, drawn with the explorer's views and offline.

They take bertviz's own arguments, so a bertviz notebook changes one line::

    from bertviz import head_view          ->   from explorer import head_view

``head_view`` opens the panel of ``explorer.show`` on one head (or, given several ``heads``, on the layer's grid of
heads); ``model_view`` on every layer and head at once. bertviz's Attention menu (a sentence pair's slices, or an
encoder-decoder's encoder, decoder and cross-attention) is the panel's "Attention" choice. ``html_action="view"``
displays the panel (and returns None, as bertviz does); ``"return"`` gives an ``IPython.display.HTML`` page of the
same figures with plotly.js inside, which opens offline (``.data`` is its text, as bertviz's).
"""

from __future__ import annotations

from explorer.arguments import choice, whole
from explorer.models.readers import bertviz_reader
from explorer.models.shown import pick
from explorer.sessions.show import GRID_TOKENS, ShowSession
from explorer.views import pretrained as pretrained_view
from explorer.views import show as show_view
from explorer.widgets.plot import PLOTLY_JS
from explorer.widgets.show import ShowPanel

ACTIONS = ("view", "return")
MODES = ("light", "dark")


def head_view(attention=None, tokens=None, sentence_b_start=None, prettify_tokens=True, layer=None, heads=None,
              encoder_attention=None, decoder_attention=None, cross_attention=None, encoder_tokens=None,
              decoder_tokens=None, include_layers=None, html_action="view"):
    """bertviz's ``head_view`` (same arguments) with the explorer's views; see the module docstring."""
    _check_action(html_action)
    reader = bertviz_reader(attention=attention, tokens=tokens, sentence_b_start=sentence_b_start,
                            prettify_tokens=prettify_tokens, encoder_attention=encoder_attention,
                            decoder_attention=decoder_attention, cross_attention=cross_attention,
                            encoder_tokens=encoder_tokens, decoder_tokens=decoder_tokens, include_layers=include_layers)
    names = next(iter(reader.first.layer_names.values()))
    layer = None if layer is None else whole(layer, "layer")
    if layer is not None and str(layer) not in names:
        raise ValueError(f"Layer {layer} is not among the layers shown ({', '.join(names)}): pick one of "
                         "include_layers.")
    index = names.index(str(layer)) if layer is not None else 0
    chosen = _heads(heads, next(iter(reader.first.parts.values())).n_heads)
    session = ShowSession(reader, None, layer=index, head=chosen[0],
                          view="layer" if len(chosen) > 1 and _small(reader) else "head")
    return _act(ShowPanel(session), html_action, "head")


def model_view(attention=None, tokens=None, sentence_b_start=None, prettify_tokens=True, display_mode="dark",
               encoder_attention=None, decoder_attention=None, cross_attention=None, encoder_tokens=None,
               decoder_tokens=None, include_layers=None, include_heads=None, html_action="view"):
    """bertviz's ``model_view`` (same arguments) with the explorer's views; see the module docstring.
    ``display_mode`` is checked, but the figures keep the explorer's one light style, so every view compares."""
    _check_action(html_action)
    choice(display_mode, "display_mode", MODES)
    reader = bertviz_reader(attention=attention, tokens=tokens, sentence_b_start=sentence_b_start,
                            prettify_tokens=prettify_tokens, encoder_attention=encoder_attention,
                            decoder_attention=decoder_attention, cross_attention=cross_attention,
                            encoder_tokens=encoder_tokens, decoder_tokens=decoder_tokens, include_layers=include_layers,
                            include_heads=include_heads)
    session = ShowSession(reader, None, view="model" if _small(reader) else "head")
    return _act(ShowPanel(session), html_action, "model")


def _small(reader) -> bool:
    """Can the grids (layer, model view) draw the first part? They draw every head: a few hundred tokens at most."""
    maps = next(iter(reader.first.parts.values()))
    return len(maps.tokens) <= GRID_TOKENS and len(maps.keys) <= GRID_TOKENS


def _heads(heads, n_heads: int) -> list[int]:
    return pick(heads, "head", n_heads, empty=[0])


def _check_action(html_action) -> None:
    choice(html_action, "html_action ('view' shows the panel, 'return' returns an HTML page)", ACTIONS)


def _act(panel: ShowPanel, html_action: str, kind: str):
    from IPython.display import HTML, display

    if html_action == "view":
        display(panel)
        return None
    return HTML(page(panel.session.reading, kind))


def page(reading, kind: str) -> str:
    """An offline HTML page of ``reading``: every part's model view, or every layer's grid of heads (head view)."""
    figures = []
    for part, maps in reading.parts.items():
        names = reading.layer_names[part]
        heads = list(reading.head_names) or [str(h) for h in range(maps.n_heads)]
        if kind == "model":
            figure = show_view.model_figure(maps, names, heads)
            figure.update_layout(title=dict(text=f"{part}: {figure.layout.title.text}"))
            figures.append(figure)
            continue
        for layer, name in enumerate(names):
            figure = pretrained_view.layer_figure(maps, layer)
            figure.update_layout(title=dict(text=f"{part}, layer {name}: every head"))
            figures.append(figure)
    return show_view.page(figures, f"attention, {kind} view", PLOTLY_JS.read_text(encoding="utf-8"))
