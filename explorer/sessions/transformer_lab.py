"""The "Train a Transformer" tab's state: the task, the architecture, the training settings and the runs.

One run, or two that compare a setting (for example 1 head against 4), train in turns on one thread on the same
batches. Changing the task or the architecture builds new models in the worker; it is refused while training.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from traitlets import Any, Bool, Float, Int, List, TraitError, Unicode, observe, validate

from explorer import checkpoints
from explorer.attention import valid_head_counts
from explorer.data.sequences import MAX_TEXT_BYTES, TASKS, class_names, is_classification, load_text_task, make_task, vocabulary
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
from explorer.paths import confined
from explorer.sessions.base import Session, say_name
from explorer.threads import Throttle
from explorer.limits import check_cap
from explorer.training import Trainer, check_steps
from explorer.training_group import TrainingGroup

TEXT_PREFIX = "text: "
KINDS = ("encoder", "encoder-decoder")
POOLINGS = ("cls", "mean", "max", "attention")
ARCHITECTURE = ("task", "length", "vocab", "kind", "layers", "width", "heads", "pooling", "norm", "positional",
                "compare", "heads_b")
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
WIDTHS = (16, 32, 64, 128)


def head_options(width: int) -> list[int]:
    """Head counts offered for a width: those that divide it, up to 16."""
    return [h for h in valid_head_counts(width) if h <= 16]


def nearest_heads(width: int, heads: int) -> int:
    options = head_options(width)
    return heads if heads in options else min(options, key=lambda h: abs(h - heads))


@dataclass
class Run:
    """One configuration being trained: its name and its trainer."""

    name: str
    trainer: Trainer


class TransformerLabSession(Session):
    """``runs`` are the models being trained; ``revision`` counts what there is to redraw."""

    key = "transformer"
    title = "Train a Transformer"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    task = Unicode("reverse", help="task").tag(link=True)
    length = Int(10, help="sequence length").tag(link=True)
    vocab = Int(10, help="vocabulary").tag(link=True)
    kind = Unicode("encoder", help="model").tag(link=True)
    layers = Int(2, help="number of layers").tag(link=True)
    width = Int(64, help="width").tag(link=True)
    heads = Int(4, help="number of heads").tag(link=True)
    pooling = Unicode("none", help="pooling").tag(link=True)
    norm = Unicode("pre", help="LayerNorm placement").tag(link=True)
    positional = Unicode("sinusoidal", help="positions").tag(link=True)
    compare = Bool(False, help="second model").tag(link=True)
    heads_b = Int(1, help="second model's heads").tag(link=True)
    lr = Float(1e-3, help="learning rate").tag(link=True)
    batch_size = Int(64, help="batch size").tag(link=True)
    steps = Int(300, help="number of steps").tag(link=True)
    path = Unicode("checkpoints/reverse", help="checkpoint folder").tag(setting=True)

    runs = List()  # [Run], the first is the one exported and saved first
    revision = Int(0)  # bumped (a few times a second at most) when there is something new to draw
    training = Bool(False)
    text_tasks = Any()  # {"text: name.txt": DatasetDict} of uploaded files

    def __init__(self, owner=None, seed: int = 0, **settings):
        self.seed = seed
        self._default_path = self.path
        super().__init__(owner)
        self.text_tasks = {}
        self._bump = Throttle(self.home, lambda: setattr(self, "revision", self.revision + 1), 0.3)
        self.update(**settings)
        if not self.runs:
            self._use(self.build())

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``, with the settings a change implies: an example's defaults, heads that divide the
        width, pooling only for classification tasks."""
        if changes.get("preset"):
            if changes["preset"] not in PRESETS:
                raise ValueError(f"There is no preset called '{say_name(changes['preset'])}'. "
                                 f"Choose one of: {', '.join(PRESETS)}.")
            changes = {**DEFAULTS, **PRESETS[changes["preset"]], **changes}
        if "width" in changes:
            width = self.coerce("width", changes["width"])
            for name in ("heads", "heads_b"):
                changes[name] = nearest_heads(width, self.coerce(name, changes.get(name, getattr(self, name))))
        if "task" in changes and "pooling" not in changes:
            changes["pooling"] = "mean" if self._classifies(changes["task"]) and self.pooling == "none" else (
                self.pooling if self._classifies(changes["task"]) else "none")
        super().update(**changes)

    def ordered(self, settings: dict) -> list:
        first = ("preset", "task", "width")
        return sorted(settings.items(), key=lambda item: first.index(item[0]) if item[0] in first else len(first))

    def _classifies(self, task: str) -> bool:
        return task in TASKS and TASKS[task][1]

    def check_settings(self) -> None:
        if self.training and self.architecture() != getattr(self, "_built", None):
            raise TraitError("Training is running: press Stop before you change the task or the architecture.")

    def architecture(self) -> dict:
        return {name: getattr(self, name) for name in ARCHITECTURE}

    @validate("task")
    def _valid_task(self, proposal):
        task = proposal["value"]
        if task not in TASKS and task not in (self.text_tasks or {}):
            raise TraitError(f"There is no task called '{say_name(task)}'. Choose one of: "
                             f"{', '.join([*TASKS, *(self.text_tasks or {})])}.")
        return task

    @validate("kind", "pooling", "norm", "positional")
    def _valid_choice(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        choices = {"kind": KINDS, "pooling": ("none", *POOLINGS), "norm": ("pre", "post"),
                   "positional": ("sinusoidal", "learned")}[name]
        if value not in choices:
            raise TraitError(f"Unknown {proposal['trait'].help} '{say_name(value)}'. Choose one of: {', '.join(choices)}.")
        return value

    @validate("length", "vocab", "layers", "width", "heads", "heads_b", "batch_size", "steps")
    def _valid_count(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        low, high = {"length": (4, 24), "vocab": (3, 30), "layers": (1, 4), "width": (16, 128), "heads": (1, 16),
                     "heads_b": (1, 16), "batch_size": (1, 4096), "steps": (1, 10**9)}[name]
        if name == "steps" and value < 1:
            raise TraitError(f"The number of steps must be a positive whole number, got {value}.")
        if not low <= value <= high:
            raise TraitError(f"The {proposal['trait'].help} must be between {low} and {high}, got {value}.")
        if name == "width" and value not in WIDTHS:
            raise TraitError(f"The width must be one of {', '.join(map(str, WIDTHS))}, got {value}.")
        if name in ("heads", "heads_b") and self.width % value:
            raise TraitError(f"{value} heads do not divide the width {self.width}: choose one of "
                             f"{', '.join(map(str, head_options(self.width)))}.")
        if name == "steps":
            try:
                check_cap(value)
            except ValueError as error:
                raise TraitError(str(error)) from None
        return value

    @validate("lr")
    def _valid_lr(self, proposal):
        if not 0 < proposal["value"] < float("inf"):
            raise TraitError(f"The learning rate must be a positive number such as 0.001, got {proposal['value']:g}.")
        return proposal["value"]

    @observe("lr", "batch_size")
    def _on_training_setting(self, change) -> None:
        for run in self.runs:
            setattr(run.trainer, change["name"], change["new"])

    @observe(*ARCHITECTURE)
    def _on_architecture(self, change) -> None:
        if self.architecture() == getattr(self, "_built", None):
            return
        self.busy = True
        self.say("Building the model…", "busy")
        self.worker.submit(self.build, done=self._use, failed=self._build_failed, latest=True)

    def _build_failed(self, error) -> None:
        self.update(**self._built)  # back to the settings of the models on screen
        self.fail(error)

    # ----- building models -----------------------------------------------------------------------------------------
    def task_data(self, settings: dict):
        task = settings["task"]
        if task.startswith(TEXT_PREFIX):
            return self.text_tasks[task]
        return make_task(task, length=settings["length"], vocab_size=settings["vocab"], seed=self.seed)

    def configs(self, data, settings: dict) -> list[tuple[str, TransformerConfig]]:
        classify, text = is_classification(data), settings["task"].startswith(TEXT_PREFIX)
        if settings["kind"] == "encoder-decoder" and (classify or text):
            raise ValueError(f"The encoder-decoder writes an output sequence for an input sequence; "
                             f"'{settings['task']}' is not such a task. Choose the encoder.")
        length = len(data["train"][0]["input_ids"])
        config = TransformerConfig(
            vocab_size=len(vocabulary(data)), d_model=settings["width"], n_heads=settings["heads"],
            n_layers=settings["layers"], max_len=max(64, length + 1), causal=text,
            pooling=(settings["pooling"] if settings["pooling"] != "none" else "mean") if classify else None,
            n_classes=len(class_names(data)) if classify else None, positional=settings["positional"],
            norm=settings["norm"])
        plural = lambda h: f"{h} head{'s' * (h != 1)}"  # noqa: E731
        if not settings["compare"]:
            return [(plural(config.n_heads), config)]
        other = replace(config, n_heads=settings["heads_b"])
        return [(f"A: {plural(config.n_heads)}", config), (f"B: {plural(other.n_heads)}", other)]

    def build(self) -> tuple[dict, list[Run]]:
        """New data and models from the settings (in the worker); the seed makes the same start every time."""
        settings = self.architecture()
        data = self.task_data(settings)
        runs = []
        for name, config in self.configs(data, settings):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = (TinySeq2Seq if settings["kind"] == "encoder-decoder" else TinyTransformer)(config)
            runs.append(Run(name, self._trainer(model, data)))
        for run in runs:
            run.trainer.take_snapshot()
        return settings, runs

    def _trainer(self, model, data) -> Trainer:
        return Trainer(model, data, lr=self.lr, batch_size=self.batch_size, seed=self.seed)

    def _use(self, built: tuple[dict, list[Run]]) -> None:
        settings, runs = built
        self._built = settings
        self.runs = runs
        self.group = TrainingGroup({run.name: run.trainer for run in runs}, chunk=1, evaluate=False)
        self.group.add_callback(self._on_training)
        self._follow_task_in_path(settings["task"])
        self.busy = self.worker.waiting
        model = runs[0].trainer.model
        self.revision += 1
        self.say(f"New {type(model).__name__}: {model.config.n_layers} layer(s), width {model.config.d_model}, "
                 f"{sum(p.numel() for p in model.parameters()):,} weights. Press Train.", "ok")

    def _follow_task_in_path(self, task: str) -> None:
        """Keep the checkpoint folder at checkpoints/<task> unless the user typed another one."""
        default = f"checkpoints/{task.removeprefix(TEXT_PREFIX)}"
        if self.path in (self._default_path, ""):
            self.path = default
        self._default_path = default

    # ----- training ------------------------------------------------------------------------------------------------
    def train(self, steps: int | None = None) -> None:
        """Train every run ``steps`` steps (default: the steps setting) on the training thread."""
        if self.training:
            raise ValueError("Training is already running: press Stop first, or wait for it to finish.")
        if self.worker.running:
            raise ValueError("The model is still being built; press Train again in a moment.")
        steps = check_cap(check_steps(self.steps if steps is None else steps))
        self.training = True
        self.group.start(steps)
        self.say(f"Training {len(self.runs)} model(s) for {steps} steps…", "busy")

    def stop(self) -> None:
        if not self.training or not self.group.stop(timeout=0.0):
            raise ValueError("Training is not running, so there is nothing to stop.")

    def stop_work(self) -> None:
        super().stop_work()
        self.group.stop(timeout=0.0)

    def reset(self) -> None:
        """New weights from the seed and empty histories (refused while training)."""
        if self.training:
            raise ValueError("Training is running: press Stop before you reset.")
        for run in self.runs:
            run.trainer.reset()
            run.trainer.take_snapshot()
        self.revision += 1
        self.say("Weights re-initialised from the seed; the history is cleared.", "ok")

    def _on_training(self, group, event: str, info: dict) -> None:
        """Called on the training thread: redraws are throttled; the end of a run is told on the home thread."""
        if event == "round":
            self._bump()
            return
        message = self._summary(info["message"]) if event in ("finished", "stopped") else info["message"]
        self.home.call(self._trained, message, "ok" if event in ("finished", "stopped") else "error")

    def _trained(self, message: str, kind: str) -> None:
        self.training = False
        self._bump.flush()
        self.say(message, kind)

    def _summary(self, head: str) -> str:
        parts = []
        for run in self.runs:
            shown = ", ".join(f"{k.replace('_', ' ')} {v:.1%}" for k, v in run.trainer.evaluate().items())
            parts.append(f"{run.name}: {shown}")
        return f"{head} Test set: " + "; ".join(parts) + "."

    def wait(self, timeout: float = 120.0) -> bool:
        return self.home.wait_until(lambda: not self.worker.running and not self.busy and not self.training, timeout)

    # ----- your text, checkpoints and exports ----------------------------------------------------------------------
    def add_text(self, name: str, content: bytes) -> None:
        """A user's text file becomes a next-character task (refused while training; limits say why)."""
        if len(content) > MAX_TEXT_BYTES:
            raise ValueError(f"{name} is {len(content) / 1e6:.1f} MB; the lab takes text files up to "
                             f"{MAX_TEXT_BYTES / 1e6:.1f} MB.")
        if self.training:
            raise ValueError("Training is running: press Stop before you switch to your text.")
        folder = Path(tempfile.mkdtemp(prefix="ae-text-"))
        path = folder / Path(name).name
        path.write_bytes(content)
        data = load_text_task(path)
        key = TEXT_PREFIX + path.name
        self.text_tasks = {**self.text_tasks, key: data}
        self.update(task=key)
        self.say(f"{path.name}: {len(data['train'])} windows of {len(data['train'][0]['input_ids'])} characters, "
                 f"{len(vocabulary(data))} different characters. The model learns to predict the next one.", "ok")

    def checkpoint_files(self) -> list[Path]:
        folder = confined(self.path.strip() or "checkpoints/model", "checkpoint folder")
        return [folder / checkpoints.FILE_NAME, folder / "compare.safetensors"][: max(1, len(self.runs))]

    def save(self) -> None:
        if self.training:
            raise ValueError("Training is running: press Stop before you save.")
        paths = [checkpoints.save(run.trainer.model, path, history=run.trainer.history)
                 for run, path in zip(self.runs, self.checkpoint_files())]
        self.say(f"Saved {len(paths)} model(s) to {paths[0].parent} (step {self.runs[0].trainer.step}).", "ok")

    def load(self) -> None:
        """Load the model saved in the folder (for the current task); on any error the current runs stay."""
        if self.training:
            raise ValueError("Training is running: press Stop before you load.")
        path = self.checkpoint_files()[0]
        if not path.exists() and (path.parent / "cbam.safetensors").exists():
            raise ValueError(f"{path.parent} holds the Vision tab's nets, not a Transformer of this lab: load them in "
                             "the Vision tab. Nothing was loaded.")
        model, history = checkpoints.load(path)
        data = self.runs[0].trainer.data
        config = getattr(model, "config", None)
        if not isinstance(config, TransformerConfig):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a Transformer of this lab; nothing was loaded.")
        if config.vocab_size != len(vocabulary(data)) or (config.pooling is not None) != is_classification(data):
            raise ValueError(f"{path} was trained on another task (vocabulary of {config.vocab_size} tokens, "
                             f"{'classification' if config.pooling else 'one prediction per token'}): "
                             "choose that task first, then press Load. Nothing was loaded.")
        if config.max_len < len(data["train"][0]["input_ids"]) + 1:
            raise ValueError(f"{path} holds a model for sequences of at most {config.max_len - 1} tokens; this task's "
                             "are longer. Nothing was loaded.")
        trainer = self._trainer(model, data)
        trainer.restore_history(history)
        trainer.take_snapshot()
        settings = dict(self.architecture(), kind="encoder-decoder" if isinstance(model, TinySeq2Seq) else "encoder",
                        layers=config.n_layers, width=config.d_model, heads=config.n_heads, norm=config.norm,
                        positional=config.positional, compare=False, pooling=config.pooling or "none")
        self._show_loaded_settings(settings, path)
        self._use((settings, [Run(f"{config.n_heads} head{'s' * (config.n_heads != 1)}", trainer)]))
        self.say(f"Loaded {path} at step {trainer.step}; press Train to continue.", "ok")

    def _show_loaded_settings(self, settings: dict, path: Path) -> None:
        """The controls show the loaded model's settings; a model they cannot show (width 48, 6 layers) is refused."""
        built = self._built
        self._built = settings  # the loaded model is the one these settings describe: nothing to rebuild
        try:
            self.update(**settings)
        except ValueError as error:
            self._built = built
            raise ValueError(f"{path} holds a model this tab's controls cannot show: {error} Nothing was loaded.") from None

    def probe_maps(self):
        """The first model's newest attention on the probe input (None before it has any)."""
        snapshots = self.runs[0].trainer.snapshots if self.runs else []
        return snapshots[-1].maps if snapshots else None
