"""What every part of the Vision tab shares: the images, the lab of nets trained on them, and new nets from the worker.

``VisionSession`` (``sessions/vision.py``) is built from parts that all stand on this one: the ViT's settings
(``vision_vit.py``) and the pretrained ViT (``vision_pretrained.py``), then the CBAM settings and the training.
Work that makes new nets or reads new data runs in the worker and returns ``Nets``; ``show`` puts them on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from traitlets import Any, Unicode

from explorer.data.images import first_images, image_from_bytes
from explorer.lab import Lab
from explorer.sessions.lab_session import LabSession
from explorer.sessions.vision_nets import CHUNK, GALLERY_SIZE


@dataclass(frozen=True)
class Nets:
    """What the worker made for the tab: the lab of nets and the data they train on."""

    lab: Lab
    data: object  # the DatasetDict of images
    data_name: str


class VisionBase(LabSession):
    """The images (``data``, the gallery, an uploaded image) and the lab of nets trained on them."""

    data = Any(None)
    data_name = Unicode("")

    def __init__(self, owner=None, n_train: int = 8000, n_test: int = 500, data_seed: int = 0):
        self.sizes = dict(n_train=n_train, n_test=n_test, seed=data_seed)  # of the shapes data (``make_shapes``)
        self.uploaded: bytes | None = None  # the visitor's image file
        super().__init__(owner)

    @property
    def class_names(self) -> list[str]:
        return list(self.data["test"].features["label"].names)

    def gallery(self) -> tuple:
        """The gallery's images and labels: the first test images."""
        pixels, labels, _ = first_images(self.data["test"], GALLERY_SIZE)
        return pixels, labels

    def upload_pixels(self, content: bytes) -> torch.Tensor:
        """An uploaded image as one batch ``[1, C, H, W]`` of the data's size and channels (a ValueError if unreadable)."""
        channels, _, size = self.data["train"].features["pixel_values"].shape
        return torch.from_numpy(image_from_bytes(content, size, channels))[None]

    # ----- new nets ------------------------------------------------------------------------------------------------
    def nets(self, trainers: dict, evaluations: dict | None = None, data=None, data_name: str | None = None) -> Nets:
        """``trainers`` in a new lab (in the worker), on ``data`` (default: the data on screen); the test-accuracy
        curves in ``evaluations`` (name -> [(step, accuracy)]) carry over."""
        lab = Lab(trainers, chunk=CHUNK, evaluations=evaluations, owner=self.home)
        return Nets(lab, self.data if data is None else data, self.data_name if data_name is None else data_name)

    def rebuild(self, message: str, work: Callable[[], Nets], done: Callable[[Nets], str]) -> None:
        """Run ``work()`` in the worker (refused while training or busy); on the home thread show the nets it made
        and say ``done(nets)``. On an error the nets on screen stay."""
        if self.training or self.worker.running:
            raise ValueError("Busy training or loading: press Stop or wait a moment.")
        self.busy = True
        self.say(message, "busy")
        self.worker.submit(work, done=lambda nets: self._rebuilt(nets, done), failed=self.fail)

    def _rebuilt(self, nets: Nets, done: Callable[[Nets], str]) -> None:
        self.show(nets)
        message = done(nets)
        self.busy = False
        self.say(message, "ok")

    def show(self, nets: Nets) -> None:
        """Put ``nets`` on screen (on the home thread)."""
        self.data, self.data_name = nets.data, nets.data_name
        self.use(nets.lab)
