"""Image datasets for the CBAM lab, each a ``datasets.DatasetDict`` with ``train`` and ``test`` splits.

Columns: ``pixel_values`` (float32 ``[C, H, W]`` in [0, 1]), ``label`` (a ``ClassLabel``) and, where the
object's place is known, ``bbox`` (x0, y0, x1, y1 in pixels, exclusive ends).

- ``make_shapes``: one large target shape (its kind is the label) among small, dimmer distractors and noise;
  ``mirror`` augments its training batches.
- ``load_digits``: scikit-learn's bundled 8 x 8 handwritten digits, resized.
- ``load_image_folder``: a user's own images, one sub-folder per class; at most ``MAX_FOLDER_FILES`` files are
  looked at (a path such as ``/usr/share`` is refused quickly), and the reading reports progress and can be stopped.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Array3D, ClassLabel, Dataset, DatasetDict, Features, List, Value
from PIL import Image as PILImage
from PIL import ImageDraw

from explorer.arguments import choice, path as user_path, real, seed as check_seed, shown, whole
from explorer.imports import transformers_quiet
from explorer.limits import check_memory

SHAPES = ("circle", "square", "triangle", "cross")
MAX_UPLOAD_BYTES = 5_000_000
MAX_UPLOAD_PIXELS = 4096 * 4096
MAX_FOLDER_FILES = 20_000  # files looked at in an image folder, images or not
MAX_IMAGES = 200_000  # images of a split
MAX_SIDE = 512  # pixels on a side of the images the lab's nets read
MAX_CLUTTER = 100  # distractors in a scene


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, x0: int, y0: int, size: int, fill: int) -> None:
    """Draw one filled shape in the box (x0, y0, x0 + size, y0 + size)."""
    x1, y1 = x0 + size - 1, y0 + size - 1
    if kind == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    elif kind == "square":
        draw.rectangle([x0, y0, x1, y1], fill=fill)
    elif kind == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    else:  # cross: a horizontal and a vertical bar a third of the size thick
        bar = max(size // 3, 1)
        middle = (size - bar) // 2
        draw.rectangle([x0, y0 + middle, x1, y0 + middle + bar - 1], fill=fill)
        draw.rectangle([x0 + middle, y0, x0 + middle + bar - 1, y1], fill=fill)


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def shape_scene(rng: np.random.Generator, size: int, clutter: int, noise: float) -> tuple[np.ndarray, int, list]:
    """One scene: a float32 image ``[size, size]``, the target's label and its box."""
    canvas = PILImage.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    label = int(rng.integers(len(SHAPES)))
    side = int(rng.integers(size * 3 // 10, size // 2 + 1))
    x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    box = [x0, y0, x0 + side, y0 + side]
    small = max(size // 8, 3)
    for _ in range(clutter):  # distractors: small, dimmer shapes of any kind, kept off the target
        for _attempt in range(10):
            side_d = int(rng.integers(small, small + 3))
            dx, dy = (int(v) for v in rng.integers(0, size - side_d + 1, size=2))
            if not overlaps(box, (dx - 1, dy - 1, dx + side_d + 1, dy + side_d + 1)):
                draw_shape(draw, SHAPES[int(rng.integers(len(SHAPES)))], dx, dy, side_d, int(rng.integers(90, 180)))
                break
    draw_shape(draw, SHAPES[label], x0, y0, side, int(rng.integers(200, 256)))
    image = np.asarray(canvas, dtype=np.float32) / 255.0
    image = np.clip(image + rng.normal(0.0, noise, image.shape), 0.0, 1.0).astype(np.float32)
    return image, label, box


def image_features(channels: int, size: int, names, with_box: bool) -> Features:
    features = {"pixel_values": Array3D((channels, size, size), "float32"), "label": ClassLabel(names=list(names))}
    if with_box:
        features["bbox"] = List(Value("int32"), length=4)
    return Features(features)


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def make_shapes(n_train: int = 2000, n_test: int = 500, size: int = 32, seed: int = 0, clutter: int = 4,
                noise: float = 0.08) -> DatasetDict:
    """Scenes of one large target shape (circle, square, triangle or cross: the label) among ``clutter`` small,
    dimmer distractor shapes and Gaussian noise; ``bbox`` is the target's box."""
    n_train = whole(n_train, "number of training images n_train", 1, MAX_IMAGES)
    n_test = whole(n_test, "number of test images n_test", 1, MAX_IMAGES)
    size = whole(size, "scene size (pixels on a side)", 16, MAX_SIDE)
    clutter = whole(clutter, "number of distractors clutter", 0, MAX_CLUTTER)
    noise, seed = real(noise, "noise", 0.0, 1.0), check_seed(seed)
    check_memory(f"{n_train + n_test:,} scenes of {size} x {size} pixels", (n_train + n_test) * size * size * 12)
    rng = np.random.default_rng(seed)
    features = image_features(1, size, SHAPES, with_box=True)
    splits = {}
    for name, count in (("train", n_train), ("test", n_test)):
        images, labels, boxes = zip(*(shape_scene(rng, size, clutter, noise) for _ in range(count)))
        splits[name] = Dataset.from_dict(
            {"pixel_values": np.stack(images)[:, None], "label": list(labels), "bbox": list(boxes)}, features=features)
    return DatasetDict(splits)


def mirror(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``pixels`` ``[B, C, H, W]`` flipped left to right with probability 1/2 (the coin from
    ``generator``). Every shape of ``make_shapes`` is symmetric about its vertical axis (up to a pixel of drawing),
    so a mirrored scene is a scene of the same label; a vertical flip or a quarter turn would point the triangle
    down or sideways, which no scene does."""
    flipped = torch.rand(len(pixels), generator=generator) < 0.5
    return torch.where(flipped[:, None, None, None], pixels.flip(-1), pixels)


def keeps_label_mirrored(data) -> bool:
    """True when ``mirror`` keeps every label of ``data``: its classes are the shapes of ``make_shapes`` (a mirrored
    digit is no digit, and a folder's classes are unknown)."""
    return list(data["train"].features["label"].names) == list(SHAPES)


def check_share(test_share, seed) -> tuple[float, int]:
    """The share of images kept for testing (above 0, below 1) and the seed of the split."""
    return real(test_share, "test share", above=0.0, below=1.0), check_seed(seed)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """``[N, C, h, w]`` images resized (bilinear) to ``[N, C, size, size]``, kept in [0, 1]."""
    out = F.interpolate(torch.from_numpy(images), size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp(0.0, 1.0).numpy()


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def split_dataset(images: np.ndarray, labels, names, test_share: float, seed: int) -> DatasetDict:
    """A shuffled train/test DatasetDict from ``images`` ``[N, C, S, S]`` and integer ``labels``."""
    count = len(images)
    n_test = max(1, int(round(count * test_share)))
    if count - n_test < 1:
        raise ValueError(f"Need at least 2 images to make a training and a test split, got {count}.")
    order = np.random.default_rng(seed).permutation(count)
    features = image_features(images.shape[1], images.shape[2], names, with_box=False)
    labels = np.asarray(labels)
    return DatasetDict({
        split: Dataset.from_dict({"pixel_values": images[index], "label": labels[index].tolist()}, features=features)
        for split, index in (("train", order[n_test:]), ("test", order[:n_test]))
    })


def load_digits(size: int = 32, test_share: float = 0.2, seed: int = 0) -> DatasetDict:
    """scikit-learn's bundled handwritten digits (1797 images, 8 x 8, labels 0 to 9), resized to ``size``."""
    from sklearn.datasets import load_digits as sklearn_digits

    size, (test_share, seed) = whole(size, "image size", 8, MAX_SIDE), check_share(test_share, seed)
    check_memory(f"1,797 digits of {size} x {size} pixels", 1797 * size * size * 12)
    digits = sklearn_digits()
    images = (digits.images.astype(np.float32) / 16.0)[:, None]
    return split_dataset(resize(images, size), digits.target, [str(d) for d in range(10)], test_share, seed)


def to_pixels(image: PILImage.Image, size: int, channels: int) -> np.ndarray:
    """A PIL image as float32 ``[channels, size, size]`` in [0, 1] (grey for 1 channel, RGB for 3)."""
    image = image.convert("L" if channels == 1 else "RGB").resize((size, size), PILImage.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1).copy()


def load_image_folder(path, size: int = 32, channels: int | None = None, test_share: float = 0.2, seed: int = 0,
                      stop: threading.Event | None = None, progress: Callable[[float], None] | None = None) -> DatasetDict:
    """Your own images: ``path`` holds one sub-folder per class. Images are resized to ``size`` and read as
    grey (``channels=1``), RGB (3) or, by default, RGB only if some image has colour. Files that cannot be
    read are skipped; the returned DatasetDict's ``skipped`` attribute counts them. ``stop`` (an Event) ends the
    reading with a ValueError; ``progress(fraction)`` hears how far it got."""
    folder = user_path(path, "image folder").expanduser()
    if not folder.is_dir():
        raise ValueError(f"There is no folder at {shown(str(path), 80)}.")
    channels = choice(channels, "number of channels (1 grey, 3 RGB)", (None, 1, 3))
    size, (test_share, seed) = whole(size, "image size", 8, MAX_SIDE), check_share(test_share, seed)
    names, files = image_files(folder, stop)
    images, labels, skipped = [], [], 0
    for index, (label, file) in enumerate(files):
        _check_stop(stop)
        try:
            with PILImage.open(file) as im:
                images.append(to_pixels(im, size, 3))
        except (OSError, ValueError, PILImage.DecompressionBombError):
            skipped += 1
            continue
        labels.append(label)
        if progress is not None and index % max(1, len(files) // 20) == 0:
            progress(index / len(files))
    if len(set(labels)) < 2:
        raise ValueError(f"'{path}' has {len(images)} readable image(s) in {len(set(labels))} class(es); "
                         f"a classifier needs at least 2 classes, one sub-folder each ({skipped} file(s) could not be read).")
    images = np.stack(images)  # [N, 3, size, size]
    if channels == 1 or (channels is None and np.array_equal(images.min(axis=1), images.max(axis=1))):
        images = images.mean(axis=1, keepdims=True)  # grey images keep one channel
    data = split_dataset(images, labels, names, test_share, seed)
    data.skipped = skipped
    return data


def image_files(folder: Path, stop: threading.Event | None = None) -> tuple[list[str], list[tuple[int, str]]]:
    """Class names (the sub-folders) and ``(label, file)`` of the image files in them, looking at no more than
    ``MAX_FOLDER_FILES`` files and following no links out of the folder."""
    suffixes = {suffix.lower() for suffix in PILImage.registered_extensions()}
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
    files, seen = [], 0
    for label, name in enumerate(classes):
        for root, _, found in os.walk(folder / name):
            _check_stop(stop)
            seen += len(found)
            if seen > MAX_FOLDER_FILES:
                raise ValueError(f"'{folder}' holds more than {MAX_FOLDER_FILES:,} files: choose a folder with just "
                                 "your images, one sub-folder per class.")
            files += [(label, os.path.join(root, f)) for f in sorted(found) if Path(f).suffix.lower() in suffixes]
    if not files:
        raise ValueError(f"No images could be found in '{folder}': put them in one sub-folder per class "
                         "(for example cats/ and dogs/).")
    return classes, files


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise ValueError("Stopped reading the image folder; the data you had is kept.")


def image_from_bytes(content: bytes, size: int, channels: int) -> np.ndarray:
    """An uploaded file as float32 ``[channels, size, size]``; a ValueError if it is too big or not an image."""
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise ValueError(f"An uploaded image is the bytes of a file, got {shown(content)}.")
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValueError(f"The file is {len(content) / 1e6:.1f} MB; upload an image under {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    try:
        with PILImage.open(io.BytesIO(content)) as image:
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise ValueError(f"The image is {image.width} x {image.height} pixels; upload one under 4096 x 4096.")
            return to_pixels(image, size, channels)
    except (OSError, PILImage.DecompressionBombError):
        raise ValueError("That file is not an image this lab can read (try a PNG or JPEG).") from None


def first_images(split, count: int):
    """The first ``count`` images of a split as tensors: pixel values, labels and boxes (None if unknown)."""
    rows = split.with_format("torch")[:count]
    return rows["pixel_values"], rows["label"], rows.get("bbox")
