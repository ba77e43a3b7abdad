"""The CBAM tab: train a small CNN with CBAM and the identical plain CNN side by side, and watch where CBAM looks.

Controls on the left; on the right the curves of both nets, a gallery of test images with each stage's spatial
map and Grad-CAM over them, the channel weights of the selected image, and the localization over training.
Both nets train in one background thread, alternating chunks of steps through the shared Trainer.
"""

from __future__ import annotations

import copy
import threading
import warnings
from pathlib import Path

import ipywidgets as widgets
import torch

from explorer import checkpoints
from explorer.data.images import first_images, image_from_bytes, load_digits, load_image_folder, make_shapes
from explorer.models.cbam import (KERNEL_SIZES, MERGES, ORDERS, PAPER, POOL_TYPES, PRESET_NOTES, PRESETS, CBAM, CBAMNet,
                                  localization_history, probe_maps)
from explorer.training import Trainer
from explorer.views import images as view
from explorer.widgets.common import (BackgroundTask, StatusLine, Throttle, labelled, section, shows_errors,
                                     unknown_name)
from explorer.widgets.figure import Figure, copy_trace_data

NAMES = {"cbam": "CBAM net", "plain": "plain baseline"}
DATASETS = (("shapes (with boxes)", "shapes"), ("digits (scikit-learn)", "digits"), ("your folder", "folder"))
GALLERY_SIZE = 4  # test images drawn in the gallery
PROBE_SIZE = 64  # test images whose maps are scored for localization
CHUNK = 10  # steps each net trains before the other takes its turn (and a snapshot is taken)
BATCH_SIZE = 64
NET_WIDTH = 32  # the nets' default width: the channels each CBAM weighs


def tagged(widget: widgets.Widget, name: str) -> widgets.Widget:
    """``widget`` with the CSS class ``ae-cbam-<name>`` (for tests and styling)."""
    widget.add_class(f"ae-cbam-{name}")
    return widget


def button(description: str, icon: str, action, name: str, style: str = "", width: str = "100px") -> widgets.Button:
    control = tagged(widgets.Button(description=description, icon=icon, button_style=style,
                                    layout=widgets.Layout(width=width)), name)
    control.on_click(lambda _: action())
    return control


class CBAMPanel(widgets.VBox):
    """The live CBAM lab; ``train(steps)`` and ``apply_preset(name)`` drive it from code too (work runs in
    ``self.task``; ``self.task.join()`` waits for it)."""

    def __init__(self, n_train: int = 2000, n_test: int = 500):
        super().__init__()
        self.add_class("ae-cbam")
        self.sizes = dict(n_train=n_train, n_test=n_test)
        self.status = StatusLine()
        self.task = BackgroundTask(self.status)
        self._stop = threading.Event()
        self._events: dict[str, str] = {}
        self.uploaded: bytes | None = None  # the last uploaded image file, redrawn after training
        self._syncing = False
        self._build_controls()
        self.redraw_soon = Throttle(self.redraw, 0.3)
        self.use_data(make_shapes(**self.sizes), "shapes")
        self._build_figures()
        self.children = [widgets.HBox([self.controls, self.outputs])]
        self.status.ok("Ready: press Train to train the CBAM net and the plain baseline side by side.")

    # ----- layout ---------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        w = widgets
        self.dataset = tagged(w.Dropdown(options=DATASETS, value="shapes", layout=w.Layout(width="190px")), "dataset")
        self.folder = w.Text(placeholder="folder with one sub-folder per class", layout=w.Layout(width="300px"))
        self.use_cbam = tagged(w.Checkbox(value=True, description="CBAM on", indent=False), "use-cbam")
        self.options = {
            "channel": w.Checkbox(value=True, description="channel attention", indent=False),
            "spatial": w.Checkbox(value=True, description="spatial attention", indent=False),
            "order": w.Dropdown(options=ORDERS, value="channel-spatial", layout=w.Layout(width="170px")),
            "merge": w.ToggleButtons(options=MERGES, value="sum", style=dict(button_width="70px")),
            "ratio": tagged(w.IntText(value=16, layout=w.Layout(width="80px")), "ratio"),
            "kernel_size": tagged(w.ToggleButtons(options=KERNEL_SIZES, value=7, style=dict(button_width="45px")),
                                  "kernel"),
        }
        self.pools = {p: w.Checkbox(value=p in PAPER["pool"], description=p, indent=False,
                                    layout=w.Layout(width="70px")) for p in POOL_TYPES}
        self.lr = tagged(w.FloatText(value=0.003, step=0.001, layout=w.Layout(width="90px")), "lr")
        self.epochs = tagged(w.IntText(value=3, layout=w.Layout(width="80px")), "epochs")
        self.progress = tagged(w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="300px")), "progress")
        self.path = w.Text(value="checkpoints/cbam", layout=w.Layout(width="160px"))
        self.upload = tagged(w.FileUpload(accept="image/*", multiple=False, description="Your image"), "upload")
        self.selected = tagged(w.ToggleButtons(options=[(f"image {i + 1}", i) for i in range(GALLERY_SIZE)],
                                               value=0, style=dict(button_width="78px")), "selected")
        option = {key: labelled(key.replace("_size", " k").replace("ratio", "ratio r"), control, "70px")
                  for key, control in self.options.items()}
        self.controls = w.VBox([
            section("Data", labelled("dataset", self.dataset, "70px"), self.folder,
                    button("Load data", "folder-open", self.load_data, "load-data", width="130px")),
            section("CBAM", self.use_cbam, w.HBox([self.options["channel"], self.options["spatial"]]), option["order"],
                    w.HBox(list(self.pools.values())), option["merge"], option["ratio"], option["kernel_size"]),
            section("Training", labelled("learning rate", self.lr, "100px"), labelled("epochs", self.epochs, "100px"),
                    w.HBox([button("Train", "play", self.train, "train", "success"),
                            button("Stop", "stop", self.stop, "stop"), button("Reset", "undo", self.reset, "reset")]),
                    self.progress),
            section("Checkpoint", w.HBox([self.path, button("Save", "", self.save, "save", width="70px"),
                                          button("Load", "", self.load, "load", width="70px")])),
            section("Your own image", self.upload),
            self.status,
        ], layout=w.Layout(width="340px", min_width="340px"))
        self.dataset.observe(self._on_dataset, "value")
        for control in (self.use_cbam, *self.options.values(), *self.pools.values()):
            control.observe(self._on_setting, "value")
        self.upload.observe(self._on_upload, "value")
        self.selected.observe(lambda _: self.redraw(), "value")

    def _build_figures(self) -> None:
        self.figures = {name: Figure(figure) for name, figure in self._figures().items()}
        for name, figure in self.figures.items():
            figure.layout.meta = f"ae-cbam-{name}"
        self.yours = widgets.VBox()
        self.outputs = widgets.VBox([
            self.figures["curves"],
            widgets.HTML("<b>Test images</b>: each stage's spatial map and Grad-CAM over the image "
                         "(titles: true class · CBAM net · plain baseline)"),
            self.figures["gallery"],
            widgets.HBox([widgets.Label("channel weights of"), self.selected]),
            widgets.HBox([self.figures["channels"], self.figures["localization"]]),
            self.yours,
        ], layout=widgets.Layout(flex="1 1 auto", min_width="640px"))

    # ----- settings -> models ---------------------------------------------------------------------
    def settings(self) -> dict:
        """The CBAM options of the controls."""
        options = {key: control.value for key, control in self.options.items()}
        return dict(options, pool=tuple(p for p, box in self.pools.items() if box.value))

    def check_settings(self) -> str:
        """Build one CBAM block from the controls: a ValueError if they cannot, else its note (or "")."""
        if not self.use_cbam.value:
            return ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = CBAM(NET_WIDTH, **self.settings())
        return "" if block.channel_gate is None else block.channel_gate.note

    def show_settings(self, config: dict) -> None:
        """Set the controls to ``config`` (a preset or a net's config) without rebuilding anything."""
        self._syncing = True
        try:
            self.use_cbam.value = config["cbam"]
            for key, control in self.options.items():
                control.value = config.get(key, PAPER[key])
            for pool, box in self.pools.items():
                box.value = pool in config.get("pool", PAPER["pool"])
        finally:
            self._syncing = False

    def _new_trainers(self, models: dict) -> dict:
        pixels, labels, boxes = first_images(self.data["test"], PROBE_SIZE)
        trainers = {}
        for name, model in models.items():
            trainer = Trainer(model, self.data, lr=self.lr.value, batch_size=BATCH_SIZE, seed=0, snapshot_every=CHUNK,
                              probe=lambda m: probe_maps(m, pixels, boxes))
            trainer.add_callback(lambda t, event, info, name=name: self._events.__setitem__(name, event))
            trainers[name] = trainer
        return trainers

    def _use_trainers(self, trainers: dict) -> None:
        for trainer in trainers.values():
            trainer.take_snapshot()
        self.evaluations = {name: ([t.step], [t.evaluate()["accuracy"]]) for name, t in trainers.items()}
        self.trainers = trainers

    def build_models(self) -> None:
        """New CBAM and plain nets (same seed, so the same backbone weights) from the controls and the data."""
        self.check_settings()
        options = self.settings()
        n_classes = self.data["train"].features["label"].num_classes
        channels = self.data["train"].features["pixel_values"].shape[0]
        models = {}
        with warnings.catch_warnings():  # a ratio above the width is told in the status line, not on stderr
            warnings.simplefilter("ignore")
            for name, use_cbam in (("cbam", self.use_cbam.value), ("plain", False)):
                torch.manual_seed(0)
                models[name] = CBAMNet(n_classes, in_channels=channels, cbam=use_cbam, **(options if use_cbam else {}))
        self._use_trainers(self._new_trainers(models))

    def use_data(self, data, name: str) -> None:
        """Switch to ``data`` with fresh models; on any error the previous data and models stay."""
        fields = ("data", "data_name", "class_names", "gallery_pixels", "gallery_labels")
        previous = {field: getattr(self, field, None) for field in fields}
        pixels, labels, _ = first_images(data["test"], GALLERY_SIZE)
        for field, value in zip(fields, (data, name, data["test"].features["label"].names, pixels, labels)):
            setattr(self, field, value)
        try:
            self.build_models()
        except Exception:
            for field, value in previous.items():
                setattr(self, field, value)
            raise

    def _busy(self) -> bool:
        if self.task.running:
            self.status.show("Busy training or loading: press Stop or wait a moment.", "busy")
        return self.task.running

    def _in_background(self, message: str, work, done) -> None:
        """Run ``work()`` in the background, then redraw and show ``done(result)``."""
        if self._busy():
            return
        self.status.busy(message)
        self.task.start(work, on_done=lambda result: self._show_done(done(result)))

    @shows_errors
    def _show_done(self, message: str) -> None:
        """After background work: redraw everything (your image too) and say how it went."""
        self.redraw()
        self._refresh_yours()
        self.status.ok(message)

    @shows_errors
    def _on_setting(self, change) -> None:
        if self._syncing:
            return
        note = self.check_settings()
        if max(t.step for t in self.trainers.values()) == 0:
            self._in_background("Applying the settings…", self.build_models,
                                lambda _: f"Settings applied to the untrained nets. {note}".strip())
        else:
            self.status.show(f"New settings apply when you press Reset (the trained nets are kept until then). {note}")

    def _on_dataset(self, change) -> None:
        if change["new"] != "folder":
            self.load_data()
        else:
            self.status.show("Type the path of a folder with one sub-folder per class, then press Load data.")

    def load_data(self) -> None:
        """Load the chosen dataset in the background and start fresh nets on it."""
        kind, folder = self.dataset.value, self.folder.value.strip()
        loaders = {"shapes": lambda: make_shapes(**self.sizes), "digits": load_digits,
                   "folder": lambda: load_image_folder(folder)}
        self._in_background(f"Loading {kind}…", lambda: self.use_data(loaders[kind](), kind),
                            lambda _: self._data_summary())

    def _data_summary(self) -> str:
        skipped = getattr(self.data, "skipped", 0)
        note = f" ({skipped} unreadable file(s) skipped)" if skipped else ""
        return (f"{self.data_name}: {len(self.data['train'])} training and {len(self.data['test'])} test "
                f"images in {len(self.class_names)} classes{note}.")

    @shows_errors
    def reset(self, note: str = "New nets built from the settings; nothing trained yet.") -> None:
        """Fresh nets from the current settings, in the background (bad settings keep the old nets)."""
        self.check_settings()
        self.progress.value = 0
        self._in_background("Building fresh nets…", self.build_models, lambda _: note)

    def apply_preset(self, name: str) -> None:
        """Set the controls to one of ``PRESETS`` and build fresh nets with them."""
        if name not in PRESETS:
            raise unknown_name("preset", name, PRESETS)
        if self.task.running:
            raise ValueError("Training is running: press Stop before choosing a preset.")
        self.show_settings(PRESETS[name])
        self.reset(PRESET_NOTES.get(name, f"{name}: fresh nets built; press Train."))

    # ----- training -------------------------------------------------------------------------------
    def steps_for_epochs(self) -> int:
        epochs = self.epochs.value
        if epochs < 1:
            raise ValueError(f"Train for at least 1 epoch, got {epochs}.")
        return epochs * -(-len(self.data["train"]) // BATCH_SIZE)

    @shows_errors
    def train(self, steps: int | None = None, wait: bool = False) -> None:
        """Train both nets ``steps`` steps each (default: the epochs control) in the background."""
        if self._busy():
            return
        steps = self.steps_for_epochs() if steps is None else int(steps)
        for trainer in self.trainers.values():
            trainer.lr = self.lr.value
        self._stop.clear()
        self.progress.max, self.progress.value = steps, 0
        self.status.busy(f"Training both nets for {steps} steps…")
        self.task.start(self._train_loop, steps, on_done=lambda message: self._show_done(self._summary(message)))
        if wait:
            self.task.join()

    def _train_loop(self, steps: int) -> str:
        done = 0
        while done < steps and not self._stop.is_set():
            chunk = min(CHUNK, steps - done)
            for name, trainer in self.trainers.items():
                self._events[name] = ""
                trainer.start(chunk)
                trainer.join()
                if self._events[name] in ("paused", "error"):
                    raise ValueError(f"{NAMES[name]}: {trainer.message}")
                if self._events[name] == "stopped":
                    return f"Stopped at step {trainer.step}"
                steps_now, accuracy = self.evaluations[name]
                self.evaluations[name] = (steps_now + [trainer.step], accuracy + [trainer.evaluate()["accuracy"]])
            done += chunk
            self.progress.value = done
            self.status.busy(self._summary(f"Step {done}/{steps}"))
            self.redraw_soon()
        return "Stopped" if self._stop.is_set() else "Finished"

    def _summary(self, head: str) -> str:
        parts = [f"{NAMES[n]} {acc[-1]:.0%}" for n, (_, acc) in self.evaluations.items()]
        return f"{head}: test accuracy {', '.join(parts)}."

    def stop(self) -> None:
        """End training at the next step boundary; the nets and their history are kept."""
        self._stop.set()
        for trainer in self.trainers.values():
            if trainer.running:
                trainer.stop(timeout=0.0)
        if not self.task.running:
            self.status.show("Nothing is training.")

    # ----- drawing --------------------------------------------------------------------------------
    def _figures(self) -> dict:
        records = {NAMES[name]: trainer.snapshots[-1][1] for name, trainer in self.trainers.items()}
        cbam = records[NAMES["cbam"]]
        selected = min(self.selected.value, len(self.gallery_pixels) - 1)
        channel = [weights[selected] for weights in cbam.channel]
        title = (f"channel weights, image {selected + 1}" if channel else
                 "no channel attention in this net")
        return {
            "curves": view.curves_figure({NAMES[n]: t.history for n, t in self.trainers.items()},
                                         {NAMES[n]: e for n, e in self.evaluations.items()}),
            "gallery": view.attention_gallery(self.gallery_pixels, records, self.class_names, self.gallery_labels),
            "channels": view.channel_bars(channel, title, width=560),
            "localization": view.localization_figure(self._localization_lines(), width=520),
        }

    def _localization_lines(self) -> dict:
        """Each CBAM stage's localization over training, and Grad-CAM's for both nets."""
        cbam, plain = (localization_history(self.trainers[name].snapshots) for name in NAMES)
        lines = {key: line for key, line in cbam.items() if key != "Grad-CAM"}
        for name, history in (("cbam", cbam), ("plain", plain)):
            if "Grad-CAM" in history:
                lines[f"Grad-CAM ({NAMES[name]})"] = history["Grad-CAM"]
        return lines

    def redraw(self) -> None:
        """Update every figure in place from the latest snapshots (a new figure only when its layout changed)."""
        for name, figure in self._figures().items():
            shown = self.figures[name]
            if len(shown.data) == len(figure.data):
                copy_trace_data(shown, figure)
                shown.layout.title.text = figure.layout.title.text
            else:
                shown.data = []
                shown.add_traces(figure.data)
                shown.layout = figure.layout
                shown.layout.meta = f"ae-cbam-{name}"

    # ----- your image and checkpoints -------------------------------------------------------------
    @shows_errors
    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        upload = change["new"][0]
        self.upload.value = ()  # the widget does not keep the file (nor send it back to the page)
        content = bytes(upload["content"])
        self._upload_pixels(content)  # a ValueError here keeps the previous image
        self.uploaded = content
        self._refresh_yours()
        self.status.ok(f"Maps of {upload['name']} drawn below the gallery.")

    def _upload_pixels(self, content: bytes) -> torch.Tensor:
        """The uploaded image as the current data's images ``[1, C, H, W]`` (grey or colour, resized)."""
        channels, _, size = self.data["train"].features["pixel_values"].shape
        return torch.from_numpy(image_from_bytes(content, size, channels))[None]

    def _refresh_yours(self) -> None:
        if self.uploaded is None:
            return
        pixels = self._upload_pixels(self.uploaded)
        records = {NAMES[n]: probe_maps(copy.deepcopy(t.model), pixels) for n, t in self.trainers.items()}
        figure = Figure(view.attention_gallery(pixels, records, self.class_names, height_per_row=170))
        figure.layout.meta = "ae-cbam-yours"
        self.yours.children = [widgets.HTML("<b>Your image</b>"), figure]

    @shows_errors
    def save(self) -> None:
        """Save both nets (with their histories) to ``<path>/cbam.safetensors`` and ``<path>/plain.safetensors``."""
        folder = Path(self.path.value.strip() or "checkpoints/cbam")
        for name, trainer in self.trainers.items():
            checkpoints.save(trainer.model, folder / f"{name}.safetensors", history=trainer.history)
        self.status.ok(f"Saved both nets to {folder}.")

    def load(self) -> None:
        """Load both nets saved by ``save`` (in the background); they must fit the current data."""
        folder = Path(self.path.value.strip() or "checkpoints/cbam")
        self._in_background(f"Loading {folder}…", lambda: self._load_from(folder),
                            lambda _: self._summary(f"Loaded both nets from {folder}"))

    def _load_from(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = {name: checkpoints.load(folder / f"{name}.safetensors") for name in NAMES}
        features = self.data["train"].features
        wanted = dict(n_classes=features["label"].num_classes, in_channels=features["pixel_values"].shape[0])
        for name, (model, _) in loaded.items():
            if any(model.config[key] != value for key, value in wanted.items()):
                raise ValueError(f"The saved {NAMES[name]} reads {model.config['in_channels']}-channel images into "
                                 f"{model.config['n_classes']} classes; the {self.data_name} data has "
                                 f"{wanted['in_channels']} and {wanted['n_classes']}. Nothing was loaded.")
        trainers = self._new_trainers({name: model for name, (model, _) in loaded.items()})
        for name, trainer in trainers.items():
            trainer.history = loaded[name][1]
            trainer.step = trainer.history[-1]["step"] if trainer.history else 0
        self._use_trainers(trainers)
        self.show_settings(loaded["cbam"][0].config)
