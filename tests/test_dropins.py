"""``explorer.head_view`` and ``explorer.model_view`` accept bertviz's own calls: each test calls bertviz with the
same arguments and checks that the explorer's panel shows the same layers, heads, tokens and weights."""

import json
import re

import bertviz
import pytest
import torch

import explorer

PART_NAMES = {None: "self-attention", "All": "all", "Sentence A -> Sentence A": "A -> A",
              "Sentence B -> Sentence B": "B -> B", "Sentence A -> Sentence B": "A -> B",
              "Sentence B -> Sentence A": "B -> A", "Encoder": "encoder", "Decoder": "decoder", "Cross": "cross"}


def layers(n_layers, heads, queries, keys=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.softmax(torch.randn(1, heads, queries, keys or queries, generator=generator), -1)
                 for _ in range(n_layers))


def bertviz_params(function, **arguments) -> dict:
    """What bertviz's own view would draw: the parameters it writes into its page."""
    page = function(**arguments, html_action="return").data
    return json.loads(re.search(r"const params = (\{.*?\}); // HACK", page, re.S).group(1))


def panel_of(function, **arguments):
    """The explorer's drop-in called with the same arguments, its panel caught instead of displayed."""
    shown = []
    import IPython.display

    original = IPython.display.display
    IPython.display.display = shown.append
    try:
        assert function(**arguments) is None  # html_action="view" displays, and returns nothing, as bertviz does
    finally:
        IPython.display.display = original
    return shown[0]


def assert_same_view(params, panel):
    """Each of bertviz's attention menus is one of the panel's parts, with the same layers, heads, tokens, weights."""
    session = panel.session
    assert list(session.reading.parts) == [PART_NAMES[entry["name"]] for entry in params["attention"]]
    for entry in params["attention"]:
        part = PART_NAMES[entry["name"]]
        session.update(part=part)
        maps = session.maps()
        assert list(maps.tokens) == entry["left_text"] and list(maps.keys) == entry["right_text"]
        assert torch.allclose(maps.weights, torch.tensor(entry["attn"]), atol=1e-6)
        shown_layers = [label for label, _ in panel.layer.options]
        assert shown_layers == [str(layer) for layer in (params["include_layers"] or range(maps.n_layers))]
    return session


CALLS = {
    "attention and tokens": dict(attention=layers(3, 2, 4), tokens=["[CLS]", "\u0120the", "cat", "[SEP]"]),
    "sentence pair": dict(attention=layers(2, 2, 5), tokens=list("abcde"), sentence_b_start=2),
    "layers, layer and heads": dict(attention=layers(4, 3, 4), tokens=list("abcd"), include_layers=[1, 3], layer=3,
                                    heads=[2]),
    "encoder-decoder": dict(encoder_attention=layers(2, 2, 4), decoder_attention=layers(2, 2, 3, seed=1),
                            cross_attention=layers(2, 2, 3, 4, seed=2), encoder_tokens=list("abcd"),
                            decoder_tokens=list("xyz")),
    "tokens left as they are": dict(attention=layers(1, 2, 3), tokens=["\u0120a", "\u2581b", "c"],
                                    prettify_tokens=False),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_head_view_shows_what_bertviz_shows(name):
    arguments = CALLS[name]
    params = bertviz_params(bertviz.head_view, **arguments)
    session = assert_same_view(params, panel_of(explorer.head_view, **arguments))
    session.update(part=next(iter(session.reading.parts)))
    if params["layer"] is not None:
        assert session.layer_name() == str(params["layer"])
    if params["heads"]:
        assert session.head == params["heads"][0]


def test_model_view_shows_what_bertviz_shows_with_chosen_heads():
    arguments = dict(attention=layers(3, 4, 5), tokens=list("abcde"), include_layers=[0, 2], include_heads=[1, 3])
    params = bertviz_params(bertviz.model_view, **arguments)
    panel = panel_of(explorer.model_view, **arguments)
    session = assert_same_view(params, panel)
    assert [label for label, _ in panel.head.options] == ["1", "3"] == [str(h) for h in params["include_heads"]]
    assert session.view == "model"
    figure = panel.main.children[0].figure
    assert len(figure.data) == 4 and figure.layout.annotations[-1].text == "L2 H3"


def test_several_heads_open_the_layer_grid_and_a_page_opens_offline():
    arguments = dict(attention=layers(2, 3, 4), tokens=list("abcd"), heads=[0, 2])
    assert panel_of(explorer.head_view, **arguments).session.view == "layer"
    page = explorer.head_view(**arguments, html_action="return").data
    assert not re.search(r"<(script|link)[^>]*(src|href)=", page) and page.count("plotly-graph-div") >= 2  # all inside
    model_page = explorer.model_view(arguments["attention"], arguments["tokens"], html_action="return").data
    assert "every layer (rows) and head (columns)" in model_page


def test_refusals_match_bertviz_and_say_why():
    attention = layers(2, 2, 3)
    for function in (bertviz.head_view, explorer.head_view):
        with pytest.raises(ValueError):
            function(attention=attention)  # no tokens
        with pytest.raises(ValueError):
            function(attention=attention, tokens=list("ab"))  # two tokens for three positions
        with pytest.raises(ValueError):
            function(attention=attention, tokens=list("abc"), include_layers=[0], layer=1)
        with pytest.raises(ValueError):
            function(attention=attention, tokens=list("abc"), html_action="show")
    with pytest.raises(ValueError, match="You gave 2 tokens, but the attention maps are over 3 positions"):
        explorer.head_view(attention=attention, tokens=list("ab"))
    with pytest.raises(ValueError, match="display_mode"):
        explorer.model_view(attention=attention, tokens=list("abc"), display_mode="neon")
