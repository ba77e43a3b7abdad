"""The Vision tab's state: the images, the CBAM and ViT settings, and the nets trained side by side on the same batches.

The CBAM net, the identical plain CNN (same seed, same backbone) and, when switched on, a small Vision Transformer
train in turns in one ``Lab``. New settings rebuild untrained nets at once; trained nets are kept until Reset.
Building, probing and loading the nets lives in ``sessions/vision_nets.py``; the images and the lab in
``sessions/vision_base.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from traitlets import Bool, Float, Instance, Int, List, TraitError, Unicode, observe

from explorer.data.images import first_images, load_digits, load_image_folder, make_shapes
from explorer.lab import Lab, LabView
from explorer.limits import check_cap
from explorer.maps import ImageAttention
from explorer.models.cbam import KERNEL_SIZES, MERGES, ORDERS, PAPER, POOL_TYPES, PRESET_NOTES, PRESETS, CBAM, hidden_units
from explorer.models.map_deletion import MapTest, map_curves
from explorer.paths import confined
from explorer.sessions.base import say_name, validate
from explorer.sessions.rules import Choice, NumberChoice, positive_rate
from explorer.sessions.vision_base import Nets
from explorer.sessions.vision_nets import (BATCH_SIZE, GALLERY_SIZE, NAMES, check_net, cnn_models, cnn_settings,  # noqa: F401
                                           net_files, probe, trainer_for, vit_model, vit_settings)
from explorer.sessions.vision_pretrained import YOUR_IMAGE, PretrainedViTSection
from explorer.sessions.vision_vit import ViTSettings
from explorer.threads import Throttle
from explorer.training import check_steps

DATASETS = ("shapes", "digits", "folder")
NET_WIDTH = 32  # the nets' default width: the channels each CBAM weighs
DELETION_IMAGES = 32  # test images of the deletion and insertion test: 11 points, 2 orders, 2 curves each per map
CBAM_SETTINGS = ("cbam", "channel", "spatial", "order", "merge", "ratio", "kernel_size", "pools")


@dataclass(frozen=True)
class YourImage:
    """The visitor's image through every net on screen."""

    pixels: torch.Tensor  # [1, C, H, W], resized to the data's images
    records: dict[str, ImageAttention]  # by net name ("CBAM net", "plain baseline", "ViT")


class VisionSession(PretrainedViTSection, ViTSettings):
    """``lab`` trains the nets on ``data``; ``lab_view`` is what the panel draws."""

    key = "vision"
    title = "Vision"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    dataset = Choice(DATASETS, help="dataset").tag(link=True)
    folder = Unicode("", help="image folder").tag(setting=True)
    cbam = Bool(True, help="CBAM switch").tag(link=True)
    channel = Bool(True, help="channel attention").tag(link=True)
    spatial = Bool(True, help="spatial attention").tag(link=True)
    order = Choice(ORDERS, "channel-spatial", help="order of the gates").tag(link=True)
    merge = Choice(MERGES, "sum", help="merge").tag(link=True)
    ratio = Int(16, help="reduction ratio").tag(link=True)
    kernel_size = NumberChoice(KERNEL_SIZES, 7, help="kernel size").tag(link=True)
    pools = List(list(PAPER["pool"]), help="pooling types").tag(link=True)
    lr = Float(0.003, help="learning rate").tag(link=True)
    epochs = Int(5, help="number of epochs").tag(link=True)
    selected = Int(0, help="gallery image").tag(link=True)
    path = Unicode("checkpoints/cbam", help="checkpoint folder").tag(setting=True)

    yours = Instance(YourImage, allow_none=True)  # the uploaded image through the nets
    map_test = Instance(MapTest, allow_none=True)  # deletion and insertion of the nets' maps at one step

    def __init__(self, owner=None, n_train: int = 8000, n_test: int = 500, data_seed: int = 0, **settings):
        super().__init__(owner, n_train=n_train, n_test=n_test, data_seed=data_seed)
        self.update(**settings)
        self.show(self._fresh(make_shapes(**self.sizes), "shapes"))
        self.say(f"Ready: press Train to train the {self.net_list()} side by side.", "ok")

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``; an example sets every CBAM setting it does not name to the paper's."""
        name = self.chosen_preset(changes)
        if name:
            preset = {**PAPER, **PRESETS[name]}
            changes = {**{key: preset[key] for key in CBAM_SETTINGS if key != "pools"}, "pools": list(preset["pool"]),
                       **changes}
        self.with_preset(name, self.implied_vit_settings(changes))

    def cbam_options(self) -> dict:
        return dict(channel=self.channel, spatial=self.spatial, order=self.order, merge=self.merge, ratio=self.ratio,
                    kernel_size=self.kernel_size, pool=tuple(self.pools))

    def check_settings(self) -> None:
        """One CBAM block built from the settings being set: refused (with the reason) if it cannot be built."""
        if not self.pools:
            raise TraitError(f"Tick at least one of the pooling types ({', '.join(POOL_TYPES)}).")
        if self.cbam:
            try:
                CBAM(NET_WIDTH, **self.cbam_options())
            except ValueError as error:
                raise TraitError(str(error)) from None
        self.check_vit()
        self.check_pretrained()

    @validate("pools")
    def _valid_pools(self, proposal):
        unknown = [p for p in proposal["value"] if p not in POOL_TYPES]
        if unknown:
            raise TraitError(f"Unknown pooling type '{say_name(unknown[0])}': use {', '.join(POOL_TYPES)}.")
        return [p for p in POOL_TYPES if p in proposal["value"]]

    @validate("lr")
    def _valid_lr(self, proposal):
        return positive_rate(proposal["value"], "0.003")

    @validate("epochs", "selected")
    def _valid_count(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        if name == "epochs" and value < 1:
            raise TraitError(f"Train for at least 1 epoch: the number of epochs was {value}.")
        if name == "selected" and not 0 <= value < GALLERY_SIZE:
            raise TraitError(f"The gallery shows images 1 to {GALLERY_SIZE}.")
        return value

    def note(self) -> str:
        """What the settings mean that a student might not expect (a ratio above the width)."""
        if self.cbam and self.channel and NET_WIDTH // self.ratio < 1:
            return (f"Ratio {self.ratio} is larger than the {NET_WIDTH} channels: the MLP keeps "
                    f"{hidden_units(NET_WIDTH, self.ratio)} hidden unit.")
        return ""

    def nets_match(self) -> bool:
        """The CBAM net on screen is the one the settings describe."""
        config = self.trainers["cbam"].model.config
        wanted = dict(self.cbam_options(), cbam=self.cbam) if self.cbam else {"cbam": False}
        return all(config.get(key, PAPER.get(key)) == value for key, value in wanted.items())

    @observe(*CBAM_SETTINGS)
    def _on_cbam_setting(self, change) -> None:
        if self.lab is None or self.worker.running or self.nets_match():
            return
        if self.lab.step == 0 and not self.training:
            self.rebuild("Applying the settings…", lambda: self._fresh(self.data),
                         lambda _: f"Settings applied to the untrained nets. {self.note()}".strip())
        else:
            self.say(f"New settings apply when you press Reset (the trained nets are kept until then). {self.note()}")

    @observe("dataset")
    def _on_dataset(self, change) -> None:
        if change["new"] == "folder":
            self.say("Type the path of a folder with one sub-folder per class, then press Load data.")
        else:
            self.load_data()

    # ----- data and nets -------------------------------------------------------------------------------------------
    def load_data(self) -> None:
        """Load the chosen dataset in the worker and start fresh nets on it (the old ones stay on any error)."""
        kind, folder = self.dataset, self.folder.strip()
        loaders = {"shapes": lambda: make_shapes(**self.sizes), "digits": load_digits,
                   "folder": lambda: self._read_folder(folder)}
        self.rebuild(f"Loading {kind}…", lambda: self._fresh(loaders[kind](), kind), lambda _: self._data_summary())

    def _read_folder(self, folder: str):
        """The image folder, read in the worker: Stop ends it, and the progress bar follows it."""
        report = Throttle(self.home, lambda fraction: setattr(self, "progress", fraction), 0.3)
        return load_image_folder(confined(folder, "image folder"), stop=self.worker.stopping, progress=report)

    def _fresh(self, data, name: str | None = None) -> Nets:
        """New CBAM and plain nets (same seed, so the same backbone weights) and the ViT if it is on, for ``data``,
        each with its first snapshot, in a new lab (in the worker)."""
        models = cnn_models(data, self.cbam, self.cbam_options())
        if self.vit:
            models["vit"] = vit_model(self.vit_config(data))
        return self.nets({name: trainer_for(name, model, data, self.lr) for name, model in models.items()},
                         data=data, data_name=name)

    def show(self, nets: Nets) -> None:
        super().show(nets)
        self.map_test = None  # it measured the nets that are gone
        self._refresh_yours()

    def _data_summary(self) -> str:
        skipped = getattr(self.data, "skipped", 0)
        note = f" ({skipped} unreadable file(s) skipped)" if skipped else ""
        return (f"{self.data_name}: {len(self.data['train'])} training and {len(self.data['test'])} test "
                f"images in {len(self.class_names)} classes{note}.")

    def reset(self, note: str = "New nets built from the settings; nothing trained yet.") -> None:
        """Fresh nets from the current settings, in the worker."""
        self.rebuild("Building fresh nets…", lambda: self._fresh(self.data), lambda _: f"{note} {self.note()}".strip())

    def apply_preset(self, name: str) -> None:
        if self.training:
            raise ValueError("Training is running: press Stop before choosing a preset.")
        super().apply_preset(name)
        if self.lab.step > 0:
            self.reset(PRESET_NOTES.get(name, f"{name}: fresh nets built; press Train."))

    # ----- training ------------------------------------------------------------------------------------------------
    def steps_for_epochs(self) -> int:
        return self.epochs * -(-len(self.data["train"]) // BATCH_SIZE)

    def train(self, steps: int | None = None) -> None:
        """Train the nets ``steps`` steps each (default: the epochs setting) on the lab's worker."""
        if self.training or self.worker.running:
            raise ValueError("Busy training or loading: press Stop or wait a moment.")
        steps = check_cap(check_steps(self.steps_for_epochs() if steps is None else steps))
        for trainer in self.trainers.values():
            trainer.lr = self.lr
            trainer.decay_over(steps)
        self.progress = 0.0
        steps = self.start_training(steps)
        self.say(f"Training the {self.net_list()} for {steps} steps…", "busy")

    def stop(self) -> None:
        """End training at the next step boundary, or the reading of an image folder; the nets and their history
        are kept."""
        if self.worker.running:
            self.worker.stop()
        elif not self.lab.stop(timeout=0.0):
            self.say("Nothing is training.")

    def progressed(self, view: LabView) -> None:
        self.progress = view.progress
        self.say(self.summary(view, f"Step {view.done}/{view.target}"), "busy")

    def ended(self, view: LabView) -> None:
        self._refresh_yours()
        if view.status in ("finished", "stopped"):
            self.say(self.summary(view, view.status.capitalize()), "ok")
        else:
            self.say(view.message, "error")

    @staticmethod
    def summary(view: LabView, head: str) -> str:
        parts = [f"{NAMES[run.name]} {run.accuracy:.0%}" for run in view.runs]
        return f"{head}: test accuracy {', '.join(parts)}."

    # ----- deletion and insertion ---------------------------------------------------------------------------------
    def measure_deletion(self) -> None:
        """Deletion and insertion of every net's maps (the ones localization scores) over the first test images, in
        the worker; Stop ends it and the previous result stays. Refused while training: the maps change every step."""
        if self.training or self.worker.running:
            raise ValueError("Busy training or loading: the maps change with every step. Press Stop, or measure "
                             "when training ends.")
        nets = {NAMES[name]: trainer.model for name, trainer in self.trainers.items()}
        pixels, _, _ = first_images(self.data["test"], DELETION_IMAGES)
        step, stop, told = self.lab.step, self.worker.stopping.is_set, Throttle(self.home, self._told_deletion, 0.3)
        self.progress = 0.0
        self.submit(f"Deletion and insertion of the maps over {len(pixels)} test images…",
                    lambda: MapTest(step, len(pixels), map_curves(nets, pixels, stop=stop, progress=told)),
                    self._measured)

    def _told_deletion(self, fraction: float, words: str) -> None:
        if self.busy:
            self.progress = fraction
            self.say(words, "busy")

    def _measured(self, found: MapTest) -> None:
        self.map_test, self.progress = found, 1.0
        self.say(f"Deletion and insertion of the maps at step {found.step}, over {found.images} test images.", "ok")

    # ----- your image and checkpoints ------------------------------------------------------------------------------
    def show_image(self, content: bytes) -> None:
        """Maps of an uploaded image (grey or colour, resized to the data's images); a bad file keeps the last one."""
        self.upload_pixels(content)
        self.uploaded = content
        self._refresh_yours()
        if self.pretrained_image == YOUR_IMAGE:
            self.refresh_pretrained()

    def _refresh_yours(self) -> None:
        if self.uploaded is None:
            return
        pixels = self.upload_pixels(self.uploaded)  # the nets may be training: read copies of them
        self.yours = YourImage(pixels, {NAMES[n]: probe(n, copy.deepcopy(t.model), pixels)
                                        for n, t in self.trainers.items()})

    def checkpoint_folder(self) -> Path:
        return confined(self.path.strip() or "checkpoints/cbam", "checkpoint folder")

    def checkpoint_files(self) -> list[Path]:
        """The files Save writes and Load reads."""
        return [self.checkpoint_folder() / f"{name}.safetensors" for name in ("cbam", "plain", "vit")]

    def save(self) -> None:
        """Save the nets (with their histories) as ``<path>/cbam.safetensors``, ``plain.safetensors`` and, when the
        ViT is on, ``vit.safetensors`` (an older ``vit.safetensors`` is removed, so Load brings back what was saved)."""
        if self.training:
            raise ValueError("Training is running: press Stop before you save.")
        folder = self.checkpoint_folder()
        self.lab.save({name: folder / f"{name}.safetensors" for name in self.trainers})
        if "vit" not in self.trainers:
            (folder / "vit.safetensors").unlink(missing_ok=True)
        self.say(f"Saved the {len(self.trainers)} nets to {folder}.", "ok")

    def load(self) -> None:
        """Load the nets saved by ``save`` (in the worker); they must fit the current data."""
        folder = self.checkpoint_folder()
        self.rebuild(f"Loading {folder}…", lambda: self._load_from(folder), self._loaded)

    def _load_from(self, folder: Path) -> Nets:
        data, name = self.data, self.data_name
        trainers = Lab.load_trainers(net_files(folder), lambda net, model: trainer_for(net, model, data, self.lr),
                                     lambda net, model: check_net(net, model, data, name, folder))
        return self.nets(trainers)  # its first evaluation is of the loaded nets

    def _loaded(self, nets: Nets) -> str:
        """The settings show the loaded nets' (they describe the nets now: nothing is rebuilt)."""
        vit = nets.lab.trainers.get("vit")
        self.update(**cnn_settings(nets.lab.trainers["cbam"].model), **vit_settings(vit and vit.model))
        return self.summary(nets.lab.view, f"Loaded the {len(nets.lab.trainers)} nets from {self.checkpoint_folder()}")
