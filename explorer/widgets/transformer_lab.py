"""The "Train a Transformer" tab: build a tiny Transformer, train it live and watch its attention learn.

Controls on the left; on the right the step counter, the loss and accuracy curves, the prediction for a
fixed probe input next to its target, and a heatmap of every head on that input, with a timeline to scrub
back through the snapshots. A second configuration (for example 1 head against 4) can train beside the first.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import ipywidgets as widgets
import torch

from explorer import checkpoints
from explorer.attention import valid_head_counts
from explorer.data.sequences import MAX_TEXT_BYTES, TASKS, class_names, is_classification, load_text_task, make_task, vocabulary
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
from explorer.training import Trainer, check_steps
from explorer.views.timeline import timeline_gif, timeline_html
from explorer.widgets.common import (BackgroundTask, StatusLine, Throttle, labelled, section, shows_errors,
                                     unknown_name)
from explorer.widgets.export import ExportBar, maps_export
from explorer.widgets.training_monitor import Run, TrainingMonitor

TEXT_PREFIX = "text: "
KINDS = ("encoder", "encoder-decoder")
POOLING_CHOICES = [("[CLS] token", "cls"), ("mean", "mean"), ("max", "max"), ("attention", "attention")]
PER_TOKEN = [("none (per token)", "none")]
DEFAULTS = dict(task="reverse", length=10, vocab=10, kind="encoder", layers=2, width=64, heads=4, pooling="none",
                norm="pre", positional="sinusoidal", compare=False, heads_b=1)
PRESETS = {
    "reverse: 1 head vs 4 heads": dict(compare=True),
    "reverse with 2 layers and 4 heads": dict(),
    "sort with 2 layers": dict(task="sort"),
    "shift with one layer and one head": dict(task="shift", layers=1, heads=1),
    "majority with attention pooling": dict(task="majority", pooling="attention"),
    "needle with a [CLS] token": dict(task="needle", pooling="cls"),
    "reverse with an encoder-decoder": dict(kind="encoder-decoder"),
}


def head_options(width: int) -> list[int]:
    """Head counts offered for a width: those that divide it, up to 16."""
    return [h for h in valid_head_counts(width) if h <= 16]


class TransformerLabPanel(widgets.VBox):
    """Pick a task and an architecture, press Train, and watch loss fall and the attention find the pattern."""

    def __init__(self, preset: str | None = None, seed: int = 0):
        super().__init__()
        self.add_class("ae-transformer-lab")
        self.status = StatusLine()
        self.seed = seed
        self.text_tasks: dict[str, object] = {}
        self.runs: list[Run] = []
        self._syncing = False
        self.monitor = TrainingMonitor()
        self.redraw = Throttle(self.monitor.redraw, 0.3)
        self.work = BackgroundTask(self.status)
        self._finished: set[str] = set()
        self._default_path = "checkpoints/reverse"
        self._finish_lock = threading.Lock()
        self._build_controls()
        self.children = [widgets.HBox([self.controls, self.monitor])]
        if preset:
            self.apply_preset(preset)
        else:
            self.rebuild()

    # ----- layout --------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        w, narrow = widgets, widgets.Layout(width="170px")
        self.preset = w.Dropdown(options=["(choose an example)"] + list(PRESETS), layout=w.Layout(width="250px"))
        self.arch = {
            "task": w.Dropdown(options=list(TASKS), value="reverse", layout=narrow),
            "length": w.IntSlider(value=10, min=4, max=24, layout=narrow),
            "vocab": w.IntSlider(value=10, min=3, max=30, layout=narrow),
            "kind": w.Dropdown(options=KINDS, value="encoder", layout=narrow),
            "layers": w.IntSlider(value=2, min=1, max=4, layout=narrow),
            "width": w.Dropdown(options=[16, 32, 64, 128], value=64, layout=narrow),
            "heads": w.Dropdown(options=head_options(64), value=4, layout=narrow),
            "pooling": w.Dropdown(options=PER_TOKEN, value="none", layout=narrow),
            "norm": w.ToggleButtons(options=[("pre", "pre"), ("post", "post")], style=dict(button_width="62px")),
            "positional": w.ToggleButtons(options=["sinusoidal", "learned"], style=dict(button_width="80px")),
            "compare": w.Checkbox(value=False, description="train a second model", indent=False),
            "heads_b": w.Dropdown(options=head_options(64), value=1, layout=narrow),
        }
        self.lr = w.FloatText(value=1e-3, step=1e-4, layout=narrow)
        self.batch_size = w.Dropdown(options=[16, 32, 64, 128, 256], value=64, layout=narrow)
        self.steps = w.IntText(value=300, layout=narrow)
        self.steps.add_class("ae-tl-steps")
        self.upload = w.FileUpload(accept=".txt,.csv,.jsonl", multiple=False, description="your text file")
        self.buttons = {name: w.Button(description=name, layout=w.Layout(width="76px"), button_style=style)
                        for name, style in (("Train", "success"), ("Stop", "danger"), ("Reset", ""),
                                            ("Save", ""), ("Load", ""))}
        for name, button in self.buttons.items():
            button.add_class(f"ae-tl-{name.lower()}")
        self.path = w.Text(value="checkpoints/reverse", layout=w.Layout(width="250px"))
        a = self.arch
        self.controls = w.VBox([
            section("Example", self.preset),
            section("Task", labelled("task", a["task"], "90px"), labelled("length", a["length"], "90px"),
                    labelled("vocabulary", a["vocab"], "90px"), self.upload),
            section("Model", labelled("model", a["kind"], "90px"), labelled("layers", a["layers"], "90px"),
                    labelled("width", a["width"], "90px"), labelled("heads", a["heads"], "90px"),
                    labelled("pooling", a["pooling"], "90px"), labelled("LayerNorm", a["norm"], "90px"),
                    labelled("positions", a["positional"], "90px")),
            section("Compare", a["compare"], labelled("its heads", a["heads_b"], "90px")),
            section("Training", labelled("learning rate", self.lr, "90px"), labelled("batch size", self.batch_size, "90px"),
                    labelled("steps", self.steps, "90px"),
                    w.HBox([self.buttons["Train"], self.buttons["Stop"], self.buttons["Reset"]])),
            section("Checkpoint folder", self.path, w.HBox([self.buttons["Save"], self.buttons["Load"]])),
            section("Export", ExportBar({"curves": "ae-tl-curves", "heads": "ae-tl-heads-0"},
                                        {"timeline": (("gif", "html"), self.timeline_file),
                                         "attention maps": maps_export(self.probe_maps)}, self.status,
                                        name="transformer")),
            self.status,
        ], layout=w.Layout(width="330px", min_width="330px"))
        self.preset.observe(self._on_preset, "value")
        for name, control in self.arch.items():
            control.observe(lambda change, name=name: self._on_architecture(name, change), "value")
        self.lr.observe(self._on_lr, "value")
        self.batch_size.observe(self._on_batch_size, "value")
        self.upload.observe(self._on_upload, "value")
        for name, handler in (("Train", self.train), ("Stop", self.stop), ("Reset", self.reset),
                              ("Save", self.save), ("Load", self.load)):
            self.buttons[name].on_click(lambda _, handler=handler: handler())

    # ----- export -------------------------------------------------------------------------------
    def probe_maps(self):
        """The first model's newest attention on the probe input (None before it has any)."""
        return self.runs[0].trainer.snapshots[-1][1] if self.runs and self.runs[0].trainer.snapshots else None

    def timeline_file(self, fmt: str) -> bytes:
        """The first model's last layer over its training snapshots, as an animated GIF or an HTML page."""
        snapshots = self.runs[0].trainer.snapshots if self.runs else []
        if len(snapshots) < 2:
            raise ValueError("There is no timeline yet: train for a few steps first.")
        layer = snapshots[-1][1].n_layers - 1
        return timeline_gif(snapshots, layer) if fmt == "gif" else timeline_html(snapshots, layer)

    # ----- building models -----------------------------------------------------------------------
    def settings(self) -> dict:
        return {name: control.value for name, control in self.arch.items()}

    def _set_controls(self, values: dict) -> None:
        """Set controls without triggering a rebuild per control."""
        self._syncing = True
        try:
            for name, value in values.items():
                if name == "width":
                    self._sync_head_options(value)
                self.arch[name].value = value
        finally:
            self._syncing = False

    def _sync_head_options(self, width: int) -> None:
        options = head_options(width)
        for name in ("heads", "heads_b"):
            control = self.arch[name]
            current = control.value
            control.options = options
            control.value = current if current in options else min(options, key=lambda h: abs(h - current))

    def task_data(self, settings: dict):
        task = settings["task"]
        if task.startswith(TEXT_PREFIX):
            return self.text_tasks[task]
        return make_task(task, length=settings["length"], vocab_size=settings["vocab"], seed=self.seed)

    def _sync_task_controls(self, data, settings: dict) -> dict:
        """Pooling only for classification tasks; length and vocabulary only for the synthetic tasks."""
        classify, text = is_classification(data), settings["task"].startswith(TEXT_PREFIX)
        self._syncing = True
        try:
            pooling = self.arch["pooling"]
            pooling.options = POOLING_CHOICES if classify else PER_TOKEN
            pooling.value = (settings["pooling"] if settings["pooling"] != "none" else "mean") if classify else "none"
            for name in ("length", "vocab"):
                self.arch[name].disabled = text
        finally:
            self._syncing = False
        return self.settings()

    def configs(self, data, settings: dict) -> list[tuple[str, TransformerConfig]]:
        classify = is_classification(data)
        if settings["kind"] == "encoder-decoder" and (classify or settings["task"].startswith(TEXT_PREFIX)):
            raise ValueError(f"The encoder-decoder writes an output sequence for an input sequence; '{settings['task']}' "
                             "is not such a task. Choose the encoder.")
        length = len(data["train"][0]["input_ids"])
        config = TransformerConfig(
            vocab_size=len(vocabulary(data)), d_model=settings["width"], n_heads=settings["heads"],
            n_layers=settings["layers"], max_len=max(64, length + 1), causal=settings["task"].startswith(TEXT_PREFIX),
            pooling=settings["pooling"] if classify else None, n_classes=len(class_names(data)) if classify else None,
            positional=settings["positional"], norm=settings["norm"])
        plural = lambda h: f"{h} head{'s' * (h != 1)}"  # noqa: E731
        if not settings["compare"]:
            return [(plural(config.n_heads), config)]
        other = replace(config, n_heads=settings["heads_b"])
        return [(f"A: {plural(config.n_heads)}", config), (f"B: {plural(other.n_heads)}", other)]

    def make_run(self, name: str, config: TransformerConfig, data) -> Run:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = (TinySeq2Seq if self.arch["kind"].value == "encoder-decoder" else TinyTransformer)(config)
        trainer = Trainer(model, data, lr=self.lr.value, batch_size=self.batch_size.value, seed=self.seed)
        return Run(name, trainer)

    @shows_errors
    def rebuild(self, trainers: list[tuple[str, Trainer]] | None = None) -> None:
        """New data, models and figures from the controls (or the given trainers); refused while training."""
        self._check_idle("change the architecture")
        settings = self.settings()
        if trainers is None:
            data = self.task_data(settings)
            settings = self._sync_task_controls(data, settings)
            runs = [self.make_run(name, config, data) for name, config in self.configs(data, settings)]
        else:
            runs = [Run(name, trainer) for name, trainer in trainers]
        for run in runs:
            if not run.trainer.snapshots:
                run.trainer.take_snapshot()
            run.trainer.add_callback(lambda trainer, event, info, run=run: self._on_event(run, event, info))
        self.runs = runs
        self._follow_task_in_path(settings["task"])
        self.monitor.show(runs)
        model = runs[0].trainer.model
        self.status.ok(f"New {type(model).__name__}: {model.config.n_layers} layer(s), width {model.config.d_model}, "
                       f"{sum(p.numel() for p in model.parameters()):,} weights. Press Train.")

    def _follow_task_in_path(self, task: str) -> None:
        """Keep the checkpoint folder at checkpoints/<task> unless the user typed another one."""
        default = f"checkpoints/{task.removeprefix(TEXT_PREFIX)}"
        if self.path.value in (self._default_path, ""):
            self.path.value = default
        self._default_path = default

    # ----- events ----------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return any(run.trainer.running for run in self.runs)

    def _check_idle(self, action: str) -> None:
        if self.training:
            raise ValueError(f"Training is running: press Stop before you {action}.")

    @shows_errors
    def _on_architecture(self, name: str, change) -> None:
        if self._syncing:
            return
        if self.training:
            self._set_controls({name: change["old"]})
            raise ValueError("Training is running: press Stop before you change the task or the architecture.")
        if name == "width":
            self._syncing = True
            self._sync_head_options(change["new"])
            self._syncing = False
        self.status.busy("Building the model…")
        self.work.start(self._rebuild_until_current)

    def _rebuild_until_current(self) -> None:
        """Rebuild in the background; again if the controls changed meanwhile (the newest choice wins)."""
        while True:
            wanted = self.settings()
            self.rebuild()
            if self.settings() == wanted:
                return

    @shows_errors
    def _on_preset(self, change) -> None:
        if change["new"] in PRESETS:
            self._check_idle("load an example")
            self.status.busy(f"Building '{change['new']}'…")
            self.work.start(self.apply_preset, change["new"])

    def apply_preset(self, name: str) -> None:
        """Set the controls to one of ``PRESETS`` and build its model(s); a ValueError lists the names."""
        if name not in PRESETS:
            raise unknown_name("preset", name, PRESETS)
        self._check_idle("load an example")
        values = {**DEFAULTS, **PRESETS[name]}
        self._set_controls({k: values[k] for k in ("task", "length", "vocab", "kind")})
        data = self.task_data(self.settings())
        self._sync_task_controls(data, self.settings())
        self._set_controls(values)
        self.rebuild()

    @shows_errors
    def _on_lr(self, change) -> None:
        for run in self.runs:
            try:
                run.trainer.lr = change["new"]
            except ValueError:
                self._syncing = True
                self.lr.value = change["old"]
                self._syncing = False
                raise

    def _on_batch_size(self, change) -> None:
        for run in self.runs:
            run.trainer.batch_size = change["new"]

    @shows_errors
    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        item = change["new"][0]
        self.upload.value = ()  # the file's bytes are not kept in the page or the kernel
        if item["size"] > MAX_TEXT_BYTES:
            raise ValueError(f"{item['name']} is {item['size'] / 1e6:.1f} MB; the lab takes text files up to "
                             f"{MAX_TEXT_BYTES / 1e6:.1f} MB.")
        self._check_idle("switch to your text")
        folder = Path(tempfile.mkdtemp(prefix="ae-text-"))
        path = folder / Path(item["name"]).name
        path.write_bytes(bytes(item["content"]))
        data = load_text_task(path)
        key = TEXT_PREFIX + path.name
        self.text_tasks[key] = data
        self._syncing = True
        self.arch["task"].options = list(TASKS) + list(self.text_tasks)
        self._syncing = False
        self.arch["task"].value = key
        self.status.ok(f"{path.name}: {len(data['train'])} windows of {len(data['train'][0]['input_ids'])} characters, "
                       f"{len(vocabulary(data))} different characters. The model learns to predict the next one.")

    # ----- training --------------------------------------------------------------------------------
    @shows_errors
    def train(self) -> None:
        """Train every run for the chosen number of steps in background threads."""
        if self.training:
            raise ValueError("Training is already running: press Stop first, or wait for it to finish.")
        if self.work.running:
            raise ValueError("The model is still being built; press Train again in a moment.")
        steps = check_steps(self.steps.value)
        self._finished = set()
        for run in self.runs:
            run.trainer.start(steps)
        self.status.busy(f"Training {len(self.runs)} model(s) for {steps} steps…")

    @shows_errors
    def stop(self) -> None:
        if not self.training:
            raise ValueError("Training is not running, so there is nothing to stop.")
        for run in self.runs:
            run.trainer.stop()

    @shows_errors
    def reset(self) -> None:
        self._check_idle("reset")
        for run in self.runs:
            run.trainer.reset()
            run.trainer.take_snapshot()
        self.monitor.redraw()
        self.status.ok("Weights re-initialised from the seed; the history is cleared.")

    def _on_event(self, run: Run, event: str, info: dict) -> None:
        """Called from a training thread: keep it cheap; drawing happens in the throttled redraw."""
        if event in ("step", "snapshot"):
            self.redraw()
            return
        self.redraw.flush()
        if event in ("paused", "error"):
            self.status.error(f"{run.name}: {info['message']}")
            return
        with self._finish_lock:
            self._finished.add(run.name)
            last = len(self._finished) == len(self.runs)
        if last:
            self.status.ok(self._summary())

    def _summary(self) -> str:
        parts = []
        for run in self.runs:
            result = run.trainer.evaluate()
            shown = ", ".join(f"{k.replace('_', ' ')} {v:.1%}" for k, v in result.items())
            parts.append(f"{run.name}: {shown}")
        return f"{self.runs[0].trainer.message} Test set: " + "; ".join(parts) + "."

    # ----- checkpoints -------------------------------------------------------------------------------
    def checkpoint_files(self) -> list[Path]:
        folder = Path(self.path.value.strip() or "checkpoints/model").expanduser()
        return [folder / checkpoints.FILE_NAME, folder / "compare.safetensors"][: max(1, len(self.runs))]

    @shows_errors
    def save(self) -> None:
        self._check_idle("save")
        paths = [checkpoints.save(run.trainer.model, path, history=run.trainer.history)
                 for run, path in zip(self.runs, self.checkpoint_files())]
        self.status.ok(f"Saved {len(paths)} model(s) to {paths[0].parent} (step {self.runs[0].trainer.step}).")

    @shows_errors
    def load(self) -> None:
        """Load the model saved in the folder (for the current task); the current model is kept on any error."""
        self._check_idle("load")
        path = self.checkpoint_files()[0]
        model, history = checkpoints.load(path)
        data = self.runs[0].trainer.data
        config = model.config
        if config.vocab_size != len(vocabulary(data)) or (config.pooling is not None) != is_classification(data):
            raise ValueError(f"{path} was trained on another task (vocabulary of {config.vocab_size} tokens, "
                             f"{'classification' if config.pooling else 'one prediction per token'}): "
                             "choose that task first, then press Load.")
        trainer = Trainer(model, data, lr=self.lr.value, batch_size=self.batch_size.value, seed=self.seed)
        trainer.restore_history(history)
        self._set_controls(dict(kind="encoder-decoder" if isinstance(model, TinySeq2Seq) else "encoder",
                                layers=config.n_layers, width=config.d_model, heads=config.n_heads,
                                norm=config.norm, positional=config.positional, compare=False,
                                **({"pooling": config.pooling} if config.pooling else {})))
        self.rebuild([(f"{config.n_heads} head{'s' * (config.n_heads != 1)}", trainer)])
        self.status.ok(f"Loaded {path} at step {trainer.step}; press Train to continue.")
