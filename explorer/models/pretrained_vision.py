"""Pretrained vision transformers (ViT, DeiT, BEiT, DINO and kin), offline, read as ``AttentionMaps`` over patches.

``explorer.models.pretrained.load(folder)`` comes here for a config of the vision family. The folder's own image
processor prepares the image, the model runs once in SDPA attention with each layer's weights read at its SDPA
call (``explorer.capture``; eager ``output_attentions`` for a family without SDPA), and the tokens are labelled
"CLS" (and "DIST" or "reg0", ... where the model has them) then "r0c0",
"r0c1", ... row by row. Images are converted to RGB and very large ones shrunk first, with a notice saying so.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from explorer.arguments import path as user_path, shown
from explorer.maps import AttentionMaps, ImageAttention, MapsInfo, rollout
from explorer.models import hf

MAX_SIDE = 1024  # larger images are shrunk before the processor (which resizes to the model's size anyway)
MAX_FILE_PIXELS = 60_000_000


def load_vision(source: str, name: str, config) -> "PretrainedViT":
    """A vision transformer and its image processor from a local folder or the local cache, in transformers' default
    attention (SDPA where the family has it)."""
    AutoImageProcessor, AutoModel = hf.names("AutoImageProcessor", "AutoModel")

    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        processor = AutoImageProcessor.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"'{name}' has no image processor (preprocessor_config.json), which says how to resize and "
                         f"normalise an image for it; save one with processor.save_pretrained(folder) "
                         f"({hf.first_line(error)}).") from None
    try:
        with hf.loading():
            model = AutoModel.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"'{name}' could not be loaded as a vision transformer ({hf.first_line(error)}).") from None
    return PretrainedViT(model, processor, name)


def as_rgb(image) -> tuple[Image.Image, str]:
    """A PIL image, an ``H x W x C`` (or ``H x W``) array, a file path or a file's bytes as an RGB PIL image, and a
    notice of what was changed on the way (grey or transparent or 16-bit converted, a huge image shrunk)."""
    notices = []
    if isinstance(image, (str, Path, bytes, bytearray)):
        path = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else user_path(image, "image file").expanduser()
        if isinstance(path, Path) and not path.is_file():
            raise ValueError(f"There is no image file at {shown(str(image), 80)}.")
        called = "The file" if isinstance(path, io.BytesIO) else f"'{path.name}'"
        try:
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_FILE_PIXELS:
                    raise ValueError(f"The image is {opened.width} x {opened.height} pixels; use one under "
                                     f"{MAX_FILE_PIXELS // 1_000_000} megapixels.")
                opened.load()
                image = opened.copy()
        except (OSError, Image.DecompressionBombError):
            raise ValueError(f"{called} is not an image this explorer can read (try a PNG or JPEG).") from None
    elif isinstance(image, np.ndarray):
        image = _from_array(image, notices)
    elif not isinstance(image, Image.Image):
        raise ValueError(f"Give a PIL image, an H x W x C array of uint8 or a file path, not {shown(image)}.")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8))
        notices.append("16-bit image scaled to 8 bits")
    if image.mode != "RGB":
        notices.append({"L": "grey image", "RGBA": "transparent image", "LA": "transparent grey image"}.get(
            image.mode, f"{image.mode} image") + " converted to RGB")
        image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        notices.append(f"{image.width} x {image.height} image shrunk to at most {MAX_SIDE} pixels a side")
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    notice = "; ".join(notices)
    return image, f"{notice[:1].upper()}{notice[1:]}." if notice else ""


def _from_array(array: np.ndarray, notices: list) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"An image array is H x W x C with 1, 3 or 4 channels, got shape {array.shape}.")
    if array.dtype == np.uint16:
        array = (array / 257.0).round().astype(np.uint8)
        notices.append("16-bit image scaled to 8 bits")
    if array.dtype != np.uint8:
        raise ValueError(f"An image array holds uint8 values 0..255, got {array.dtype}.")
    return Image.fromarray(array)


class PretrainedViT:
    """A Hugging Face vision transformer in eval mode whose attention over patches is read as ``AttentionMaps``."""

    family = "vision"

    def __init__(self, model, processor, name: str):
        self.model = model.eval()
        self.processor = processor
        self.name = name
        config = model.config
        self.n_layers = config.num_hidden_layers
        self.n_heads = config.num_attention_heads
        self.patch_size = int(getattr(config, "patch_size", 16))

    def __repr__(self) -> str:
        return f"PretrainedViT({self.name!r}, layers={self.n_layers}, heads={self.n_heads})"

    def pixel_values(self, image) -> tuple[torch.Tensor, str]:
        """The processor's ``pixel_values`` ``[1, 3, H, W]`` for one image, and the notice of ``as_rgb``."""
        picture, notice = as_rgb(image)
        return self.processor(images=picture, return_tensors="pt")["pixel_values"], notice

    def attend(self, image) -> AttentionMaps:
        """Attention of every layer and head over the patches of ``image``, ``[layers, heads, T, T]``."""
        return self._run(image)[0]

    def image_attention(self, image) -> tuple[AttentionMaps, ImageAttention]:
        """``attend(image)`` and, drawn over the processed image, where the CLS token looks among the patches: per
        layer the mean over heads (``spatial``), each head (``heads``) and the rollout up to it (``rollout``), each
        map ``[1, H, W]`` (``[1, heads, H, W]``) at the processed image's size and scaled to a maximum of 1.
        ``images`` is the processed image scaled to 0..1 for drawing."""
        maps, pixel_values = self._run(image)
        rows, cols = (int(s) // self.patch_size for s in pixel_values.shape[-2:])
        return maps, cls_image_attention(maps, pixel_values, rows, cols)

    def _run(self, image) -> tuple[AttentionMaps, torch.Tensor]:
        pixel_values, notice = self.pixel_values(image)
        with torch.inference_mode():
            _, calls = hf.attention_calls(self.model, pixel_values=pixel_values)
        weights = torch.stack(hf.check_calls(calls, self.n_layers, self.name))[:, 0]  # [L, H, T, T]
        tokens = self.token_labels(pixel_values.shape[-2:], weights.shape[-1])
        return AttentionMaps(tokens=tokens, weights=weights, meta=MapsInfo(
            source=self.name, notice=notice, special=[not t.startswith("r") for t in tokens])), pixel_values

    def token_labels(self, size, n_tokens: int) -> list[str]:
        """"CLS", any distillation or register tokens, then the patches row by row."""
        rows, cols = (int(s) // self.patch_size for s in size)
        return patch_token_labels(rows, cols, n_tokens, self.model.config.model_type, self.name)


def cls_image_attention(maps: AttentionMaps, pixel_values: torch.Tensor, rows: int, cols: int) -> ImageAttention:
    """Where the CLS token (the first) looks among a ``rows`` x ``cols`` grid of patches, over the image
    ``pixel_values`` ``[1, C, H, W]``: per layer each head, the mean of the heads and the rollout (see
    ``PretrainedViT.image_attention``)."""
    patch_size = int(pixel_values.shape[-1]) // cols
    first = len(maps.tokens) - rows * cols  # the patches come after CLS and any distillation or register tokens
    cls_rows = maps.weights[:, :, 0, first:]  # [L, heads, patches]
    heads = upsample(cls_rows, rows, cols, patch_size)  # [L, heads, H, W]
    spatial = upsample(cls_rows.mean(dim=1), rows, cols, patch_size)  # [L, H, W]
    rolled = upsample(rollout(maps)[:, 0, first:], rows, cols, patch_size)  # [L, H, W]
    low, high = pixel_values.amin(), pixel_values.amax()
    return ImageAttention(channel=[], spatial=[m[None] for m in spatial], rollout=[m[None] for m in rolled],
                          heads=[m[None] for m in heads], images=(pixel_values - low) / (high - low).clamp_min(1e-12))


def patch_token_labels(rows: int, cols: int, n_tokens: int, model_type: str = "", name: str = "The model") -> list[str]:
    """"CLS", any distillation ("DIST", DeiT) or register tokens ("reg0", ...), then the patches row by row, "r0c0"..."""
    n_special = n_tokens - rows * cols
    if n_special < 0:
        raise ValueError(f"{name} gave {n_tokens} tokens for a {rows} x {cols} grid of patches: "
                         "the explorer cannot label them.")
    special = ["CLS"] + (["DIST"] if model_type == "deit" and n_special == 2 else
                         [f"reg{i}" for i in range(n_special - 1)])
    return special[:n_special] + [f"r{r}c{c}" for r in range(rows) for c in range(cols)]


def upsample(patch_values: torch.Tensor, rows: int, cols: int, patch_size: int) -> torch.Tensor:
    """Per-patch values ``[..., rows * cols]`` as maps ``[..., H, W]``, each patch filling its square (nearest) and
    each map scaled to a maximum of 1, as the Vision tab's own ViT maps are."""
    maps = patch_values.reshape(*patch_values.shape[:-1], rows, cols)
    maps = maps.repeat_interleave(patch_size, dim=-2).repeat_interleave(patch_size, dim=-1)
    return maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
