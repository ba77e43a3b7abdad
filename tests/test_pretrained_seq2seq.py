"""The Pretrained tab with an encoder-decoder: the three maps, the alignment picture, bertviz's encoder-decoder
views offline, and bad folders that keep the model and the view on screen."""

import numpy as np
import pytest
import torch

from explorer.maps import AttentionMaps
from explorer.views import seq2seq as seq2seq_view
from explorer.views.heatmaps import unique_labels
from explorer.views.bertviz import bertviz_seq2seq_page
from tests.test_script_tokens import HOSTILE
from tests.test_seq2seq import minilm_tokenizer, save_tiny

SOURCE = "the cat sat on the mat"


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("marian"), "marian", minilm_tokenizer())


@pytest.fixture
def panel(marian):
    from explorer.sessions.pretrained import PretrainedSession
    from explorer.widgets.pretrained import PretrainedPanel

    panel = PretrainedPanel(PretrainedSession(model=str(marian), text_a=SOURCE, text_b="le chat est assis"))
    panel.wait()
    return panel


def hand_cross():
    """Two written tokens over two source tokens: a sure pair, a weak line, a line too faint to draw."""
    weights = torch.tensor([[0.9, 0.1], [0.02, 0.98]])
    return AttentionMaps(tokens=["<s>", "a"], key_tokens=["x", "y"], weights=weights)


def segments(trace) -> set:
    """The (source x, written x) of each line in a trace of the alignment picture."""
    x = trace["x"]
    return {(x[i], x[i + 1]) for i in range(0, len(x), 3)}


def test_alignment_lines_follow_the_weights():
    update = seq2seq_view.alignment_update(hand_cross(), ["a", "</s>"], layer=0, head=0)
    bands = update.data[:len(seq2seq_view.LEVELS)]
    assert segments(bands[-1]) == {(0.0, 0.0), (1.0, 1.0)}  # 0.9 and 0.98: the strongest band
    assert segments(bands[0]) == {(1.0, 0.0)}  # 0.1: the faintest band; 0.02 is not drawn
    assert all(not band["x"] for band in bands[1:-1]) and not update.data[len(seq2seq_view.LEVELS)]["x"]
    source, written = update.data[-2:]
    assert source["text"] == ["x", "y"] and source["y"] == [1.0, 1.0]
    assert written["text"] == ["a", "&lt;/s&gt;"] and written["y"] == [0.0, 0.0]  # escaped: plotly reads tags
    assert written["hovertext"][0].startswith("writes a looking at x 0.90")
    chosen = seq2seq_view.alignment_update(hand_cross(), ["a", "b"], 0, 0, token=1)
    assert segments(chosen.data[len(seq2seq_view.LEVELS)]) == {(1.0, 1.0)}  # the chosen step's lines, in red
    assert segments(chosen.data[0]) == {(1.0, 0.0)} and "writes 'b'" in chosen.title


def test_panel_shows_the_three_maps_and_the_alignment(panel):
    session = panel.session
    reading = session.reading
    assert panel.status.kind == "ok" and "source tokens" in panel.status.text
    assert panel.seq2seq.outputs.layout.display is None and panel.ablation_section.layout.display == "none"
    assert panel.text_sections[1].children[0].value.startswith("<b>Target")
    head = panel.figures["head"]
    cross = reading.parts["cross"]
    assert head.x == unique_labels(cross.keys) and head.y == unique_labels(cross.tokens) and head.y[0] == "[PAD]"
    assert head.title == "cross-attention: layer 0, head 0"
    np.testing.assert_allclose(head.matrix, cross.head(0, 0).numpy(), atol=5e-4)
    for part in ("encoder", "decoder"):
        session.update(part=part, layer=1, head=3)
        panel.redraw()
        np.testing.assert_allclose(panel.figures["head"].matrix, reading.parts[part].head(1, 3).numpy(), atol=5e-4)
        assert panel.figures["head"].title.startswith(f"{part} self-attention: layer 1, head 3")
    assert panel.figures["entropy"].matrix.shape == (2, 4)
    alignment = panel.figures["alignment"].figure
    assert list(alignment.data[-1].text) == seq2seq_view.label_text(reading.translation.written)
    assert list(alignment.data[-2].text) == seq2seq_view.label_text(cross.keys)
    assert "le chat est assis" in panel.seq2seq.translation.value and "you typed" in panel.seq2seq.translation.value


def test_empty_target_shows_the_models_own_translation(panel):
    panel.text_b.value = ""
    panel.wait()
    translation = panel.session.reading.translation
    assert translation.translated and translation.target == panel.session.encoder.translate(SOURCE)
    assert "greedy translation" in panel.seq2seq.translation.value


def test_picked_target_token_outlines_its_row_and_reddens_its_lines(panel):
    session = panel.session
    session.update(token=2)
    panel.redraw()
    assert len(panel.figures["head"].outlines) == 1  # the row only: a column of the cross map is a source token
    red = panel.figures["alignment"].figure.data[len(seq2seq_view.LEVELS)]
    assert len(red.x) > 0 and "(red: the step that writes" in panel.figures["alignment"].figure.layout.title.text


def test_encoder_only_views_and_ablation_are_refused_in_words(panel):
    session = panel.session
    panel.view.value = "rollout"
    assert "drawn for encoders" in panel.status.text and session.view == "head"
    panel.toggle_ablation()
    assert "works on encoders" in panel.status.text and session.ablated == []


def test_bad_folders_keep_the_model_and_the_view(panel, tmp_path):
    session = panel.session
    before = (session.encoder, session.reading, list(panel.figures["head"].x))
    no_tokenizer = save_tiny(tmp_path / "bare", "marian")
    panel.load_model(str(no_tokenizer))
    panel.wait()
    assert "not its tokenizer" in panel.status.text and panel.status.kind == "error"
    other = save_tiny(tmp_path / "other", "marian", minilm_tokenizer(), vocab_size=1000)
    panel.load_model(str(other))
    panel.wait()
    assert "not this model's" in panel.status.text
    assert (session.encoder, session.reading, list(panel.figures["head"].x)) == before
    assert session.model == before[0].name  # the setting names the model still loaded
    assert panel.model_name.value == str(other)  # the box keeps what was typed, to be fixed


def test_an_encoder_after_an_encoder_decoder_gets_its_own_controls_back(panel):
    panel.load_model("")  # the packaged MiniLM encoder
    panel.wait()
    assert panel.session.encoder.family == "encoder" and not hasattr(panel.session.reading, "parts")
    assert panel.seq2seq.outputs.layout.display == "none" and panel.ablation_section.layout.display is None
    assert panel.text_sections[1].children[0].value == "<b>Text B (optional)</b>"
    assert panel.figures["head"].title == "layer 0, head 0" and panel.figures["head"].x[0] == "[CLS]"


def test_bertviz_encoder_decoder_views_render_offline(panel):
    for kind in ("head", "model"):
        panel.render_bertviz(kind)
        panel.wait()
        frame = panel.bertviz_frame.value
        assert "ae-bertviz-frame" in frame and 'sandbox="allow-scripts"' in frame and "cdnjs" not in frame
        assert "Cross" in frame and "Encoder" in frame and "Decoder" in frame


def test_bertviz_encoder_decoder_page_carries_tokens_as_script_safe_text():
    from explorer.views.bertviz import script_json

    n = len(HOSTILE)
    weights = torch.softmax(torch.randn(2, 2, n, n, generator=torch.Generator().manual_seed(0)), -1)
    parts = {"encoder": AttentionMaps(HOSTILE, weights), "decoder": AttentionMaps(list("abcd"), weights),
             "cross": AttentionMaps(list("abcd"), weights, key_tokens=HOSTILE)}
    page, notice = bertviz_seq2seq_page(parts, "model")
    assert "</script><script>alert(2)" not in page and not notice
    assert all(script_json(token) in page for token in HOSTILE) and "AE-SRC-" not in page and "AE-TGT-" not in page
    _, notice = bertviz_seq2seq_page(parts, "head", max_tokens=2)
    assert "first 2 tokens" in notice


def test_hostile_tokens_reach_the_alignment_as_text():
    labels = seq2seq_view.label_text(HOSTILE)
    assert not any("<" in label or ">" in label for label in labels)
    assert labels[0] == "&lt;img src=x onerror=alert(1)&gt;" and labels[3] == 'a&amp;b"c'
    html = seq2seq_view.translation_html(HOSTILE[0], HOSTILE[1], True, HOSTILE[2])
    assert "<img" not in html and "<script>" not in html and "<!--" not in html


def test_export_takes_the_attention_on_screen(panel):
    panel.session.update(part="encoder")
    assert panel.export_maps().keys == panel.session.reading.parts["encoder"].keys


def test_the_part_round_trips_through_a_link(panel):
    from explorer.sessions.pretrained import PretrainedSession

    session = panel.session
    session.update(part="decoder", layer=1, head=2, view="mean")
    other = PretrainedSession(encoder=session.encoder)
    other.load_state(session.state())
    other.wait()
    assert other.settings() == session.settings() and other.reading.parts["decoder"] is not None
