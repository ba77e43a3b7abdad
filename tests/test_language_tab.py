"""The Language model tab's session from plain Python, on a tiny random GPT-2."""

import pytest
import torch

from explorer.models import language
from explorer.sessions.language import LanguageSession
from tests.conftest import eager_attentions
from tests.test_language import tiny_gpt2  # noqa: F401  (the fixture)


@pytest.fixture
def session(tiny_gpt2):  # noqa: F811
    return LanguageSession(language_model=language.load(tiny_gpt2), prompt="the cat sat on the mat", max_new_tokens=4)


def test_generate_streams_tokens_and_ends_with_maps(session):
    arrived = []
    session.observe(lambda change: arrived.append(change["new"]), "streamed")
    session.generate()
    assert session.wait()
    generation = session.generation
    assert sum(generation.generated) == 4
    assert len(arrived) == 4 and arrived[-1] == "".join(t for t, g in zip(generation.tokens, generation.generated) if g)
    model = session.language_model
    ids = list(generation.ids)
    reference = eager_attentions(model.model, ids)  # the text the streaming steps wrote, read in one eager pass
    assert torch.allclose(session.maps().weights, reference, atol=1e-6)
    assert len(session.candidates()) == 5


def test_head_switch_does_not_rerun_the_model(session):
    session.generate()
    assert session.wait()
    runs, maps = session.runs, session.maps()
    session.select_head(1, 3)
    session.update(view="layer", token=2)
    assert session.wait()
    assert session.runs == runs and session.maps() is maps
    assert (session.layer, session.head, session.token) == (1, 3, 2)
    assert session.candidates() == maps.meta.next_tokens[2]


def test_link_round_trip_keeps_settings(session, tiny_gpt2):  # noqa: F811
    session.update(prompt="a b c", max_new_tokens=7, temperature=0.5, seed=3, layer=1, head=2, view="layer",
                   ablated=[[1, 0]])
    other = LanguageSession(language_model=session.language_model)
    assert other.load_state(session.state()) == []
    assert other.settings() == session.settings()


@pytest.mark.parametrize("changes, words", [
    (dict(prompt="   "), "empty"), (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(max_new_tokens=-2), "max_new_tokens"), (dict(max_new_tokens=10**6), "max_new_tokens"),
    (dict(temperature=-0.1), "temperature"), (dict(layer=2), "Layer 2"), (dict(head=4), "Head 4"),
    (dict(view="rollout"), "view"), (dict(ablated=[[0, 9]]), "Head 9"), (dict(preset="nope"), "preset")])
def test_bad_inputs_are_refused_and_the_view_is_kept(session, changes, words):
    session.generate()
    assert session.wait()
    before, generation = session.settings(), session.generation
    with pytest.raises(ValueError, match=words):
        session.update(**changes)
    assert session.settings() == before and session.generation is generation


def test_generate_twice_is_refused(session):
    session.generate()
    with pytest.raises(ValueError, match="already running"):
        session.generate()
    assert session.wait() and session.generation is not None


def test_encoder_folder_is_refused_and_the_model_kept(session):
    from explorer.models import pretrained

    model = session.language_model
    session.update(model=str(pretrained.default_model_dir()))
    assert session.wait()
    assert session.language_model is model and session.model == "" and session.status_kind == "error"
    assert "Pretrained tab" in session.status


def test_induction_preset_runs_finds_and_opens_its_head(session):
    session.update(layer=1, head=3)
    session.apply_preset("induction heads")  # sets the repeated prompt, generates, finds the heads, opens the top one
    assert session.wait()
    assert session.generation is not None and sum(session.generation.generated) == 1  # the preset's one token
    assert (session.layer, session.head) == session.probe["top"][0] and "induction head is layer" in session.status
    assert not session.out_of_date()
    session.update(ablated=[[1, 1]])
    assert session.out_of_date()  # the maps on screen were made without that ablation
    session.find_heads()
    assert session.wait()
    probe = session.probe
    assert probe["induction"].shape == (2, 4) and len(probe["top"]) == 3
    assert "[(" not in session.status and "layer" in session.status  # heads in words, not Python tuples
    from explorer.heads import second_copy_loss

    assert probe["ablated_loss"] == pytest.approx(second_copy_loss(session.language_model, probe["top"], 20, 0))
    assert probe["loss"] == pytest.approx(second_copy_loss(session.language_model, (), 20, 0))
    assert probe["chosen_loss"] == pytest.approx(second_copy_loss(session.language_model, [(1, 1)], 20, 0))


def test_panel_streams_text_and_a_head_change_reaches_the_map(session):
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    panel.generate_button.click()
    panel.wait()
    assert session.streamed and session.streamed in panel.text.value
    maps = session.maps()
    first = panel.head_view.matrix.copy()
    assert first.shape == (len(maps.tokens),) * 2
    panel.head.value = 2
    panel.wait()
    assert session.head == 2 and session.runs == 1
    assert abs(panel.head_view.matrix - maps.head(0, 2).numpy()).max() < 1e-3
    panel.finder_view.click(1, 3)
    panel.wait()
    assert (session.layer, session.head) == (1, 3) and panel.layer.value == 1
    assert "expects" in panel.candidates.value


def test_panel_refuses_a_bad_count_and_puts_the_control_back(session):
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    panel.max_new_tokens.value = 0
    assert session.max_new_tokens == 4 and panel.max_new_tokens.value == 4
    assert "max_new_tokens" in panel.status.text


def test_long_maps_are_pooled_to_at_most_512_cells():
    from explorer.maps import AttentionMaps
    from explorer.views.language import head_map

    weights = torch.softmax(torch.randn(1, 1, 1100, 1100), dim=-1)
    update = head_map(AttentionMaps(tokens=[str(i) for i in range(1100)], weights=weights), 0, 0)
    assert update.matrix.shape == (367, 367)  # blocks of 3 tokens
    assert update.matrix[0, 0] == pytest.approx(float(weights[0, 0, :3, :3].mean()), abs=1e-3)


def test_a_pooled_map_is_coloured_to_where_its_weight_is():
    from explorer.maps import AttentionMaps
    from explorer.views.language import head_map

    weights = torch.softmax(torch.randn(1, 1, 1100, 1100), dim=-1)  # a block's mean is about 1/1100
    pooled = head_map(AttentionMaps(tokens=[str(i) for i in range(1100)], weights=weights), 0, 0)
    blocks = weights[0, 0, :1098].reshape(366, 3, 1100)[:, :, :1098].reshape(366, 3, 366, 3).mean(dim=(1, 3))
    lower = blocks[torch.tril_indices(366, 366).unbind()]  # the full 3 x 3 blocks, averaged by hand
    assert pooled.zmax == pytest.approx(float(lower.quantile(0.995)), rel=0.05)
    assert pooled.zmax < 0.05 and "colour to" in pooled.title
    short = head_map(AttentionMaps(tokens=list("abcd"), weights=torch.eye(4)[None, None]), 0, 0)
    assert short.zmax == 1.0


@pytest.mark.parametrize("long", [False, True])
def test_bertviz_head_view_of_the_first_tokens_offline(session, long):
    import html
    import json
    import re

    from explorer.widgets.language import LanguagePanel

    if long:
        session.language_model.full_maps_bytes = 0  # the maps come as LazyAttentionMaps, worked out when shown
    session.update(prompt="the cat sat on the mat " * 20, max_new_tokens=1)
    panel = LanguagePanel(session)
    session.generate()
    panel.wait()
    panel.render_bertviz()
    panel.wait()
    frame = panel.bertviz_box.frame.value
    assert "ae-bertviz-frame" in frame and "cdnjs" not in frame and len(session.maps().tokens) == 64  # the cap
    page = html.unescape(frame)
    attention = json.loads(re.search(r'"attn": (\[.*?\]\]\]\])', page).group(1))  # [layers, heads, 64, 64]
    maps = session.maps()
    expected = torch.stack([maps.layer(layer)[:, :64, :64] for layer in range(maps.n_layers)])
    assert torch.allclose(torch.tensor(attention), expected, atol=1e-4)
    assert session.status_kind == "ok" and "bertviz" in session.status


def test_a_click_on_a_pooled_map_zooms_into_that_region_and_sends_only_it(tmp_path):
    from explorer.views.language import MAX_CELLS, ZOOM
    from explorer.widgets.language import LanguagePanel
    from tests.conftest import save_tiny_gpt2

    model = language.load(save_tiny_gpt2(tmp_path, n_positions=1100))
    model.full_maps_bytes = 0  # long maps, worked out where they are shown
    session = LanguageSession(language_model=model, prompt="the cat sat on the mat " * 175, max_new_tokens=1)
    panel = LanguagePanel(session)
    session.generate()
    panel.wait()
    maps = session.maps()
    n = len(maps.tokens)
    assert n > MAX_CELLS and panel.head_view.shape[0] <= MAX_CELLS  # pooled
    assert panel.unzoom.layout.display == "none"  # nothing to go back to yet
    panel.head_view.click(100, 0)  # a block in the middle
    panel.redraw_soon.flush()
    size = -(-n // MAX_CELLS)
    start = max(0, min(100 * size + size // 2 - ZOOM // 2, n - ZOOM))
    assert session.zoom == start
    assert panel.head_view.shape == [ZOOM, ZOOM]
    assert torch.allclose(torch.from_numpy(panel.head_view.matrix), maps.head(0, 0)[start:start + ZOOM, start:start + ZOOM],
                          atol=1e-3)
    assert len(panel.head_view.z) == ZOOM * ZOOM * 4  # only the region travels
    assert panel.unzoom.layout.display is None
    panel.head_view.click(5, 0)  # now a click picks that token
    assert session.token == start + 5
    session.zoom_to(None, 0)
    panel.redraw_soon.flush()
    assert panel.head_view.shape[0] <= MAX_CELLS and session.zoom == -1 and panel.unzoom.layout.display == "none"


def test_before_generate_the_views_say_what_will_appear(session):
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    assert panel.head_view.shape == [0, 0] and "Generate" in panel.head_view.empty_text
    assert panel.finder_view.shape == [0, 0] and "head finder" in panel.finder_view.empty_text


def test_a_head_the_probe_found_is_shown_on_its_probe_and_back_on_the_text(session):
    from explorer.heads import repeated_tokens
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    panel.generate_button.click()
    panel.wait()
    session.find_heads()
    panel.wait()
    assert panel.score.value == "induction"
    layer, head = session.probe["top"][0]
    panel.finder_view.click(layer, head)
    panel.wait()
    ids = repeated_tokens(session.language_model, 20, 0)
    assert session.on_probe and panel.head_view.shape == [len(ids), len(ids)]
    reference = session.language_model.attend_ids(ids).head(layer, head).numpy()
    assert abs(panel.head_view.matrix - reference).max() < 1e-3
    assert "induction probe" in panel.head_view.title and "stripe" in panel.main_words.value
    assert panel.on_probe.description == "show on your text"
    session.select_token(30)  # the candidates follow the map on screen: the probe's position 30
    panel.wait()
    assert session.candidates() == session.probe["maps"].meta.next_tokens[30]
    panel.on_probe.value = False
    panel.wait()
    assert panel.head_view.shape == [len(session.generation.tokens)] * 2 and session.token == -1


def test_maps_of_an_older_prompt_are_greyed_and_the_token_menu_matches_the_axes(session):
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    panel.generate_button.click()
    panel.wait()
    assert panel.head_view.stale == ""
    labels = [label for label, _ in panel.token_pick.options]
    assert any("the·2" in label for label in labels)  # "the cat sat on the mat": as the axis says
    panel.prompt.value = "a new prompt"
    panel.wait()
    assert "Out of date" in panel.head_view.stale and "Generate" in panel.head_view.stale
    panel.generate_button.click()
    panel.wait()
    assert panel.head_view.stale == ""


def test_writing_counts_its_tokens_in_the_status_and_on_the_bar(session):
    from explorer.widgets.language import LanguagePanel

    panel = LanguagePanel(session)
    statuses, progress = [], []
    session.observe(lambda change: statuses.append(change["new"]), "status")
    session.observe(lambda change: progress.append(change["new"]), "progress")
    session.generate()
    panel.wait()
    assert [s for s in statuses if s.startswith("Writing")] == [f"Writing token {k} of 4…" for k in (1, 2, 3)]
    assert any(s.startswith("All 4 tokens written") for s in statuses)
    assert [p for p in progress if p > 0][:4] == [0.25, 0.5, 0.75, 1.0] and progress[-1] == 1.0
    assert panel.progress.layout.visibility == "hidden"


def test_a_stop_during_the_head_scores_keeps_the_previous_view(session, monkeypatch):
    from explorer.sessions import language as language_session

    session.generate()
    assert session.wait()
    before, score = session.generation, language_session.head_scores

    def stopped(maps, progress=None, stop=None):  # Stop pressed once the text is written, before the scoring
        session.language_model.stop()
        return score(maps, progress, stop)

    monkeypatch.setattr(language_session, "head_scores", stopped)
    session.update(prompt="a new prompt")
    session.generate()
    assert session.wait()
    assert session.generation is before and session.status_kind == "error"
    assert "not scored" in session.status and "previous view" in session.status


def test_a_long_read_shows_its_progress_layer_by_layer(tmp_path):
    from explorer.sessions.language import LONG_READ_TOKENS
    from explorer.widgets.language import LanguagePanel
    from tests.conftest import save_tiny_gpt2

    model = language.load(save_tiny_gpt2(tmp_path, n_positions=1200))
    panel = LanguagePanel(LanguageSession(language_model=model, prompt="the cat sat on the mat " * 180,
                                          max_new_tokens=2))
    statuses, shown = [], []
    panel.session.observe(lambda change: statuses.append(change["new"]), "status")
    panel.progress.layout.observe(lambda change: shown.append(change["new"]), "visibility")
    panel.session.generate()
    panel.wait()
    n = len(model.encode(panel.session.prompt)[0])
    assert n >= LONG_READ_TOKENS
    assert f"Reading {n:,} tokens: layer 1 of 2. Stop keeps the previous view." in statuses
    assert any(s.startswith("Scoring every head for the head finder: layer") for s in statuses)
    assert shown[0] == "visible" and shown[-1] == "hidden" and panel.session.progress == 1.0
    assert panel.status.kind == "ok"
