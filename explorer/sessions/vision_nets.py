"""The Vision tab's nets: building the CBAM net, the plain CNN and the ViT for a dataset, probing them, and reading
them back from a checkpoint folder. No traits and no widgets: ``sessions/vision.py`` calls these with its settings.
"""

from __future__ import annotations

from pathlib import Path

import torch

from explorer import checkpoints
from explorer.data.images import first_images, keeps_label_mirrored, mirror
from explorer.models.cbam import PAPER, CBAMNet, probe_maps
from explorer.models.vit import TinyViT, ViTConfig, probe_vit, valid_patch_sizes
from explorer.training import Trainer

NAMES = {"cbam": "CBAM net", "plain": "plain baseline", "vit": "ViT"}
CNNS = ("cbam", "plain")
GALLERY_SIZE = 4  # test images drawn in the gallery
PROBE_SIZE = 64  # test images whose maps are scored for localization
CHUNK = 10  # steps each net trains before the next takes its turn (and a snapshot is taken)
BATCH_SIZE = 64
PATCH_CHOICES = (2, 4, 8)  # patch sizes the tab offers (those that divide the images)


def image_shape(data) -> tuple[int, int]:
    """(channels, size) of the data's square images."""
    channels, _, size = data["train"].features["pixel_values"].shape
    return channels, size


def n_classes(data) -> int:
    return data["train"].features["label"].num_classes


def patch_choices(size: int) -> list[int]:
    """The offered patch sizes that cut a ``size`` image into whole patches."""
    return [p for p in PATCH_CHOICES if p in valid_patch_sizes(size)]


def vit_config(data, patch_size: int, n_heads: int, n_layers: int, d_model: int, pool: str,
               size: int | None = None) -> ViTConfig:
    """The ViT's config for ``data`` (or for ``size`` pixels when there is no data yet); a ValueError says why not."""
    channels, image_size = image_shape(data) if data is not None else (1, size or 32)
    return ViTConfig(image_size=image_size, patch_size=patch_size, channels=channels, d_model=d_model,
                     n_heads=n_heads, n_layers=n_layers, pool=pool, n_classes=n_classes(data) if data is not None else 4)


def cnn_models(data, cbam: bool, cbam_options: dict) -> dict:
    """New CBAM and plain nets (same seed, so the same backbone weights) for ``data``."""
    channels, _ = image_shape(data)
    models = {}
    for name, use_cbam in (("cbam", cbam), ("plain", False)):
        torch.manual_seed(0)
        models[name] = CBAMNet(n_classes(data), in_channels=channels, cbam=use_cbam, **(cbam_options if use_cbam else {}))
    return models


def vit_model(config: ViTConfig) -> TinyViT:
    torch.manual_seed(0)
    return TinyViT(config)


def probe(name: str, model, pixels: torch.Tensor, boxes=None):
    """The record of one net: CBAM maps and Grad-CAM for the CNNs; CLS maps, rollout and heads for the ViT."""
    if name == "vit":
        return probe_vit(model, pixels, boxes, keep=GALLERY_SIZE)
    return probe_maps(model, pixels, boxes)


def trainer_for(name: str, model, data, lr: float) -> Trainer:
    """A trainer whose snapshots probe the first test images, with its first snapshot taken; on the shapes data its
    batches are mirrored at random (``mirror``): twice the scenes to learn from, which the ViT needs most."""
    pixels, _, boxes = first_images(data["test"], PROBE_SIZE)
    trainer = Trainer(model, data, lr=lr, batch_size=BATCH_SIZE, seed=0, snapshot_every=CHUNK,
                      probe=lambda m: probe(name, m, pixels, boxes),
                      augment=mirror if keeps_label_mirrored(data) else None)
    trainer.take_snapshot()
    return trainer


def cnn_settings(model: CBAMNet) -> dict:
    """The CBAM settings that describe a (loaded) CBAM net."""
    config = model.config
    keys = ("channel", "spatial", "order", "merge", "ratio", "kernel_size")
    return dict(cbam=config["cbam"], pools=list(config.get("pool", PAPER["pool"])),
                **{key: config.get(key, PAPER.get(key)) for key in keys})


def vit_settings(model: TinyViT | None) -> dict:
    """The ViT settings that describe a (loaded) ViT, or the switch off when there is none."""
    if model is None:
        return dict(vit=False)
    c = model.config
    return dict(vit=True, patch_size=c.patch_size, vit_heads=c.n_heads, vit_layers=c.n_layers, vit_width=c.d_model,
                vit_pool=c.pool)


def net_files(folder: Path) -> dict[str, Path]:
    """The files Load reads from ``folder``, by net name (the ViT only if it was saved); a ValueError for a folder of
    the Train a Transformer tab."""
    if not (folder / "cbam.safetensors").exists() and (folder / checkpoints.FILE_NAME).exists():
        raise ValueError(f"{folder} holds a model of the Train a Transformer tab, not the Vision tab's nets: load it "
                         "there. Nothing was loaded.")
    names = [*CNNS, *(["vit"] if (folder / "vit.safetensors").exists() else [])]
    return {name: folder / f"{name}.safetensors" for name in names}


def check_net(name: str, model, data, data_name: str, folder: Path) -> None:
    """A ValueError in words unless ``model`` is the kind of net ``name`` is and reads the data's images."""
    kind = TinyViT if name == "vit" else CBAMNet
    if not isinstance(model, kind):
        raise ValueError(f"{folder / name}.safetensors holds a {type(model).__name__}, not the {NAMES[name]} "
                         "of this tab; nothing was loaded.")
    channels, size = image_shape(data)
    if name == "vit":
        reads = (model.config.channels, model.config.n_classes, model.config.image_size)
    else:
        reads = (model.config["in_channels"], model.config["n_classes"], size)
    wanted = (channels, n_classes(data), size)
    if reads != wanted:
        raise ValueError(f"The saved {NAMES[name]} reads {reads[0]}-channel {reads[2]} x {reads[2]} images into "
                         f"{reads[1]} classes; the {data_name} data has {wanted[0]}-channel {wanted[2]} x "
                         f"{wanted[2]} images in {wanted[1]} classes. Nothing was loaded.")
