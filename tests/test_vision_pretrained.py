"""The Vision tab's pretrained ViT section, driven from Python: a tiny random HF ViT saved to a temporary folder."""

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import links
from explorer.models.pretrained import default_model_dir
from explorer.sessions.vision import VisionSession
from explorer.sessions.vision_pretrained import YOUR_IMAGE, gallery_array
from tests.test_pretrained_vision import reference, save_tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def session(folder):
    session = VisionSession(n_train=300, n_test=100)
    session.update(vit_folder=str(folder), pretrained_image=1)
    session.load_pretrained()
    assert session.wait(120) and session.status_kind == "ok", session.status
    return session


def hand_rollout(weights: np.ndarray) -> np.ndarray:
    """[L, heads, T, T] -> [L, T, T]: 0.5 A + 0.5 I per layer (heads averaged), rows renormalised, multiplied up."""
    joint, out = np.eye(weights.shape[-1]), []
    for layer in weights.mean(axis=1):
        a = 0.5 * layer + 0.5 * np.eye(len(layer))
        joint = (a / a.sum(axis=1, keepdims=True)) @ joint
        out.append(joint)
    return np.stack(out)


def upsampled(row: np.ndarray) -> np.ndarray:
    """A CLS row over the 4 x 4 patches (patch size 8) as a 32 x 32 map scaled to a maximum of 1."""
    picture = np.kron(row.reshape(4, 4), np.ones((8, 8)))
    return picture / picture.max()


def test_the_maps_shown_equal_transformers_output_attentions(session, folder):
    view = session.pretrained_view
    image = Image.fromarray(gallery_array(session.gallery()[0][1]))
    expected = reference(folder, image).numpy()  # [2, 4, 17, 17]
    assert view.image == "image 2" and list(view.maps.tokens[:2]) == ["CLS", "r0c0"]
    np.testing.assert_allclose(view.maps.weights.numpy(), expected, atol=1e-5)
    rolled = hand_rollout(expected)
    for layer in range(2):
        np.testing.assert_allclose(view.record.spatial[layer][0], upsampled(expected[layer, :, 0, 1:].mean(0)), atol=1e-5)
        np.testing.assert_allclose(view.record.rollout[layer][0], upsampled(rolled[layer, 0, 1:]), atol=1e-5)
        for head in range(4):
            np.testing.assert_allclose(view.record.heads[layer][0, head], upsampled(expected[layer, head, 0, 1:]),
                                       atol=1e-5)


def test_the_folder_stays_out_of_links_and_the_layer_and_head_are_checked(session, folder):
    state = links.decode(session.state())[1]
    assert "vit_folder" not in state and state["pretrained_image"] == 1
    session.update(pretrained_layer=1, pretrained_head=3)
    with pytest.raises(ValueError, match="heads 0 to 3, not 4"):
        session.update(pretrained_head=4)
    assert (session.pretrained_layer, session.pretrained_head) == (1, 3)


def test_an_uploaded_grey_image_is_converted_with_a_notice(session, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70), dtype=np.uint8), mode="L").save(tmp_path / "g.png")
    session.show_image((tmp_path / "g.png").read_bytes())
    session.update(pretrained_image=YOUR_IMAGE)
    assert session.wait(120) and session.status_kind == "ok", session.status
    assert session.pretrained_view.image == "your image" and "Grey image converted to RGB" in session.status


@pytest.mark.parametrize("make, words", [
    (lambda tmp: "", "Type the folder"),
    (lambda tmp: str(tmp / "missing"), "is not a folder"),
    (lambda tmp: str(save_tiny(tmp / "bare", processor=False)), "has no image processor"),
    (lambda tmp: str(default_model_dir()), "Pretrained tab"),
])
def test_bad_folders_are_explained_and_the_nets_and_the_last_view_kept(session, tmp_path, make, words):
    session.train(4)
    session.wait(120)
    trainers, steps, view = dict(session.trainers), session.trainers["vit"].step, session.pretrained_view
    session.update(vit_folder=make(tmp_path))
    try:
        session.load_pretrained()
        session.wait(120)
    except ValueError as error:  # refused before any work starts
        session.say(str(error), "error")
    assert session.status_kind == "error" and words in session.status, session.status
    assert session.trainers == trainers and session.trainers["vit"].step == steps
    assert session.pretrained_view is view and not session.busy


def test_the_panel_draws_every_layer_and_head_and_the_picked_one_and_keeps_its_view_on_a_bad_folder(session, folder):
    from explorer.widgets.vision import VisionPanel

    session.update(vit_folder=str(folder), pretrained_image=0)
    panel = VisionPanel(session)
    panel.wait()
    load = next(c for c in panel.pretrained.widgets if "ae-vision-pretrained-load" in c._dom_classes)
    load.click()
    panel.wait()
    expected = reference(folder, Image.fromarray(gallery_array(session.gallery()[0][0]))).numpy()
    grid = [t for t in panel.pretrained.figures["heads"].data if t.name and t.name.startswith("head")]
    assert [t.name for t in grid] == [f"head {h}" for _ in range(2) for h in range(4)]
    for i, trace in enumerate(grid):  # row by row: layer 0's four heads, then layer 1's
        np.testing.assert_allclose(np.array(trace.z), upsampled(expected[i // 4, i % 4, 0, 1:]), atol=1e-5)
    panel.pretrained.layer.value, panel.pretrained.head.value = 1, 2
    maps = {t.name: np.array(t.z) for t in panel.pretrained.figures["maps"].data if t.name}
    np.testing.assert_allclose(maps["CLS map, layer 1 head 2"], upsampled(expected[1, 2, 0, 1:]), atol=1e-5)
    assert list(panel.pretrained.layer.options) == [0, 1] and list(panel.pretrained.head.options) == [0, 1, 2, 3]
    figure = panel.pretrained.figures["heads"].figure
    trace = next(i for i, t in enumerate(figure.data) if t.name == "head 3" and i > len(figure.data) // 2)
    panel.pretrained.figures["heads"].click(trace, {"x": 1, "y": 1})  # layer 1, head 3 of the grid opens large
    assert (session.pretrained_layer, session.pretrained_head) == (1, 3)
    assert "CLS map, layer 1 head 3" in [t.name for t in panel.pretrained.figures["maps"].data]
    panel.pretrained.layer.value, panel.pretrained.head.value = 1, 2
    panel.pretrained.folder.value = "/no/such/folder"
    load.click()
    panel.wait()
    assert "is not a folder" in panel.status.value and panel.pretrained.figures["maps"].data[2].name == \
        "CLS map, layer 1 head 2"
