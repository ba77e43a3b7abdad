"""Image datasets: shape scenes, bundled digits, user folders and uploads."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from explorer.data.images import (SHAPES, draw_shape, image_from_bytes, keeps_label_mirrored, load_digits,
                                  load_image_folder, make_shapes, mirror)


def test_make_shapes_has_labelled_scenes_with_boxes():
    data = make_shapes(n_train=120, n_test=40, size=32, seed=1)
    assert set(data) == {"train", "test"} and len(data["train"]) == 120 and len(data["test"]) == 40
    assert data["train"].features["label"].names == list(SHAPES)
    split = data["train"].with_format("numpy")
    images, labels, boxes = split["pixel_values"][:], split["label"][:], split["bbox"][:]
    assert images.shape == (120, 1, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert set(labels.tolist()) == set(range(len(SHAPES)))
    for image, (x0, y0, x1, y1) in zip(images[:, 0], boxes):
        assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
        assert image[y0:y1, x0:x1].max() > 0.7  # the bright target is inside its box


def drawn(kind: str, x0: int, side: int) -> np.ndarray:
    canvas = Image.new("L", (32, 32), 0)
    draw_shape(ImageDraw.Draw(canvas), kind, x0, 4, side, 255)
    return np.asarray(canvas) > 0


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("kind", SHAPES)
def test_a_mirrored_shape_is_the_same_shape_at_the_mirrored_place(kind):
    for side in range(9, 17):  # the targets' sizes in 32-pixel scenes
        for x0 in range(0, 32 - side, 5):
            mirrored = drawn(kind, x0, side)[:, ::-1]
            there = {other: overlap(mirrored, drawn(other, 32 - x0 - side, side)) for other in SHAPES}
            assert max(there, key=there.get) == kind and there[kind] > 0.75, (side, x0, there)


def test_mirror_flips_about_half_the_images_left_to_right_from_the_generators_draws():
    pixels = torch.rand(200, 1, 8, 8)
    once = mirror(pixels, torch.Generator().manual_seed(0))
    assert torch.equal(once, mirror(pixels, torch.Generator().manual_seed(0)))
    flipped = [not torch.equal(a, b) for a, b in zip(once, pixels)]
    assert all(torch.equal(a, b.flip(-1)) for a, b, f in zip(once, pixels, flipped) if f)
    assert 70 < sum(flipped) < 130
    assert keeps_label_mirrored(make_shapes(n_train=8, n_test=4)) and not keeps_label_mirrored(load_digits())


def test_make_shapes_is_seeded():
    a, b = make_shapes(n_train=10, n_test=5, seed=3), make_shapes(n_train=10, n_test=5, seed=3)
    assert np.array_equal(a["test"].with_format("numpy")["pixel_values"][:], b["test"].with_format("numpy")["pixel_values"][:])
    c = make_shapes(n_train=10, n_test=5, seed=4)
    assert not np.array_equal(a["test"].with_format("numpy")["pixel_values"][:], c["test"].with_format("numpy")["pixel_values"][:])


def test_make_shapes_rejects_bad_settings():
    with pytest.raises(ValueError, match="scene size .* from 16 to 512, got 8"):
        make_shapes(size=8)
    with pytest.raises(ValueError, match="clutter must be a whole number from 0"):
        make_shapes(clutter=-1)


def test_load_digits_matches_scikit_learn():
    from sklearn.datasets import load_digits as reference

    data = load_digits(size=8)
    assert len(data["train"]) + len(data["test"]) == 1797
    assert data["train"].features["label"].names == [str(d) for d in range(10)]
    images = data["test"].with_format("numpy")["pixel_values"][:]
    assert images.shape[1:] == (1, 8, 8) and images.min() >= 0 and images.max() <= 1
    all_images = reference().images / 16.0
    first = images[0, 0]
    assert np.abs(all_images - first).reshape(len(all_images), -1).max(axis=1).min() < 1e-6


def write_folder(root, per_class=3, classes=("dots", "bars")):
    for k, name in enumerate(classes):
        (root / name).mkdir()
        for i in range(per_class):
            pixels = np.full((20, 24, 3), 40 * i + 100 * k, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_load_image_folder_reads_classes_and_counts_unreadable_files(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "bars" / "broken.png").write_bytes(b"not really a png")
    data = load_image_folder(tmp_path, size=16, channels=3)
    assert data.skipped == 1
    assert len(data["train"]) + len(data["test"]) == 6
    assert data["train"].features["label"].names == ["bars", "dots"]
    assert data["train"].with_format("numpy")["pixel_values"][:].shape[1:] == (3, 16, 16)
    grey = load_image_folder(tmp_path, size=16)  # the test images are grey: one channel is enough
    assert grey["test"].with_format("numpy")["pixel_values"][:].shape[1:] == (1, 16, 16)


@pytest.mark.parametrize("make, words", [
    (lambda root: None, "No images"),
    (lambda root: write_folder(root, classes=("only",)), "at least 2 classes"),
])
def test_load_image_folder_explains_what_is_wrong(tmp_path, make, words):
    make(tmp_path)
    with pytest.raises(ValueError, match=words):
        load_image_folder(tmp_path)


def test_load_image_folder_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="no folder"):
        load_image_folder(tmp_path / "nowhere")


def png_bytes(width, height, mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (128, 128, 128) if mode == "RGB" else 1).save(buffer, format="PNG")
    return buffer.getvalue()


def test_uploaded_image_is_resized_to_the_model_input():
    pixels = image_from_bytes(png_bytes(50, 40), size=32, channels=1)
    assert pixels.shape == (1, 32, 32) and pixels.dtype == np.float32
    assert np.allclose(pixels, 128 / 255, atol=1e-2)


@pytest.mark.parametrize("content, words", [
    (b"hello, this is text", "not an image"),
    (b"\0" * 6_000_000, "MB"),
    (png_bytes(5000, 4000, "1"), "4096"),
])
def test_bad_uploads_say_why(content, words):
    with pytest.raises(ValueError, match=words):
        image_from_bytes(content, size=32, channels=1)


def test_a_folder_with_too_many_files_is_refused_and_reading_can_be_stopped(tmp_path, monkeypatch):
    import threading

    from explorer.data import images

    write_folder(tmp_path, per_class=4)
    heard = []
    data = load_image_folder(tmp_path, size=8, progress=heard.append)
    assert len(data["train"]) + len(data["test"]) == 8 and heard == sorted(heard) and 0 <= heard[0] < heard[-1] < 1
    stop = threading.Event()
    stop.set()
    with pytest.raises(ValueError, match="Stopped"):
        load_image_folder(tmp_path, stop=stop)
    monkeypatch.setattr(images, "MAX_FOLDER_FILES", 6)
    with pytest.raises(ValueError, match="more than 6 files"):
        load_image_folder(tmp_path)


def test_stop_ends_reading_a_folder_in_the_vision_tab_and_keeps_its_data(tmp_path):
    from explorer.sessions.vision import VisionSession

    for k, name in enumerate(("dots", "bars")):
        (tmp_path / name).mkdir()
        for i in range(400):
            Image.fromarray(np.full((20, 24), (i + 100 * k) % 256, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    session = VisionSession(n_train=120, n_test=40)
    session.wait()
    before = session.data
    session.update(dataset="folder", folder=str(tmp_path))
    session.load_data()
    session.stop()  # pressed while the worker reads the 800 files
    assert session.wait(60)
    assert session.status_kind == "error" and "Stopped reading the image folder" in session.status
    assert session.data is before
