"""Deletion and insertion for the Vision tab's maps, beside their localization: do the pixels a map points at carry
the net's answer? (``explorer.deletion.image_curves`` does the work; this picks the maps.)

    map_curves({"cbam": cbam_net, "plain": plain_net, "vit": vit}, images)
    # {"cbam": {"stage 1": ImageCurves, ..., "Grad-CAM": ...}, "plain": {"Grad-CAM": ...}, "vit": {"CLS map": ..., "rollout": ...}}

The maps are the ones the localization plot scores, under the same names: each CBAM stage's spatial map and
Grad-CAM for a CNN, the last layer's CLS (or mean-token) map and rollout for a ViT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.deletion import ImageCurves, image_curves
from explorer.models.cbam import CBAMNet, cbam_maps, grad_cam
from explorer.models.vit import TinyViT, map_name, vit_maps


@dataclass(frozen=True)
class MapTest:
    """Deletion and insertion of every net's maps at one training step: what the Vision tab draws beside
    localization."""

    step: int  # the nets' training step when they were measured
    images: int  # test images whose pixels were removed
    curves: dict[str, dict[str, ImageCurves]]  # net name -> map name -> curves (``map_curves``)


def net_maps(model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The maps of one net over ``images``, ``[B, H, W]`` each, by the localization plot's names."""
    if isinstance(model, TinyViT):
        record = vit_maps(model, images)
        return {map_name(model.config): record.spatial[-1], "rollout": record.rollout[-1]}
    if isinstance(model, CBAMNet):
        record = cbam_maps(model, images)
        maps = {f"stage {i + 1}": spatial for i, spatial in enumerate(record.spatial)}
        maps["Grad-CAM"] = grad_cam(model, images)
        return maps
    raise TypeError(f"Deletion and insertion are measured for the CBAM nets and the ViT, not {type(model).__name__}.")


def map_curves(nets: dict, images: torch.Tensor, seed: int = 0, stop=None, progress=None) -> dict[str, dict[str, ImageCurves]]:
    """Deletion and insertion of every map of every net in ``nets`` over ``images`` ``[B, C, H, W]``; each net is
    scored on its own predicted class. ``progress(fraction, words)`` is told per map; ``stop()`` ends it."""
    found: dict[str, dict[str, ImageCurves]] = {}
    for i, (name, model) in enumerate(nets.items()):
        maps = net_maps(model, images)
        found[name] = {}
        for j, (kind, values) in enumerate(maps.items()):
            if progress is not None:
                progress((i + j / len(maps)) / len(nets), f"Deletion and insertion: {name}, {kind}…")
            found[name][kind] = image_curves(model, images, values, seed=seed, stop=stop)
    return found
