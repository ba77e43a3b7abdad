"""The ViT's settings in the Vision tab, and what changing them does to the nets (``sessions/vision.py`` builds on it).

Switching the ViT off drops it; switching it on, or changing an untrained ViT, builds a fresh one at once. The CBAM
net and the plain baseline, and their histories, are kept either way. Settings that cannot make a ViT (heads
that do not divide the width, a patch size that does not divide the images) are refused with the reason.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from traitlets import Bool, Int, TraitError, Unicode, observe

from explorer.arguments import real
from explorer.models.vit import POOLS, patch_index, patch_maps
from explorer.sessions.base import validate
from explorer.sessions.rules import Choice, head_options
from explorer.sessions.vision_base import VisionBase
from explorer.sessions.vision_nets import CNNS, NAMES, trainer_for, vit_config, vit_model

VIT_SETTINGS = ("vit", "patch_size", "vit_heads", "vit_layers", "vit_width", "vit_pool")
VIT_WIDTHS = (16, 32, 64, 128)
MAX_VIT_LAYERS = 8


@dataclass(frozen=True)
class PatchView:
    """What one patch of the gallery images attends to: ``maps`` ``[B, H, W]`` (each scaled to a maximum of 1) of
    head ``head`` in the last layer, and the patch's square ``box`` ``(x0, y0, x1, y1)`` in pixels (end exclusive)."""

    label: str
    head: int
    maps: torch.Tensor
    box: tuple[int, int, int, int]


class ViTSettings(VisionBase):
    """The ViT's settings, and the ViT they build in the lab beside the CNNs."""

    vit = Bool(True, help="ViT switch").tag(link=True)
    patch_size = Int(4, help="patch size").tag(link=True)
    vit_heads = Int(4, help="number of ViT heads").tag(link=True)
    vit_layers = Int(2, help="number of ViT layers").tag(link=True)
    vit_width = Int(64, help="ViT width").tag(link=True)
    vit_pool = Choice(POOLS, "cls", help="ViT pooling").tag(link=True)
    vit_head = Int(0, help="ViT head in the gallery").tag(link=True)
    vit_patch = Unicode("", help="ViT patch").tag(link=True)  # "r2c3": the clicked patch; "" for none

    def implied_vit_settings(self, changes: dict) -> dict:
        """``changes`` with the heads moved to the nearest divisor of a new width (unless they are given too)."""
        if "vit_width" in changes and "vit_heads" not in changes:
            width = self.coerce("vit_width", changes["vit_width"])
            options = head_options(width) if 0 < width <= 2**16 else [self.vit_heads]  # wider is refused later
            changes = {**changes, "vit_heads": min(options, key=lambda h: abs(h - self.vit_heads))}
        if "vit_heads" in changes and "vit_head" not in changes:  # the picked head stays one of the heads
            heads = self.coerce("vit_heads", changes["vit_heads"])
            changes = {**changes, "vit_head": min(self.vit_head, max(heads - 1, 0))}
        if "patch_size" in changes and "vit_patch" not in changes:  # another grid: the clicked patch is gone
            changes = {**changes, "vit_patch": ""}
        return changes

    @validate("vit_patch")
    def _valid_patch(self, proposal):
        label = proposal["value"].strip()
        if label and not re.fullmatch(r"r\d{1,6}c\d{1,6}", label):
            raise TraitError(f"A patch is named by its row and column, such as r2c3, not '{label[:20]}'.")
        return label

    def pick_patch(self, x: float, y: float) -> None:
        """Choose the patch under pixel ``(x, y)`` of the gallery (what a click on a ViT map does)."""
        config = self._shown_vit_config()
        if config is None:
            raise ValueError("Switch the ViT on to see what its patches attend to.")
        x, y = real(x, "patch's x pixel", -1e9, 1e9), real(y, "patch's y pixel", -1e9, 1e9)
        column, row = int(x) // config.patch_size, int(y) // config.patch_size
        self.update(vit_patch=f"r{min(max(row, 0), config.grid - 1)}c{min(max(column, 0), config.grid - 1)}")
        self.say(f"Patch {self.vit_patch}: the last column shows what it attends to in the last layer, "
                 f"head {self.vit_head}.", "ok")

    def _shown_vit_config(self):
        trainer = self.trainers.get("vit")
        return None if trainer is None else trainer.model.config

    def patch_view(self) -> PatchView | None:
        """What the clicked patch attends to over the gallery images (the ViT now, read from a copy as it may be
        training); None without a ViT or a patch, or for a patch the ViT's grid does not have."""
        config = self._shown_vit_config()
        if config is None or not self.vit_patch:
            return None
        try:
            index = patch_index(self.vit_patch, config.grid)
        except ValueError:
            return None
        head = min(self.vit_head, config.n_heads - 1)
        pixels, _ = self.gallery()
        maps = patch_maps(copy.deepcopy(self.trainers["vit"].model), pixels, self.vit_patch, head=head)
        size, (row, column) = config.patch_size, divmod(index, config.grid)
        return PatchView(self.vit_patch, head, maps, (column * size, row * size, (column + 1) * size, (row + 1) * size))

    def ordered(self, settings: dict) -> list:
        return sorted(settings.items(), key=lambda item: item[0] != "vit_width")

    def check_vit(self) -> None:
        """Refuse (with the reason) ViT settings that cannot be built."""
        if not 1 <= self.vit_layers <= MAX_VIT_LAYERS:
            raise TraitError(f"The ViT can have 1 to {MAX_VIT_LAYERS} layers, got {self.vit_layers}.")
        if self.vit:
            try:
                self.vit_config(self.data)
            except ValueError as error:
                raise TraitError(f"ViT: {error}") from None
        if self.vit_head < 0:
            raise TraitError(f"The ViT head in the gallery is numbered from 0, got {self.vit_head}.")

    def vit_config(self, data):
        """The ViT the settings describe, for ``data``; a ValueError says why it cannot be built."""
        return vit_config(data, self.patch_size, self.vit_heads, self.vit_layers, self.vit_width, self.vit_pool)

    def net_list(self) -> str:
        names = [NAMES[name] for name in (*CNNS, *(["vit"] if self.vit else []))]
        return ", ".join(names[:-1]) + " and " + names[-1]

    def vit_matches(self) -> bool:
        """The ViT on screen (or its absence) is the one the settings describe."""
        trainer = self.trainers.get("vit")
        if trainer is None or not self.vit:
            return (trainer is None) == (not self.vit)
        try:
            return trainer.model.config == self.vit_config(self.data)
        except ValueError:
            return False

    @observe(*VIT_SETTINGS)
    def _on_vit_setting(self, change) -> None:
        """Switching the ViT off drops it; a new or untrained ViT is rebuilt at once; the CNNs are kept either way."""
        if self.lab is None or self.worker.running or self.busy or self.vit_matches():
            return
        old = self.trainers.get("vit")
        if self.training or (old is not None and old.step > 0 and self.vit):
            self.say("New ViT settings apply when you press Reset (the trained nets are kept until then).")
            return
        cnns = {name: self.trainers[name] for name in CNNS}
        kept = dict(self.lab.evaluations)
        if not self.vit:
            self.rebuild("Switching the ViT off…", lambda: self.nets(cnns, kept),
                         lambda _: "ViT switched off: the CBAM net and the plain baseline train alone.")
            return
        config, data = self.vit_config(self.data), self.data
        self.rebuild("Building the ViT…",
                     lambda: self.nets({**cnns, "vit": trainer_for("vit", vit_model(config), data, self.lr)}, kept),
                     lambda _: f"ViT ready ({config.grid} x {config.grid} patches of {config.patch_size} pixels, "
                               f"{config.n_layers} layers, {config.n_heads} heads).")
