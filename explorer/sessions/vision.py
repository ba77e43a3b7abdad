"""The Vision tab's state: the images, the CBAM and ViT settings, and the nets trained side by side on the same batches.

The CBAM net, the identical plain CNN (same seed, same backbone) and, when switched on, a small Vision Transformer
train in turns through a ``TrainingGroup``. New settings rebuild untrained nets at once; trained nets are kept
until Reset. Building, probing and loading the nets lives in ``sessions/vision_nets.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from traitlets import Any, Bool, Dict, Int, List, TraitError, Unicode, observe, validate

from explorer import checkpoints
from explorer.data.images import first_images, image_from_bytes, load_digits, load_image_folder, make_shapes
from explorer.limits import check_cap
from explorer.models.cbam import KERNEL_SIZES, MERGES, ORDERS, PAPER, POOL_TYPES, PRESET_NOTES, PRESETS, CBAM, hidden_units
from explorer.paths import confined
from explorer.sessions.base import say_name
from explorer.sessions.vision_nets import (BATCH_SIZE, CHUNK, GALLERY_SIZE, NAMES, cnn_models, cnn_settings,  # noqa: F401
                                           load_nets, probe, trainer_for, vit_model, vit_settings)
from explorer.sessions.vision_pretrained import YOUR_IMAGE, PretrainedViTSection
from explorer.sessions.vision_vit import ViTSettings
from explorer.threads import Throttle
from explorer.training_group import TrainingGroup

DATASETS = ("shapes", "digits", "folder")
NET_WIDTH = 32  # the nets' default width: the channels each CBAM weighs
CBAM_SETTINGS = ("cbam", "channel", "spatial", "order", "merge", "ratio", "kernel_size", "pools")


class VisionSession(PretrainedViTSection, ViTSettings):
    """``trainers`` are the nets being trained on ``data``; ``revision`` counts what there is to redraw."""

    key = "vision"
    title = "Vision"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    dataset = Unicode("shapes", help="dataset").tag(link=True)
    folder = Unicode("", help="image folder").tag(setting=True)
    cbam = Bool(True, help="CBAM switch").tag(link=True)
    channel = Bool(True, help="channel attention").tag(link=True)
    spatial = Bool(True, help="spatial attention").tag(link=True)
    order = Unicode("channel-spatial", help="order of the gates").tag(link=True)
    merge = Unicode("sum", help="merge").tag(link=True)
    ratio = Int(16, help="reduction ratio").tag(link=True)
    kernel_size = Int(7, help="kernel size").tag(link=True)
    pools = List(list(PAPER["pool"]), help="pooling types").tag(link=True)
    lr = Any(0.003, help="learning rate").tag(link=True)
    epochs = Int(3, help="number of epochs").tag(link=True)
    selected = Int(0, help="gallery image").tag(link=True)
    path = Unicode("checkpoints/cbam", help="checkpoint folder").tag(setting=True)

    data = Any(None)
    data_name = Unicode("")
    trainers = Dict()  # {"cbam": Trainer, "plain": Trainer, "vit": Trainer (when switched on)}
    yours = Any(None)  # (pixels, {net name: ImageAttention}) of the uploaded image
    revision = Int(0)
    training = Bool(False)

    def __init__(self, owner=None, n_train: int = 2000, n_test: int = 500, **settings):
        self.sizes = dict(n_train=n_train, n_test=n_test)
        self.uploaded: bytes | None = None
        super().__init__(owner)
        self._bump = Throttle(self.home, lambda: setattr(self, "revision", self.revision + 1), 0.3)
        self.update(**settings)
        self._use(self._prepare(make_shapes(**self.sizes), "shapes"))
        self.say(f"Ready: press Train to train the {self.net_list()} side by side.", "ok")

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``; an example sets every CBAM setting it does not name to the paper's."""
        if changes.get("preset"):
            name = changes["preset"]
            if name not in PRESETS:
                raise ValueError(f"There is no preset called '{say_name(name)}'. Choose one of: {', '.join(PRESETS)}.")
            preset = {**PAPER, **PRESETS[name]}
            changes = {**{key: preset[key] for key in CBAM_SETTINGS if key != "pools"}, "pools": list(preset["pool"]),
                       **changes}
        super().update(**self.implied_vit_settings(changes))

    def cbam_options(self) -> dict:
        return dict(channel=self.channel, spatial=self.spatial, order=self.order, merge=self.merge, ratio=self.ratio,
                    kernel_size=self.kernel_size, pool=tuple(self.pools))

    def check_settings(self) -> None:
        """One CBAM block built from the settings being set: refused (with the reason) if it cannot be built."""
        if not self.pools:
            raise TraitError(f"Tick at least one pooling type ({', '.join(POOL_TYPES)}).")
        if self.cbam:
            try:
                CBAM(NET_WIDTH, **self.cbam_options())
            except ValueError as error:
                raise TraitError(str(error)) from None
        self.check_vit()
        self.check_pretrained()

    @validate("dataset")
    def _valid_dataset(self, proposal):
        if proposal["value"] not in DATASETS:
            raise TraitError(f"Unknown dataset '{say_name(proposal['value'])}'. Choose one of: {', '.join(DATASETS)}.")
        return proposal["value"]

    @validate("order", "merge", "kernel_size")
    def _valid_choice(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        choices = {"order": ORDERS, "merge": MERGES, "kernel_size": KERNEL_SIZES}[name]
        if value not in choices:
            raise TraitError(f"Unknown {proposal['trait'].help} '{say_name(value)}'. "
                             f"Choose one of: {', '.join(map(str, choices))}.")
        return value

    @validate("pools")
    def _valid_pools(self, proposal):
        unknown = [p for p in proposal["value"] if p not in POOL_TYPES]
        if unknown:
            raise TraitError(f"Unknown pooling type '{say_name(unknown[0])}': use {', '.join(POOL_TYPES)}.")
        return [p for p in POOL_TYPES if p in proposal["value"]]

    @validate("lr")
    def _valid_lr(self, proposal):
        try:
            value = float(proposal["value"])
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 < value < float("inf"):
            raise TraitError(f"The learning rate must be a positive number such as 0.003, got {say_name(proposal['value'])}.")
        return value

    @validate("epochs", "selected")
    def _valid_count(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        if name == "epochs" and value < 1:
            raise TraitError(f"Train for at least 1 epoch, got {value}.")
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
        if not self.trainers or self.worker.running or self.nets_match():
            return
        if max(t.step for t in self.trainers.values()) == 0 and not self.training:
            self._in_worker("Applying the settings…", lambda: self._new_trainers(self._models(self.data), self.data),
                            lambda trainers: f"Settings applied to the untrained nets. {self.note()}".strip())
        else:
            self.say(f"New settings apply when you press Reset (the trained nets are kept until then). {self.note()}")

    @observe("dataset")
    def _on_dataset(self, change) -> None:
        if change["new"] == "folder":
            self.say("Type the path of a folder with one sub-folder per class, then press Load data.")
        else:
            self.load_data()

    @observe("selected", "vit_head", "vit_patch")
    def _on_selected(self, change) -> None:
        self.revision += 1

    # ----- data and nets -------------------------------------------------------------------------------------------
    def _in_worker(self, message: str, work, done) -> None:
        """Run ``work()`` in the worker; on the home thread, use what it made (data, trainers) and say ``done(it)``."""
        if self.training or self.worker.running:
            raise ValueError("Busy training or loading: press Stop or wait a moment.")
        self.busy = True
        self.say(message, "busy")
        self.worker.submit(work, done=lambda made: self._finished_work(made, done), failed=self.fail)

    def _finished_work(self, made, done) -> None:
        self._use(made)
        message = done(made)
        self.busy = False
        self._refresh_yours()
        self.revision += 1
        self.say(message, "ok")

    def load_data(self) -> None:
        """Load the chosen dataset in the worker and start fresh nets on it (the old ones stay on any error)."""
        kind, folder = self.dataset, self.folder.strip()
        loaders = {"shapes": lambda: make_shapes(**self.sizes), "digits": load_digits,
                   "folder": lambda: self._read_folder(folder)}
        self._in_worker(f"Loading {kind}…", lambda: self._prepare(loaders[kind](), kind), lambda _: self._data_summary())

    def _read_folder(self, folder: str):
        """The image folder, read in the worker: Stop ends it, and the progress bar follows it."""
        report = Throttle(self.home, lambda fraction: setattr(self, "progress", fraction), 0.3)
        return load_image_folder(confined(folder, "image folder"), stop=self.worker.stopping, progress=report)

    def _prepare(self, data, name: str) -> tuple:
        """Fresh nets and their trainers for ``data`` (in the worker): what ``_use`` then shows."""
        return data, name, self._new_trainers(self._models(data), data)

    def _use(self, made) -> None:
        """Show what the worker made: trainers, with new data (a tuple) or alone (a dict)."""
        if isinstance(made, tuple):
            self.data, self.data_name, made = made
        self._use_trainers(made)

    def _data_summary(self) -> str:
        skipped = getattr(self.data, "skipped", 0)
        note = f" ({skipped} unreadable file(s) skipped)" if skipped else ""
        return (f"{self.data_name}: {len(self.data['train'])} training and {len(self.data['test'])} test "
                f"images in {len(self.class_names)} classes{note}.")

    @property
    def class_names(self) -> list[str]:
        return list(self.data["test"].features["label"].names)

    def gallery(self) -> tuple:
        """The gallery's images and labels: the first test images."""
        pixels, labels, _ = first_images(self.data["test"], GALLERY_SIZE)
        return pixels, labels

    def _models(self, data) -> dict:
        """New CBAM and plain nets (same seed, so the same backbone weights) and the ViT if it is on, for ``data``."""
        models = cnn_models(data, self.cbam, self.cbam_options())
        if self.vit:
            models["vit"] = vit_model(self.vit_config(data))
        return models

    def _new_trainers(self, models: dict, data) -> dict:
        """Trainers (each with its first snapshot) and their group, made in the worker."""
        return self._grouped({name: trainer_for(name, model, data, self.lr) for name, model in models.items()})

    def _grouped(self, trainers: dict, kept: dict | None = None) -> dict:
        """``trainers`` in a new group; the test-accuracy curves of ``kept`` (name -> evaluations) carry over."""
        group = TrainingGroup(trainers, chunk=CHUNK)
        group.evaluations.update({name: value for name, value in (kept or {}).items() if name in trainers})
        group.add_callback(self._on_training)
        return {"trainers": trainers, "group": group}

    def _use_trainers(self, made: dict) -> None:
        self.group = made["group"]
        self.trainers = made["trainers"]

    def reset(self, note: str = "New nets built from the settings; nothing trained yet.") -> None:
        """Fresh nets from the current settings, in the worker."""
        self._in_worker("Building fresh nets…", lambda: self._new_trainers(self._models(self.data), self.data),
                        lambda _: f"{note} {self.note()}".strip())

    def apply_preset(self, name: str) -> None:
        if self.training:
            raise ValueError("Training is running: press Stop before choosing a preset.")
        super().apply_preset(name)
        if max(t.step for t in self.trainers.values()) > 0:
            self.reset(PRESET_NOTES.get(name, f"{name}: fresh nets built; press Train."))

    # ----- training ------------------------------------------------------------------------------------------------
    def steps_for_epochs(self) -> int:
        return self.epochs * -(-len(self.data["train"]) // BATCH_SIZE)

    def train(self, steps: int | None = None) -> None:
        """Train both nets ``steps`` steps each (default: the epochs setting) on the training thread."""
        if self.training or self.worker.running:
            raise ValueError("Busy training or loading: press Stop or wait a moment.")
        steps = self.steps_for_epochs() if steps is None else int(steps)
        check_cap(steps)
        for trainer in self.trainers.values():
            trainer.lr = self.lr
        self.training, self.progress = True, 0.0
        self.group.start(steps)
        self.say(f"Training the {self.net_list()} for {steps} steps…", "busy")

    def stop(self) -> None:
        """End training at the next step boundary, or the reading of an image folder; the nets and their history
        are kept."""
        if self.worker.running:
            self.worker.stop()
        elif not self.group.stop(timeout=0.0):
            self.say("Nothing is training.")

    def stop_work(self) -> None:
        super().stop_work()
        self.group.stop(timeout=0.0)

    def _on_training(self, group, event: str, info: dict) -> None:
        """On the training thread: progress and redraws are throttled; the end is told on the home thread."""
        if event == "round":
            self.home.call(self._progressed, info["done"], info["steps"])
            return
        head = {"finished": "Finished", "stopped": "Stopped"}.get(event, info["message"])
        kind = "ok" if event in ("finished", "stopped") else "error"
        self.home.call(self._trained, self.summary(head) if kind == "ok" else head, kind)

    def _progressed(self, done: int, steps: int) -> None:
        self.progress = done / steps
        self.say(self.summary(f"Step {done}/{steps}"), "busy")
        self._bump()

    def _trained(self, message: str, kind: str) -> None:
        self.training = False
        self._refresh_yours()
        self._bump.flush()
        self.say(message, kind)

    def summary(self, head: str) -> str:
        parts = [f"{NAMES[name]} {accuracy[-1]:.0%}" for name, (_, accuracy) in self.group.evaluations.items()]
        return f"{head}: test accuracy {', '.join(parts)}."

    def wait(self, timeout: float = 120.0) -> bool:
        return self.home.wait_until(lambda: not self.worker.running and not self.busy and not self.training, timeout)

    # ----- your image and checkpoints ------------------------------------------------------------------------------
    def show_image(self, content: bytes) -> None:
        """Maps of an uploaded image (grey or colour, resized to the data's images); a bad file keeps the last one."""
        self._upload_pixels(content)
        self.uploaded = content
        self._refresh_yours()
        if self.pretrained_image == YOUR_IMAGE:
            self.refresh_pretrained()

    def _upload_pixels(self, content: bytes) -> torch.Tensor:
        channels, _, size = self.data["train"].features["pixel_values"].shape
        return torch.from_numpy(image_from_bytes(content, size, channels))[None]

    def _refresh_yours(self) -> None:
        if self.uploaded is None:
            return
        pixels = self._upload_pixels(self.uploaded)  # the nets may be training: read copies of them
        self.yours = (pixels, {NAMES[n]: probe(n, copy.deepcopy(t.model), pixels) for n, t in self.trainers.items()})

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
        for name, trainer in self.trainers.items():
            checkpoints.save(trainer.model, folder / f"{name}.safetensors", history=trainer.history)
        if "vit" not in self.trainers:
            (folder / "vit.safetensors").unlink(missing_ok=True)
        self.say(f"Saved the {len(self.trainers)} nets to {folder}.", "ok")

    def load(self) -> None:
        """Load the nets saved by ``save`` (in the worker); they must fit the current data."""
        folder = self.checkpoint_folder()
        self._in_worker(f"Loading {folder}…", lambda: self._load_from(folder), self._loaded)

    def _load_from(self, folder: Path) -> dict:
        loaded = load_nets(folder, self.data, self.data_name)
        made = self._new_trainers({name: model for name, (model, _) in loaded.items()}, self.data)
        for name, trainer in made["trainers"].items():
            trainer.restore_history(loaded[name][1])
            trainer.take_snapshot()
        return self._grouped(made["trainers"])  # its first evaluation is of the loaded nets

    def _loaded(self, made: dict) -> str:
        """The settings show the loaded nets' (they describe the nets now: nothing is rebuilt)."""
        vit = made["trainers"].get("vit")
        self.update(**cnn_settings(made["trainers"]["cbam"].model), **vit_settings(vit and vit.model))
        return self.summary(f"Loaded the {len(made['trainers'])} nets from {self.checkpoint_folder()}")
