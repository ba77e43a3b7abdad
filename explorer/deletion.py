"""Deletion and insertion curves: a map's order put to the test on the model itself.

Take an input's parts away in a map's order, most important first, and watch the output fall; start from an input
with every part taken away and put them back in that order, and watch it rise. A map that names what the model uses
makes the output fall faster and rise faster than a random order does. The area between the curve and its start is
the score: AOPC, the mean fall over the points (Samek et al. 2017), and the mean rise for insertion (Petsiuk et al.
2018 score images this way). Tokens are replaced by the readout's baseline; pixels by black (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IMAGE_POINTS = 10  # points of an image curve past the first: every 10% of the pixels
IMAGE_BATCH = 512


class Stopped(ValueError):
    """The visitor pressed Stop: the check ended early and nothing of it is kept."""

    def __init__(self):
        super().__init__("The faithfulness check was stopped; the previous result is kept.")


def points(n: int, at_most: int) -> list[int]:
    """How many parts are replaced at each point of a curve: 0 to ``n`` in at most ``at_most`` even steps."""
    steps = max(1, min(n, at_most))
    return sorted({round(i * n / steps) for i in range(steps + 1)})


def ranking(importance: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices from most to least important; ties in a seeded random order (by position without a generator)."""
    shuffle = torch.arange(len(importance)) if generator is None else torch.randperm(len(importance), generator=generator)
    return shuffle[torch.argsort(-importance[shuffle].double(), stable=True)]


def masks(order: torch.Tensor, counts, where: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deletion and insertion masks ``[points, size]`` (True = replaced): the first ``k`` of ``order`` (indices into
    ``where``, the replaceable positions) gone, or all of ``where`` gone but the first ``k``."""
    deletion = torch.zeros(len(counts), size, dtype=torch.bool)
    insertion = torch.zeros(len(counts), size, dtype=torch.bool)
    insertion[:, where] = True
    for row, k in enumerate(counts):
        deletion[row, where[order[:k]]] = True
        insertion[row, where[order[:k]]] = False
    return deletion, insertion


def fall(start: float, curve: torch.Tensor) -> float:
    """AOPC: the mean of start - output over the curve's points."""
    return float((start - curve).mean())


def rise(curve: torch.Tensor, blank: float) -> float:
    """The mean of output - blank output over the curve's points."""
    return float((curve - blank).mean())


def token_curves(run, importances: dict, seed: int, at_most: int, n_random: int):
    """Every method's and ``n_random`` random orders' deletion and insertion curves over the readout's replaceable
    tokens, run through ``run.outputs`` (each changed input once). Returns ``(fractions, deletion, insertion)``:
    method or "random" -> output per point."""
    where = run.readout.movable.nonzero().flatten()
    size, counts = len(run.readout.tokens), points(len(where), at_most)
    generator = torch.Generator().manual_seed(int(seed))
    orders = {method: ranking(values[where], generator) for method, values in importances.items()}
    randoms = [torch.randperm(len(where), generator=generator) for _ in range(n_random)]
    made = {name: masks(order, counts, where, size) for name, order in [*orders.items(), *enumerate(randoms)]}
    everything = torch.cat([torch.cat(pair) for pair in made.values()])
    outputs = run.outputs(everything, span=(0.6, 1.0)).split(len(counts))
    curves = dict(zip(made, zip(outputs[0::2], outputs[1::2])))
    deletion = {name: curves[name][0] for name in orders}
    insertion = {name: curves[name][1] for name in orders}
    deletion["random"] = torch.stack([curves[i][0] for i in range(n_random)]).mean(dim=0)
    insertion["random"] = torch.stack([curves[i][1] for i in range(n_random)]).mean(dim=0)
    fractions = tuple(k / max(len(where), 1) for k in counts)
    return fractions, deletion, insertion


@dataclass(frozen=True)
class ImageCurves:
    """Deletion and insertion of one kind of map over a set of images, means over the images."""

    deletion: float  # mean fall of the predicted class's probability, most important pixels first
    insertion: float  # mean rise from the black image, most important pixels first
    random_deletion: float
    random_insertion: float
    fractions: tuple[float, ...]
    deletion_curve: tuple[float, ...]  # probability per point, mean over images
    insertion_curve: tuple[float, ...]


@torch.no_grad()
def image_curves(model, images: torch.Tensor, maps: torch.Tensor, seed: int = 0, at_most: int = IMAGE_POINTS,
                 stop=None) -> ImageCurves:
    """Deletion and insertion of ``images`` ``[B, C, H, W]``'s pixels in the order of ``maps`` ``[B, H, W]`` for
    ``model``'s probability of the class it predicts for each whole image; beside one seeded random order per image.
    A pixel is removed by setting every channel to 0. ``stop()`` true ends it with ``Stopped``."""
    images, maps = torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(maps, dtype=torch.float32)
    if images.dim() != 4 or maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"Need images [B, C, H, W] and maps [B, H, W] of the same size, got {tuple(images.shape)} "
                         f"and {tuple(maps.shape)}.")
    was_training = model.training
    model.eval()
    try:
        probability = _probabilities(model, images, stop)
        predicted = probability.argmax(dim=1)
        generator = torch.Generator().manual_seed(int(seed))
        pixels = images.shape[-1] * images.shape[-2]
        counts, where = points(pixels, at_most), torch.arange(pixels)
        curves = {}
        for name in ("map", "random"):
            orders = [ranking(m.flatten(), generator) if name == "map" else torch.randperm(pixels, generator=generator)
                      for m in maps]
            deletion, insertion = zip(*(masks(order, counts, where, pixels) for order in orders))
            for kind, rows in (("deletion", deletion), ("insertion", insertion)):
                changed = images[:, None] * ~torch.stack(rows).view(len(images), len(counts), 1, *images.shape[2:])
                chances = _probabilities(model, changed.flatten(0, 1), stop).view(len(images), len(counts), -1)
                curves[name, kind] = chances.gather(2, predicted.view(-1, 1, 1).expand(-1, len(counts), 1))[..., 0]
    finally:
        model.train(was_training)
    start, blank = curves["map", "deletion"][:, :1], curves["map", "insertion"][:, :1]
    score = {key: float((start - c).mean()) if key[1] == "deletion" else float((c - blank).mean())
             for key, c in curves.items()}
    return ImageCurves(score["map", "deletion"], score["map", "insertion"], score["random", "deletion"],
                       score["random", "insertion"], tuple(k / pixels for k in counts),
                       tuple(curves["map", "deletion"].mean(dim=0).tolist()),
                       tuple(curves["map", "insertion"].mean(dim=0).tolist()))


def _probabilities(model, images: torch.Tensor, stop) -> torch.Tensor:
    parts = []
    for start in range(0, len(images), IMAGE_BATCH):
        if stop is not None and stop():
            raise Stopped()
        parts.append(torch.softmax(model(images[start:start + IMAGE_BATCH]).float(), dim=-1))
    return torch.cat(parts)
