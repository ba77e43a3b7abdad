"""The pretrained encoder against transformers itself, ablation, the maths on a tiny example, and the panel."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from explorer.maps import AttentionMaps, entropy, rollout
from explorer.models.pretrained import (PretrainedEncoder, aligned_difference, align_tokens, cosine_similarity,
                                        default_model_dir, layer_change, load)
from explorer.views import bertviz as bertviz_view
from explorer.views import export
from explorer.views import pretrained as view
from explorer.views.heatmaps import outline

CORE = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def encoder() -> PretrainedEncoder:
    return load()


@pytest.fixture(scope="module")
def reference():
    """transformers' own model and tokenizer, loaded separately from the same folder."""
    from transformers import AutoModel, AutoTokenizer

    folder = default_model_dir()
    model = AutoModel.from_pretrained(folder, attn_implementation="eager", local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def reference_attentions(reference, text, text_pair=None):
    model, tokenizer = reference
    inputs = tokenizer(text, text_pair, return_tensors="pt")
    with torch.no_grad():
        output = model(**inputs, output_attentions=True)
    return torch.cat(output.attentions), tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])


@pytest.mark.parametrize("text, pair", [
    (CORE, None),
    ("Short.", None),
    ("Émilie a vu 東京 🚀 today!", None),
    ("The cat sat on the mat.", "A cat was sitting on a rug."),
])
def test_weights_equal_transformers_output_attentions(encoder, reference, text, pair):
    maps = encoder.attend(text, pair)
    assert encoder.model.config._attn_implementation == "sdpa"  # read at the SDPA calls, compared with eager here
    expected, tokens = reference_attentions(reference, text, pair)
    assert maps.weights.shape == (6, 12, len(tokens), len(tokens))
    torch.testing.assert_close(maps.weights, expected, rtol=0, atol=1e-5)  # SDPA sums in another order than eager
    assert len(maps.tokens) == len(tokens)
    assert maps.tokens[0] == "[CLS]" and maps.tokens[-1] == "[SEP]"
    specials = [int(t in ("[CLS]", "[SEP]", "[UNK]")) for t in tokens]
    assert list(maps.meta.special) == [bool(v) for v in specials] and sum(specials) >= (3 if pair else 2)
    assert maps.meta.source == "all-MiniLM-L6-v2" and maps.n_layers == 6 and maps.n_heads == 12
    if pair:
        assert maps.tokens[maps.meta.segment_b_start - 1] == "[SEP]"


def test_word_pieces_stay_readable(encoder):
    maps = encoder.attend("unbelievably tokenization")
    assert any(token.startswith("##") for token in maps.tokens)


def test_ablation_changes_only_later_layers(encoder, reference):
    plain = encoder.attend(CORE)
    ablated = encoder.attend(CORE, ablate=[(2, 3), (2, 7)])
    torch.testing.assert_close(ablated.weights[:3], plain.weights[:3], rtol=0, atol=0)
    change = layer_change(plain, ablated)
    assert change[:3].max() == 0 and bool((change[3:] > 1e-3).all())
    assert ablated.meta.ablated == ((2, 3), (2, 7))


def test_ablation_matches_zeroing_the_head_by_hand(encoder, reference):
    """Independent check: zero head 5 of layer 1 by editing the value projection's rows in a copy of the model."""
    import copy

    model, tokenizer = reference
    edited = copy.deepcopy(model)
    head_size = 384 // 12
    rows = slice(5 * head_size, 6 * head_size)
    with torch.no_grad():  # a head's output is its weights times its values: zero values -> zero output
        edited.encoder.layer[1].attention.self.value.weight[rows] = 0
        edited.encoder.layer[1].attention.self.value.bias[rows] = 0
        expected = torch.cat(edited(**tokenizer(CORE, return_tensors="pt"), output_attentions=True).attentions)
    torch.testing.assert_close(encoder.attend(CORE, ablate=[(1, 5)]).weights, expected, rtol=0, atol=1e-5)


def test_ablation_lowers_embedding_similarity(encoder):
    base = encoder.sentence_embedding(CORE)
    assert cosine_similarity(base, encoder.sentence_embedding(CORE)) == pytest.approx(1.0)
    assert cosine_similarity(base, encoder.sentence_embedding(CORE, ablate=[(0, h) for h in range(12)])) < 0.99


@pytest.mark.parametrize("ablate, words", [([(6, 0)], "Layer 6"), ([(0, 12)], "Head 12"), ([("a",)], "pair of whole numbers")])
def test_bad_ablation_is_a_clear_error(encoder, ablate, words):
    with pytest.raises(ValueError, match=words):
        encoder.attend(CORE, ablate=ablate)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_a_clear_error(encoder, text):
    with pytest.raises(ValueError, match="empty"):
        encoder.attend(text)


def test_long_text_is_truncated_with_a_notice(encoder):
    maps = encoder.attend("word " * 3000)
    assert len(maps.tokens) == 512 and maps.meta.full_length > len(maps.tokens)
    assert "3002 tokens" in maps.meta.notice and "512" in maps.meta.notice
    short = encoder.attend(CORE, max_tokens=8)
    assert len(short.tokens) == 8 and short.tokens[-1] == "[SEP]" and short.meta.notice


def test_repeated_input_comes_from_the_cache(encoder):
    assert encoder.attend("cached sentence") is encoder.attend("cached sentence")


def test_unknown_model_and_non_model_folder_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not available offline"):
        load("nobody/no-such-model-xyz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a model"):
        load(str(tmp_path))
    with pytest.raises(ValueError, match="not a folder"):
        load(str(tmp_path / "notes.txt"))


def test_local_folder_loads(encoder):
    other = load(str(default_model_dir()))
    torch.testing.assert_close(other.attend("hi there").weights, encoder.attend("hi there").weights)


def tiny_maps() -> AttentionMaps:
    """Two layers, one head, two tokens: small enough to work out by hand."""
    weights = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]], [[[0.5, 0.5], [0.0, 1.0]]]])
    return AttentionMaps(tokens=("a", "b"), weights=weights)


def test_canvas_maps_show_the_matrix_labels_and_outlines():
    maps = tiny_maps()
    shown = view.head_update(maps, 1, 0, token=1)
    np.testing.assert_allclose(shown.matrix, [[0.5, 0.5], [0.0, 1.0]])
    assert shown.x == shown.y == ["a", "b"] and shown.title == "layer 1, head 0"
    row, column = shown.outlines  # token "b": its row (what it attends to) and, dotted, its column
    assert (row["y0"], row["y1"], row["dash"]) == (0.5, 1.5, "") and (column["x0"], column["dash"]) == (0.5, "dot")
    shown = view.entropy_update(entropy(maps), 2, 1, 0)
    assert shown.x == ["H0"] and shown.y == ["L0", "L1"] and shown.outlines[0]["y0"] == 0.5
    assert set(view.CANVAS_STYLES) == {"head", "mean", "rollout", "entropy"}


def test_rollout_matches_hand_computation():
    # layer 0: 0.5 A + 0.5 I = [[1, 0], [.25, .75]]; layer 1: [[.75, .25], [0, 1]]
    # product layer1 @ layer0 = [[.75 + .0625, .1875], [.25, .75]]
    result = rollout(tiny_maps())
    torch.testing.assert_close(result[0], torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
    torch.testing.assert_close(result[1], torch.tensor([[0.8125, 0.1875], [0.25, 0.75]]))


def test_entropy_matches_hand_computation():
    # layer 0 rows: 0 and log 2 -> mean log(2)/2; layer 1 the same
    torch.testing.assert_close(entropy(tiny_maps()), torch.full((2, 1), math.log(2) / 2))


def test_difference_aligns_shared_tokens():
    a = AttentionMaps(tokens=("x", "cat", "y"), weights=torch.eye(3))
    b = AttentionMaps(tokens=("x", "dog", "cat", "y"), weights=torch.full((4, 4), 0.25))
    assert align_tokens(a.tokens, b.tokens) == ([0, 1, 2], [0, 2, 3])
    difference = aligned_difference(a, b)
    assert difference.tokens == ("x", "cat", "y")
    torch.testing.assert_close(difference.weights[0, 0], torch.full((3, 3), 1 / 3) - torch.eye(3))


def test_views_send_one_layer_with_labelled_axes(encoder):
    maps = encoder.attend(CORE)
    shown = view.head_update(maps, 4, 11, token=10)
    assert shown.x[10] == "it" and view.CANVAS_STYLES["head"]["x_title"].startswith("key")
    assert shown.matrix.shape == (16, 16) and len(shown.outlines) == 2
    np.testing.assert_allclose(shown.matrix, maps.head(4, 11).numpy(), atol=5e-4)
    assert len(view.layer_figure(maps, 2).data) == 12
    share = view.entropy_update(entropy(maps), 16, 0, 0).matrix
    assert np.all((np.asarray(share) >= 0) & (np.asarray(share) <= 1))


def test_bertviz_page_is_offline_and_capped(encoder):
    maps = encoder.attend("word " * 100)
    page, notice = bertviz_view.bertviz_page(maps, "head", layer=2, max_tokens=20)
    assert "cdnjs" not in page and "https://" not in page.split("<script>", 1)[0]
    assert "define('d3'" in page and "first 20 of 102 tokens" in notice
    model_page, _ = bertviz_view.bertviz_page(encoder.attend(CORE), "model")
    assert "cdnjs" not in model_page
    with pytest.raises(ValueError, match="Unknown bertviz view"):
        bertviz_view.bertviz_page(maps, "neuron")


def test_exports_round_trip(encoder, tmp_path):
    maps = encoder.attend(CORE)
    data = json.loads(export.maps_json(maps))
    np.testing.assert_allclose(data["weights"], maps.weights.numpy(), atol=1e-5)
    path = tmp_path / "maps.npz"
    path.write_bytes(export.maps_npz(maps))
    loaded = AttentionMaps.load_npz(path)
    assert loaded.tokens == maps.tokens and torch.equal(loaded.weights, maps.weights)
    with pytest.raises(ValueError, match="json or npz"):
        export.maps_bytes(maps, "gif")


@pytest.fixture
def panel(encoder):
    from explorer.sessions.pretrained import PretrainedSession
    from explorer.widgets.pretrained import PretrainedPanel

    panel = PretrainedPanel(PretrainedSession(encoder=encoder))
    panel.wait()
    return panel


def test_panel_draws_new_text_layer_and_head(panel):
    panel.text_a.value = "Penguins swim quickly"
    panel.wait()
    panel.layer.value, panel.head.value = 5, 5
    panel.redraw()
    figure = panel.figures["head"]
    assert figure.x == figure.y == ["[CLS]", "penguins", "swim", "quickly", "[SEP]"]
    assert figure.title == "layer 5, head 5"
    np.testing.assert_allclose(figure.matrix, panel.session.reading.maps.head(5, 5).numpy(), atol=5e-4)
    entropy = panel.figures["entropy"]
    assert entropy.outlines == [outline(4.5, 5.5, 4.5, 5.5, width=3)]  # the head on screen
    assert entropy.x[5] == "H5" and entropy.y[5] == "L5"


def test_panel_bad_input_keeps_the_view(panel):
    session = panel.session
    before = list(panel.figures["head"].x)
    panel.text_a.value = "  "
    panel.wait()
    assert panel.status.kind == "error" and "empty" in panel.status.text
    assert panel.figures["head"].x == before
    panel._guarded(session.select_head, 7, 0)
    assert "Layer 7 does not exist" in panel.status.text and panel.layer.value == session.layer < 6
    with pytest.raises(ValueError, match="no preset called"):
        session.apply_preset("nope")
    panel.load_model("nobody/no-such-model-xyz")
    panel.wait()
    assert "not available offline" in panel.status.text and session.encoder.name == "all-MiniLM-L6-v2"
    assert session.model == ""  # the setting names the model that is still loaded
    assert panel.model_name.value == "nobody/no-such-model-xyz"  # the box keeps the typed name, to be fixed


def test_panel_token_click_highlights_and_lock_keeps_it(panel):
    session = panel.session
    session.apply_preset("coreference")
    panel.wait()
    it = session.reading.maps.tokens.index("it")
    assert session.token == it and len(panel.figures["head"].outlines) == 2
    focus = panel.figures["focus"]
    np.testing.assert_allclose(focus.data[0].y, session.reading.maps.head(3, 1)[it].numpy(), atol=5e-4)
    panel.lock.value = True
    session.select_token(2)
    assert session.token == it
    panel.text_a.value = "Yesterday it rained."
    panel.wait()
    assert session.reading.maps.tokens[session.token] == "it"
    panel.lock.value = False
    session.select_token(1)
    assert session.token == 1


def test_token_focus_is_hidden_until_a_token_is_picked(panel):
    session = panel.session
    panel.text_a.value = "Penguins swim quickly."
    panel.wait()
    assert session.token == -1 and panel.focus_column.layout.display == "none"
    session.select_token(2)
    panel.redraw_soon.flush()
    focus = panel.figures["focus"]
    assert panel.focus_column.layout.display is None and panel.focus_box.children == (focus,)
    np.testing.assert_allclose(focus.data[0].y, session.reading.maps.head(session.layer, session.head)[2].numpy(),
                               atol=5e-4)


def test_panel_ablation_shows_its_effect(panel):
    session = panel.session
    panel.layer.value, panel.head.value = 2, 4
    panel.ablate_button.click()
    panel.wait()
    assert session.ablated == [[2, 4]] and session.reading.cosine < 1.0
    assert session.reading.change[:3].max() == 0 and session.reading.change[3:].max() > 0
    assert "L2H4" in panel.figures["ablation"].figure.layout.title.text
    assert panel.ablate_button.description == "restore this head"
    panel.clear_ablation.click()
    panel.wait()
    assert session.reading.change is None and panel.ablation_column.layout.display == "none"


def test_panel_compares_two_texts(panel):
    panel.session.apply_preset("compare two texts")
    panel.wait()
    figure = panel.figures["compare"]
    assert len(figure.data) == 3 and "big" in list(figure.data[0].x) and "small" in list(figure.data[1].x)
    assert "big" not in list(figure.data[2].x) and "it" in list(figure.data[2].x)


def test_a_preset_chosen_while_the_model_loads_keeps_its_head():
    from explorer.sessions.pretrained import PretrainedSession
    from explorer.widgets.pretrained import PretrainedPanel

    panel = PretrainedPanel(PretrainedSession(preset="coreference"))  # as a link does: the model is still loading
    panel.wait(120)
    assert (panel.layer.value, panel.head.value) == (3, 1)
    assert panel.figures["head"].title == "layer 3, head 1"


def test_panel_cell_click_selects_the_token(panel):
    panel.text_a.value = "Penguins swim quickly"
    panel.wait()
    panel.figures["head"].click(2, 0)  # the row of "swim"
    panel.redraw_soon.flush()
    assert panel.session.token == 2 and panel.token_pick.value == 2
    rows = [(o["y0"], o["y1"]) for o in panel.figures["head"].outlines]
    assert (1.5, 2.5) in rows  # the row of "swim" is outlined


def test_panel_entropy_click_opens_that_head(panel):
    panel.view.value = "layer"
    panel.figures["entropy"].click(4, 9)  # what a click in the page on L4 / H9 sends
    assert (panel.layer.value, panel.head.value, panel.view.value) == (4, 9, "head")


def test_panel_other_views_and_bertviz(panel):
    for name in ("layer", "mean", "rollout"):
        panel.view.value = name
        panel.redraw()
        assert panel.main.children[0] is panel.figures[name]
    panel.render_bertviz("model")
    panel.wait()
    assert "ae-bertviz-frame" in panel.bertviz_frame.value and "cdnjs" not in panel.bertviz_frame.value
    sent = []
    panel.export_bar.downloader.send = lambda content, buffers=None: sent.append((content, buffers))
    panel.export_bar.target.value, panel.export_bar.format.value = "attention maps", "npz"
    panel.export_bar.export()
    assert sent[-1][0]["filename"] == "pretrained-attention-maps.npz" and sent[-1][1][0][:2] == b"PK"
    panel.export_bar.target.value, panel.export_bar.format.value = "figure on screen", "svg"
    panel.export_bar.export()
    assert sent[-1][0] == {"event": "image", "target": "ae-pretrained-main", "format": "svg",
                           "filename": "pretrained-figure-on-screen"}


def test_link_opens_the_tab_with_a_preset(encoder):
    from explorer.app import build_app

    app = build_app(pretrained={"encoder": encoder})
    app.apply_link("tab=pretrained&preset=subject-verb%20agreement")
    panel, session = app.panels["pretrained"], app.sessions["pretrained"]
    assert app.tab.titles[app.tab.selected_index] == "Pretrained"
    assert "keys" in session.reading.maps.tokens and session.reading.maps.tokens[session.token] == "are"
    assert panel.preset.value == "subject-verb agreement"  # the menu names what the link opened


def test_the_view_round_trips_through_a_link(encoder):
    from explorer.app import build_app

    app = build_app(pretrained={"encoder": encoder})
    app.wait("pretrained")
    session = app.sessions["pretrained"]
    session.update(preset="compare two texts")
    session.wait()
    session.update(layer=4, head=7, ablated=[[1, 2]], token=3, lock=True)
    session.wait()
    other = build_app(pretrained={"encoder": encoder})
    other.apply_link(app.link("pretrained"))
    assert other.sessions["pretrained"].settings() == session.settings()
    assert other.sessions["pretrained"].reading.maps.meta.ablated == ((1, 2),)


def test_views_mark_ablated_heads(encoder):
    maps = encoder.attend(CORE, ablate=[(2, 3)])
    assert "output zeroed" in view.head_update(maps, 2, 3).title
    assert "output zeroed" not in view.head_update(maps, 2, 4).title
    assert view.layer_figure(maps, 2).layout.annotations[3].text == "head 3 (ablated)"


@pytest.mark.parametrize("kind", ["distilbert", "roberta", "mpnet"])
def test_other_bert_like_folders_load_and_ablate(encoder, tmp_path, kind):
    """A small random DistilBERT, RoBERTa or MPNet saved to a folder: same weights as transformers, ablation works.
    MPNet has no SDPA attention in transformers, so it is read eagerly, through output_attentions."""
    from transformers import AutoModel, DistilBertConfig, DistilBertModel, MPNetConfig, MPNetModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    if kind == "distilbert":
        model = DistilBertModel(DistilBertConfig(dim=32, n_layers=3, n_heads=4, hidden_dim=64))
    elif kind == "mpnet":
        model = MPNetModel(MPNetConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                       intermediate_size=64, vocab_size=30527))
    else:
        model = RobertaModel(RobertaConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                           intermediate_size=64, vocab_size=30522))
    model.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    other = load(str(tmp_path))
    assert other.model.config._attn_implementation == ("eager" if kind == "mpnet" else "sdpa")
    inputs = encoder.tokenizer("hello there world", return_tensors="pt")
    reference_model = AutoModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = torch.cat(reference_model(**inputs, output_attentions=True).attentions)
    torch.testing.assert_close(other.attend("hello there world").weights, expected, rtol=0, atol=1e-5)
    change = layer_change(other.attend("hello there world"), other.attend("hello there world", ablate=[(1, 2)]))
    assert change[:2].max() == 0 and change[2] > 0


def test_large_exports_keep_to_the_layer_on_screen(encoder):
    maps = encoder.attend(CORE)
    assert export.export_scope(maps, 2)[0] is maps
    one, scope = export.export_scope(maps, 2, limit=1000)
    assert one.n_layers == 1 and torch.equal(one.weights[0], maps.weights[2]) and "layer 2 only" in scope


def test_the_token_bars_follow_the_map_on_screen_and_name_it(panel):
    session = panel.session
    session.apply_preset("coreference")
    panel.wait()
    it, maps = session.token, session.reading.maps
    session.update(view="mean")
    panel.redraw_soon.flush()
    focus = panel.figures["focus"].figure
    np.testing.assert_allclose(focus.data[0].y, maps.mean_over_heads(3)[it].numpy(), atol=5e-4)
    assert "layer 3, mean over 12 heads" in focus.layout.title.text
    session.update(view="rollout")
    panel.redraw_soon.flush()
    focus = panel.figures["focus"].figure
    np.testing.assert_allclose(focus.data[1].y, session.reading.rollout[3][:, it].numpy(), atol=5e-4)
    assert "rollout through layer 3" in focus.layout.title.text
    assert "rollout through layer 3" in panel.focus_words.value


def test_the_token_menu_names_a_repeated_token_as_the_axes_do(panel):
    panel.text_a.value = "the cat saw the dog"
    panel.wait()
    labels = [label for label, _ in panel.token_pick.options]
    assert "4: the·2" in labels and "1: the" in labels
    assert "the·2" in panel.figures["head"].x and "·2" in panel.main_words.value


def test_a_click_on_a_small_multiple_opens_that_head_large(panel):
    panel.view.value = "layer"
    panel.wait()
    panel.figures["layer"].click(7, {"index": [0, 0]})
    panel.redraw_soon.flush()
    assert (panel.session.view, panel.session.head) == ("head", 7)
    assert panel.figures["head"].title == "layer 0, head 7"


def test_a_model_that_cannot_load_keeps_the_typed_name_and_says_why(panel):
    encoder = panel.session.encoder
    panel.model_name.value = "bert-base-uncased-typo"  # Enter (or leaving the box)
    panel.wait()
    assert panel.session.status_kind == "error" and "bert-base-uncased-typo" in panel.session.status
    assert panel.model_name.value == "bert-base-uncased-typo" and panel.session.encoder is encoder
    assert panel.session.model == ""  # the setting (and a link) names the model still loaded
    panel.load_button.click()  # Load again with the same typo: the same message, the text still there
    panel.wait()
    assert panel.session.status_kind == "error" and panel.model_name.value == "bert-base-uncased-typo"


def test_the_ablation_axis_follows_the_change_and_says_the_numbers():
    change = np.array([0.0, 0.0, 0.0003, 0.0001])
    update = view.ablation_update(change, 0.99999, [(1, 2)])
    top = update.layout["yaxis"]["range"][1]
    assert 0.0003 < top < 0.001 and update.data[0]["text"][2] == "0.0003"


def test_maps_of_an_older_text_are_greyed_while_the_new_one_is_read(panel):
    session = panel.session
    assert panel.figures["head"].stale == ""
    with session.hold_trait_notifications():  # the text changed, its reading not in yet
        session._read_texts = ("another text", "", "pair")
    panel.redraw()
    assert "Out of date" in panel.figures["head"].stale and "Out of date" in panel.figures["entropy"].stale
