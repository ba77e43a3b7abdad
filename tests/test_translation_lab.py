"""The Train a Transformer panel on translation: dates train live, alignment is scored, typed text is decoded."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from explorer.attention import AdditiveScore
from explorer.sessions.transformer_lab import TransformerLabSession
from explorer.widgets.transformer_lab import TransformerLabPanel
from tests.test_transformer_lab import drawn_heads as drawn
from tests.test_transformer_lab import train


@pytest.fixture
def panel():
    panel = TransformerLabPanel()
    panel.apply_preset("dates into ISO form")
    panel.wait()
    yield panel
    panel.session.stop_work()




def test_dates_train_live_with_cross_attention_exact_match_and_alignment_per_head(panel):
    assert panel.arch["kind"].value == "encoder-decoder" and panel.arch["length"].disabled
    trainer = panel.runs[0].trainer
    first = trainer.snapshots[0]
    assert first.maps.meta.kind == "cross-attention" and len(first.maps.tokens) == 11  # yyyy-mm-dd and <end>
    assert "<pad>" not in first.maps.keys and "".join(first.maps.keys).replace("␣", " ") == trainer.data["test"][0]["source"]
    before = drawn(panel)
    train(panel, 30)
    assert drawn(panel) != before and drawn(panel)[0] == trainer.snapshots[-1].maps.weights[0, 0].tolist()
    newest = trainer.snapshots[-1]
    assert len(newest.alignment) == 2 and len(newest.alignment[0]) == 4
    titles = [a.text for a in panel.monitor.grid_views[0].figure.layout.annotations][:8]
    assert sum(t.startswith("★") for t in titles) == 1 and f"L0 H0 · align {newest.alignment[0][0]:.2f}" in titles[0]
    table = panel.monitor.alignment_views[0].value
    assert "exact match" in table and table.count("ae-best-head") == 1
    curve = panel.monitor.translation_curves.figure.data
    assert list(curve[0].x) == [s.step for s in trainer.snapshots] and curve[1].y[-1] == pytest.approx(max(map(max, newest.alignment)))
    panel.monitor.timeline.value = 0  # the timeline scrubs the map and its scores back to the start
    assert drawn(panel) == before and "exact match 0%" in panel.monitor.alignment_views[0].value


def test_the_cross_attention_score_is_a_setting_with_a_control_and_a_link():
    session = TransformerLabSession(task="dates", score="additive")
    session.wait()
    attention = session.runs[0].trainer.model.decoder[0].cross_attention
    assert attention.score == "additive" and isinstance(attention.scorers[0], AdditiveScore)
    copy = TransformerLabSession()
    copy.load_state(session.state())
    copy.wait()
    assert copy.score == "additive" and copy.runs[0].trainer.model.config.cross_score == "additive"
    with pytest.raises(ValueError, match="Unknown cross-attention score 'cosine'. Choose one of: dot"):
        session.update(score="cosine")
    session.stop_work()
    copy.stop_work()


def test_dot_product_against_additive_trains_both_on_the_same_dates(panel):
    panel.apply_preset("dates: dot-product vs additive (Bahdanau)")
    panel.wait()
    a, b = panel.runs
    assert a.name == "A: 4 heads, scaled_dot" and b.name == "B: 4 heads, additive"
    assert b.trainer.model.decoder[1].cross_attention.score == "additive" and a.trainer.data is b.trainer.data
    train(panel, 10)
    assert len(a.trainer.history) == len(b.trainer.history) == 10 and len(panel.monitor.alignment_views) == 2
    assert "B: 4 heads, additive" in panel.monitor.translation_curves.figure.data[3].name


TYPED = [("32 March", "not a date the generator writes"), ("yesterday", "not a date the generator writes"),
         ("", "Nothing was typed"), ("7" * 500, "reads only the first 32"), ("3 märz 2021", "never seen 'ä'"),
         ("3 March 2021", "2021-03-03")]


def test_any_typed_text_gets_the_models_output_and_a_notice(panel):
    train(panel, 5)
    model = panel.runs[0].trainer.model
    for text, notice in TYPED:
        panel.translator.typed.value = text
        panel.translator.translate()
        result = panel.session.translation
        assert panel.status.kind == "ok" and result.target in panel.translator.output.value.replace("&#x27;", "'")
        assert notice in panel.session.translation_notice
        assert panel.runs[0].trainer.model is model and panel.runs[0].trainer.step == 5
        if text:
            assert result.cross.weights.shape[2:] == (len(result.cross.tokens), min(len(text), 32))
            assert list(result.written) == list(result.cross.tokens)  # the one Translation: a row per written token
            assert len(panel.translator.maps.figure.data) == 8
        else:
            assert result.cross is None and panel.translator.figures.children == ()


def test_translating_needs_a_translation_task(panel):
    panel.apply_preset("reverse with 2 layers and 4 heads")
    panel.wait()
    panel.translator.translate()
    assert panel.status.kind == "error" and "translation task" in panel.status.text
    panel.arch["kind"].value = "encoder"
    panel.arch["task"].value = "numbers"
    panel.wait()
    assert panel.arch["kind"].value == "encoder-decoder"  # a translation task brings the encoder-decoder


def upload(panel, name, content: bytes):
    panel.upload.value = ({"name": name, "type": "text/plain", "size": len(content), "content": memoryview(content),
                           "last_modified": datetime.datetime(2026, 1, 1)},)
    panel.wait()


def test_a_pairs_file_becomes_a_translation_and_bad_ones_are_explained(panel):
    model = panel.runs[0].trainer.model
    upload(panel, "bad.tsv", b"only one column\nand another\n")
    assert "line 1 has one column" in panel.status.text and panel.runs[0].trainer.model is model
    upload(panel, "big.tsv", b"a\tb\n" * 2_600_000)
    assert "10.4 MB" in panel.status.text and panel.arch["task"].value == "dates"
    upload(panel, "colours.tsv", "".join(f"{w}\t{w[::-1]}\n" for w in ("red", "green", "blue", "black", "white", "pink")
                                         for _ in range(3)).encode())
    assert panel.arch["task"].value == "pairs: colours.tsv" and panel.runs[0].trainer.model is not model
    train(panel, 5)
    panel.translator.typed.value = "red"
    panel.translator.translate()
    assert "The right answer is der" in panel.session.translation_notice or "Right: der" in panel.session.translation_notice
    assert "no known alignment" in panel.monitor.alignment_views[0].value


def test_save_and_load_keep_the_cross_attention_score(panel, tmp_path):
    panel.arch["score"].value = "additive"
    panel.wait()
    train(panel, 3)
    panel.path.value = str(tmp_path / "dates")
    panel.save()
    panel.arch["score"].value = "dot"
    panel.wait()
    panel.load()
    assert "Loaded" in panel.status.text and panel.arch["score"].value == "additive"
    assert panel.runs[0].trainer.model.config.cross_score == "additive" and panel.runs[0].trainer.step == 3


def test_a_right_answer_is_said_in_green_and_a_wrong_one_in_amber(panel):
    from explorer.maps import Translation
    from explorer.sessions.translating import notice
    from explorer.widgets.controls import STATUS_STYLES

    train(panel, 5)
    data = panel.runs[0].trainer.data
    right = Translation(source="3 March 2021", target="2021-03-03")
    assert notice("dates", "3 March 2021", right, data) == ("Right: 2021-03-03.", "ok")
    wrong = Translation(source="3 March 2021", target="2021-03-04")
    assert notice("dates", "3 March 2021", wrong, data)[1] == "warning"
    assert notice("dates", "yesterday", wrong, data)[1] == "info"  # nothing to compare with
    panel.translator.typed.value = "3 March 2021"
    panel.translator.translate()
    session = panel.session
    session.translation_notice, session.translation_kind = "Right: 2021-03-03.", "ok"
    panel.translator.show()
    assert STATUS_STYLES["ok"] in panel.translator.output.value and "ae-status-ok" in panel.translator.output.value


def test_a_head_of_the_translation_grid_opens_large_and_follows_the_next_translation(panel):
    train(panel, 5)
    panel.translator.typed.value = "3 March 2021"
    panel.translator.translate()
    panel.translator.maps.click(5, {"index": [0, 0]})  # layer 1, head 1 of a 2 x 4 grid
    cross = panel.session.translation.cross
    large = panel.translator.large
    assert large.layout.display is None and "layer 1, head 1" in large.map.title
    assert np.allclose(large.map.matrix, cross.head(1, 1).numpy(), atol=1e-3)
    panel.translator.typed.value = "4 May 1999"
    panel.translator.translate()
    assert np.allclose(large.map.matrix, panel.session.translation.cross.head(1, 1).numpy(), atol=1e-3)
