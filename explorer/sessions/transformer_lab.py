"""The "Train a Transformer" tab's state: the task, the architecture, the training settings and the runs.

One run, or two that compare a setting (for example 1 head against 4), train in turns on one thread on the same
batches. Changing the task or the architecture builds new models in the worker; it is refused while training.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from traitlets import Any, Bool, Float, Int, List, TraitError, Unicode, observe, validate

from explorer.attention import SCORES, valid_head_counts
from explorer.data.sequences import TASKS, TRANSLATIONS, class_names, is_classification, is_translation, make_task, vocabulary
from explorer.data.translation import PAD
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
from explorer.sessions.base import Session, say_name
from explorer.sessions.lab_files import PAIRS_PREFIX, TEXT_PREFIX, LabFiles, Run
from explorer.sessions.translating import Translating
from explorer.limits import check_cap
from explorer.threads import Throttle
from explorer.training import Trainer, check_steps
from explorer.training_group import TrainingGroup

KINDS = ("encoder", "encoder-decoder")
POOLINGS = ("cls", "mean", "max", "attention")
ARCHITECTURE = ("task", "length", "vocab", "kind", "layers", "width", "heads", "pooling", "norm", "positional",
                "score", "compare", "heads_b", "score_b")
DEFAULTS = dict(task="reverse", length=10, vocab=10, kind="encoder", layers=2, width=64, heads=4, pooling="none",
                norm="pre", positional="sinusoidal", score="scaled_dot", compare=False, heads_b=1, score_b="scaled_dot",
                lr=1e-3, steps=300)
DATES = dict(task="dates", kind="encoder-decoder", lr=3e-3, steps=600)
PRESETS = {
    "reverse: 1 head vs 4 heads": dict(compare=True),
    "reverse with 2 layers and 4 heads": dict(),
    "sort with 2 layers": dict(task="sort"),
    "shift with one layer and one head": dict(task="shift", layers=1, heads=1),
    "majority with attention pooling": dict(task="majority", pooling="attention"),
    "needle with a [CLS] token": dict(task="needle", pooling="cls"),
    "reverse with an encoder-decoder": dict(kind="encoder-decoder"),
    "dates into ISO form": DATES,
    "dates: dot-product vs additive (Bahdanau)": dict(DATES, compare=True, heads_b=4, score_b="additive"),
    "dates: 1 head vs 4 heads": dict(DATES, compare=True),
    "number words into digits": dict(DATES, task="numbers"),
}
WIDTHS = (16, 32, 64, 128)


def head_options(width: int) -> list[int]:
    """Head counts offered for a width: those that divide it, up to 16."""
    return [h for h in valid_head_counts(width) if h <= 16]


def nearest_heads(width: int, heads: int) -> int:
    options = head_options(width)
    return heads if heads in options else min(options, key=lambda h: abs(h - heads))


class TransformerLabSession(LabFiles, Translating, Session):
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
    score = Unicode("scaled_dot", help="cross-attention score").tag(link=True)
    compare = Bool(False, help="second model").tag(link=True)
    heads_b = Int(1, help="second model's heads").tag(link=True)
    score_b = Unicode("scaled_dot", help="second model's cross-attention score").tag(link=True)
    typed = Unicode("", help="text to translate").tag(link=True)
    lr = Float(1e-3, help="learning rate").tag(link=True)
    batch_size = Int(64, help="batch size").tag(link=True)
    steps = Int(300, help="number of steps").tag(link=True)
    path = Unicode("checkpoints/reverse", help="checkpoint folder").tag(setting=True)

    runs = List()  # [Run], the first is the one exported and saved first
    revision = Int(0)  # bumped (a few times a second at most) when there is something new to draw
    training = Bool(False)
    text_tasks = Any()  # {"text: name.txt": DatasetDict} of uploaded files
    translation = Any(None)  # the newest Translation of the typed text (explorer.models.translator)
    translation_notice = Unicode("")  # what to know about it: the right answer, a cut, unknown characters

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
        if self.translates(changes.get("task", "")) and "kind" not in changes:
            changes["kind"] = "encoder-decoder"
        if "task" in changes and "pooling" not in changes:
            changes["pooling"] = "mean" if self._classifies(changes["task"]) and self.pooling == "none" else (
                self.pooling if self._classifies(changes["task"]) else "none")
        super().update(**changes)

    def ordered(self, settings: dict) -> list:
        first = ("preset", "task", "width")
        return sorted(settings.items(), key=lambda item: first.index(item[0]) if item[0] in first else len(first))

    def _classifies(self, task: str) -> bool:
        return task in TASKS and TASKS[task][1]

    @staticmethod
    def translates(task: str) -> bool:
        return task in TRANSLATIONS or task.startswith(PAIRS_PREFIX)

    def check_settings(self) -> None:
        if self.training and self.architecture() != getattr(self, "_built", None):
            raise TraitError("Training is running: press Stop before you change the task or the architecture.")

    def architecture(self) -> dict:
        return {name: getattr(self, name) for name in ARCHITECTURE}

    @validate("task")
    def _valid_task(self, proposal):
        task = proposal["value"]
        if task not in TASKS and task not in TRANSLATIONS and task not in (self.text_tasks or {}):
            raise TraitError(f"There is no task called '{say_name(task)}'. Choose one of: "
                             f"{', '.join([*TASKS, *TRANSLATIONS, *(self.text_tasks or {})])}.")
        return task

    @validate("kind", "pooling", "norm", "positional", "score", "score_b")
    def _valid_choice(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        choices = {"kind": KINDS, "pooling": ("none", *POOLINGS), "norm": ("pre", "post"),
                   "positional": ("sinusoidal", "learned"), "score": SCORES, "score_b": SCORES}[name]
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
        if task.startswith((TEXT_PREFIX, PAIRS_PREFIX)):
            return self.text_tasks[task]
        return make_task(task, length=settings["length"], vocab_size=settings["vocab"], seed=self.seed)

    def configs(self, data, settings: dict) -> list[tuple[str, TransformerConfig]]:
        classify, text = is_classification(data), settings["task"].startswith(TEXT_PREFIX)
        translation, seq2seq = is_translation(data), settings["kind"] == "encoder-decoder"
        if seq2seq and (classify or text):
            raise ValueError(f"The encoder-decoder writes an output sequence for an input sequence; "
                             f"'{settings['task']}' is not such a task. Choose the encoder.")
        if translation and not seq2seq:
            raise ValueError(f"'{settings['task']}' writes a new sequence of its own length: choose the encoder-decoder.")
        length = max(len(data["train"][0]["input_ids"]), 0 if classify else len(data["train"][0]["labels"]))
        config = TransformerConfig(
            vocab_size=len(vocabulary(data)), d_model=settings["width"], n_heads=settings["heads"],
            n_layers=settings["layers"], max_len=max(64, length + 1), causal=text,
            pooling=(settings["pooling"] if settings["pooling"] != "none" else "mean") if classify else None,
            n_classes=len(class_names(data)) if classify else None, positional=settings["positional"],
            norm=settings["norm"], cross_score=settings["score"],
            pad_id=vocabulary(data).index(PAD) if translation else None)
        scores = seq2seq and (settings["score"] != "scaled_dot" or settings["compare"] and settings["score_b"] != "scaled_dot")
        named = lambda c: f"{c.n_heads} head{'s' * (c.n_heads != 1)}" + (f", {c.cross_score}" if scores else "")  # noqa: E731
        if not settings["compare"]:
            return [(named(config), config)]
        other = replace(config, n_heads=settings["heads_b"], cross_score=settings["score_b"] if seq2seq else config.cross_score)
        return [(f"A: {named(config)}", config), (f"B: {named(other)}", other)]

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
        self.translation_notice, self.translation = "", None
        self.busy = self.worker.waiting
        model = runs[0].trainer.model
        self.revision += 1
        self.say(f"New {type(model).__name__}: {model.config.n_layers} layer(s), width {model.config.d_model}, "
                 f"{sum(p.numel() for p in model.parameters()):,} weights. Press Train.", "ok")

    def _follow_task_in_path(self, task: str) -> None:
        """Keep the checkpoint folder at checkpoints/<task> unless the user typed another one."""
        default = f"checkpoints/{task.removeprefix(TEXT_PREFIX).removeprefix(PAIRS_PREFIX)}"
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

    def probe_maps(self):
        """The first model's newest attention on the probe input (None before it has any)."""
        snapshots = self.runs[0].trainer.snapshots if self.runs else []
        return snapshots[-1].maps if snapshots else None
