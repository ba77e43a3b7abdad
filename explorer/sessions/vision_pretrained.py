"""The Vision tab's pretrained ViT section: a local Hugging Face vision transformer (ViT, DeiT, BEiT, DINO) and the
patch attention of every layer and head over a gallery image or the uploaded one.

Loading and running the model happen in the session's worker (``Session.submit``), never on the kernel's thread;
a bad folder or image leaves the trained nets, their history and the last pretrained view as they were. The
folder is a path on the server, so it is a local setting and never travels in a link.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from traitlets import Any, Int, TraitError, Unicode, observe

from explorer.arguments import shown
from explorer.maps import AttentionMaps, ImageAttention
from explorer.models.pretrained import expect_family, load
from explorer.paths import model_source
from explorer.sessions.base import validate
from explorer.sessions.vision_base import VisionBase
from explorer.sessions.vision_nets import GALLERY_SIZE

YOUR_IMAGE = -1  # ``pretrained_image`` for the uploaded image


@dataclass(frozen=True)
class PretrainedView:
    """One image through the pretrained ViT: ``maps`` over its tokens and ``record`` of its CLS maps and rollout."""

    name: str
    image: str  # "image 2" or "your image"
    maps: AttentionMaps
    record: ImageAttention


def gallery_array(pixels) -> np.ndarray:
    """One gallery image ``[C, H, W]`` of 0..1 values as an ``H x W x C`` (or ``H x W``) uint8 array."""
    array = (np.asarray(pixels, dtype=np.float64).transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8)
    return array[..., 0] if array.shape[-1] == 1 else array


class PretrainedViTSection(VisionBase):
    """The settings and the run of the pretrained ViT, over a gallery image or the uploaded one."""

    vit_folder = Unicode("", help="pretrained ViT folder").tag(setting=True)
    pretrained_image = Int(0, help="image for the pretrained ViT").tag(link=True)
    pretrained_layer = Int(0, help="pretrained ViT layer").tag(link=True)
    pretrained_head = Int(0, help="pretrained ViT head").tag(link=True)
    pretrained = Any(None)  # the loaded PretrainedViT
    pretrained_view = Any(None)  # the PretrainedView on screen

    @validate("pretrained_image")
    def _valid_pretrained_image(self, proposal):
        if not YOUR_IMAGE <= proposal["value"] < GALLERY_SIZE:
            raise TraitError(f"The image for the pretrained ViT is a gallery image (0 to {GALLERY_SIZE - 1}) or -1 for "
                             f"your uploaded image, got {shown(proposal['value'])}.")
        return proposal["value"]

    def check_pretrained(self) -> None:
        """Refuse a layer or head the loaded model does not have (any is accepted before a model is loaded)."""
        for name, count in (("layer", "n_layers"), ("head", "n_heads")):
            value = getattr(self, f"pretrained_{name}")
            limit = getattr(self.pretrained, count, None)
            if value < 0 or (limit is not None and value >= limit):
                raise TraitError(f"This model has {name}s 0 to {limit - 1}, not {value}." if limit else
                                 f"The {name}s are numbered from 0, not {value}.")

    def load_pretrained(self) -> None:
        """Load the folder's vision transformer in the worker and show the chosen image through it."""
        folder = self.vit_folder.strip()
        if not folder:
            raise ValueError("Type the folder of a vision transformer (ViT, DeiT, BEiT or DINO) saved with its "
                             "image processor.")
        folder = model_source(folder)  # in a classroom, only the teacher's folders
        image, title = self._pretrained_input()

        def job():
            self.home.call(self.say, f"Loading {folder}: reading the model and its image processor…", "busy")
            model = load(folder)
            expect_family(model, "vision", folder)
            self.home.call(self.say, f"Loaded {folder}; running it on {title}…", "busy")
            return model, self._view(model, image, title)

        self.submit(f"Loading {folder}…", job, lambda made: self._show_pretrained(*made))

    def attend_pretrained(self) -> None:
        """Run the loaded model on the chosen image again (another image, or a new upload), in the worker."""
        if self.pretrained is None:
            raise ValueError("Load a pretrained vision transformer first (type its folder, then press Load ViT).")
        model, (image, title) = self.pretrained, self._pretrained_input()
        self.submit(f"Running {model.name} on {title}…", lambda: (model, self._view(model, image, title)),
                    lambda made: self._show_pretrained(*made))

    @observe("pretrained_image")
    def _on_pretrained_image(self, change) -> None:
        self.refresh_pretrained()

    def refresh_pretrained(self) -> None:
        """With a model loaded, show the chosen image through it; a reason in the status if it cannot be shown."""
        if self.pretrained is None:
            return
        try:
            self.attend_pretrained()
        except ValueError as error:
            self.say(str(error), "error")

    def _pretrained_input(self) -> tuple:
        """The chosen image (an array of a gallery image, or the uploaded file's bytes) and its title."""
        if self.pretrained_image == YOUR_IMAGE:
            if self.uploaded is None:
                raise ValueError("Upload an image first (Your own image), or pick a gallery image.")
            return self.uploaded, "your image"
        pixels, _ = self.gallery()
        index = min(self.pretrained_image, len(pixels) - 1)
        return gallery_array(pixels[index]), f"image {index + 1}"

    @staticmethod
    def _view(model, image, title: str) -> PretrainedView:
        maps, record = model.image_attention(image)
        return PretrainedView(model.name, title, maps, record)

    def _show_pretrained(self, model, view: PretrainedView) -> None:
        """On the home thread: the new model and view; the layer and head stay where they fit."""
        with self.hold_trait_notifications():
            self.pretrained = model
            self.pretrained_layer = min(self.pretrained_layer, model.n_layers - 1)
            self.pretrained_head = min(self.pretrained_head, model.n_heads - 1)
            self.pretrained_view = view
        notice = f" {view.maps.meta.notice}" if view.maps.meta.notice else ""
        self.say(f"{model.name}: {model.n_layers} layers x {model.n_heads} heads over {view.image} "
                 f"({len(view.maps.tokens)} tokens).{notice}", "ok")
