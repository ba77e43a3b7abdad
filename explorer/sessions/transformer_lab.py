"""The "Train a Transformer" tab's state: the task, the architecture, the training settings and the lab that trains.

One model, or two that compare a setting (for example 1 head against 4), train in turns in one ``Lab`` on the same
batches. Changing the task or the architecture builds new models in the worker; it is refused while training.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from traitlets import Bool, Dict, Float, Instance, Int, TraitError, Unicode, observe

from explorer.attention import SCORES
from explorer.data.sequences import (INDUCTION, TASKS, TRANSLATIONS, class_names, is_classification, is_translation,
                                     make_task, task_names, vocabulary)
from explorer.data.translation import PAD
from explorer.lab import Lab, LabView
from explorer.limits import check_cap
from explorer.maps import Translation
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
from explorer.paths import confined
from explorer.sessions import lab_files, translating
from explorer.sessions.rules import Choice, NumberChoice, head_options, nearest_heads, one_of, positive_rate
from explorer.sessions.lab_files import PAIRS_PREFIX, TEXT_PREFIX, Run, run_name
from explorer.sessions.base import validate
from explorer.sessions.faithful import CheckInput, FaithfulnessCheck
from explorer.sessions.lab_session import LabSession
from explorer.training import Trainer

KINDS = ("encoder", "encoder-decoder")
POOLINGS = ("cls", "mean", "max", "attention")
ARCHITECTURE = ("task", "length", "vocab", "kind", "layers", "width", "heads", "pooling", "norm", "positional",
                "score", "attention_only", "compare", "heads_b", "layers_b", "score_b")
DEFAULTS = dict(task="reverse", length=10, vocab=10, kind="encoder", layers=2, width=64, heads=4, pooling="none",
                norm="pre", positional="sinusoidal", score="scaled_dot", attention_only=False, compare=False, heads_b=1,
                layers_b=2, score_b="scaled_dot", lr=1e-3, steps=300)
DATES = dict(task="dates", kind="encoder-decoder", lr=3e-3, steps=600)
# Olsson et al. 2022 in a minute: segments of 16 over 128 tokens, attention only; bench/findings.py times it.
INDUCTION_HEADS = dict(task=INDUCTION, length=16, vocab=128, layers=2, width=64, heads=4, attention_only=True,
                       positional="learned", lr=4e-3, steps=2000)
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
    "induction heads form (Olsson et al. 2022)": INDUCTION_HEADS,
    "one layer cannot": dict(INDUCTION_HEADS, layers=1),
    "2 layers vs 1 layer": dict(INDUCTION_HEADS, compare=True, heads_b=4, layers_b=1),
}
WIDTHS = (16, 32, 64, 128)
COUNTS = {"length": (4, 24), "vocab": (3, 128), "layers": (1, 4), "heads": (1, 16), "heads_b": (1, 16),
          "layers_b": (1, 4), "batch_size": (1, 4096), "steps": (1, 10**9)}  # setting -> (lowest, highest)


class TransformerLabSession(LabSession):
    """``lab`` trains the models; ``lab_view`` is what the panel draws."""

    key = "transformer"
    title = "Train a Transformer"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    task = Unicode("reverse", help="task").tag(link=True)
    length = Int(10, help="sequence length").tag(link=True)
    vocab = Int(10, help="vocabulary").tag(link=True)
    kind = Choice(KINDS, help="model").tag(link=True)
    layers = Int(2, help="number of layers").tag(link=True)
    width = NumberChoice(WIDTHS, 64, help="width").tag(link=True)
    heads = Int(4, help="number of heads").tag(link=True)
    pooling = Choice(("none", *POOLINGS), help="pooling").tag(link=True)
    norm = Choice(("pre", "post"), help="LayerNorm placement").tag(link=True)
    positional = Choice(("sinusoidal", "learned"), help="positions").tag(link=True)
    score = Choice(SCORES, "scaled_dot", help="cross-attention score").tag(link=True)
    attention_only = Bool(False, help="attention only").tag(link=True)
    compare = Bool(False, help="second model").tag(link=True)
    heads_b = Int(1, help="second model's heads").tag(link=True)
    layers_b = Int(2, help="second model's layers").tag(link=True)
    score_b = Choice(SCORES, "scaled_dot", help="second model's cross-attention score").tag(link=True)
    typed = Unicode("", help="text to translate").tag(link=True)
    faith_position = Int(-1, help="position the faithfulness check reads").tag(link=True)  # -1: the last
    lr = Float(1e-3, help="learning rate").tag(link=True)
    batch_size = Int(64, help="batch size").tag(link=True)
    steps = Int(300, help="number of steps").tag(link=True)
    path = Unicode("checkpoints/reverse", help="checkpoint folder").tag(setting=True)

    text_tasks = Dict()  # {"text: name.txt": DatasetDict} of uploaded files
    translation = Instance(Translation, allow_none=True)  # the newest translation of the typed text
    translation_notice = Unicode("")  # what to know about it: the right answer, a cut, unknown characters
    translation_kind = Unicode("info")  # the notice's colour: "ok" (right), "warning" (wrong, cut), "info"

    def __init__(self, owner=None, seed: int = 0, **settings):
        self.seed = seed
        self._default_path = self.path
        self._built: dict | None = None  # the architecture of the models in the lab
        self._building: dict | None = None  # the architecture being built in the worker
        super().__init__(owner)
        self.faithful = FaithfulnessCheck(self, self.faithful_inputs)
        self.update(**settings)
        if self.lab is None:
            self._use(self.build())

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``, with the settings a change implies: an example's defaults, heads that divide the
        width, pooling only for classification tasks."""
        preset = self.chosen_preset(changes)
        if preset:
            changes = {**DEFAULTS, **PRESETS[preset], **changes}
        if "width" in changes and self.coerce("width", changes["width"]) in WIDTHS:  # another width is refused below
            width = self.coerce("width", changes["width"])
            for name in ("heads", "heads_b"):
                changes[name] = nearest_heads(width, self.coerce(name, changes.get(name, getattr(self, name))))
        if self.translates(changes.get("task", "")) and "kind" not in changes:
            changes["kind"] = "encoder-decoder"
        if "task" in changes and "pooling" not in changes:
            changes["pooling"] = "mean" if self._classifies(changes["task"]) and self.pooling == "none" else (
                self.pooling if self._classifies(changes["task"]) else "none")
        self.with_preset(preset, changes)

    def ordered(self, settings: dict) -> list:
        first = ("preset", "task", "width")
        return sorted(settings.items(), key=lambda item: first.index(item[0]) if item[0] in first else len(first))

    def _classifies(self, task: str) -> bool:
        return isinstance(task, str) and task in TASKS and TASKS[task][1]

    @staticmethod
    def translates(task: str) -> bool:
        return isinstance(task, str) and (task in TRANSLATIONS or task.startswith(PAIRS_PREFIX))

    def check_settings(self) -> None:
        if self.training and self.architecture() != self._built:
            raise TraitError("Training is running: press Stop before you change the task or the architecture.")

    def architecture(self) -> dict:
        return {name: getattr(self, name) for name in ARCHITECTURE}

    @validate("task")
    def _valid_task(self, proposal):
        return one_of(proposal["value"], [*task_names(), *(self.text_tasks or {})], "task")

    @validate(*COUNTS)
    def _valid_count(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        low, high = COUNTS[name]
        if name == "steps" and value < 1:
            raise TraitError(f"The number of steps must be a positive whole number, got {value}.")
        if not low <= value <= high:
            raise TraitError(f"The {proposal['trait'].help} must be between {low} and {high}, got {value}.")
        if name in ("heads", "heads_b") and self.width % value:
            raise TraitError(f"{value} heads do not divide the width {self.width}: choose one of "
                             f"{', '.join(map(str, head_options(self.width)))}.")
        if name == "steps":
            try:
                check_cap(value)
            except ValueError as error:
                raise TraitError(str(error)) from None
        return value

    @validate("faith_position")
    def _valid_faith_position(self, proposal):
        if proposal["value"] < -1:
            raise TraitError(f"The position is -1 (the last) or a token's number from 0, got {proposal['value']}.")
        return proposal["value"]

    @validate("lr")
    def _valid_lr(self, proposal):
        return positive_rate(proposal["value"], "0.001")

    @observe("lr", "batch_size")
    def _on_training_setting(self, change) -> None:
        for trainer in self.trainers.values():
            setattr(trainer, change["name"], change["new"])

    @observe(*ARCHITECTURE)
    def _on_architecture(self, change) -> None:
        """New models in the worker; an example changes several settings at once, and they make one build."""
        wanted = self.architecture()
        if wanted == (self._building or self._built):  # what the lab will hold once the worker is done
            return
        self._building = wanted
        self.busy = True
        self.say("Building the model…", "busy")
        self.worker.submit(self.build, wanted, done=self._use, failed=self._build_failed, latest=True)

    def _build_failed(self, error) -> None:
        self._building = None
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
        if seq2seq and (classify or text or settings["task"] == INDUCTION):
            raise ValueError(f"The encoder-decoder writes an output sequence for an input sequence; "
                             f"'{settings['task']}' is not such a task. Choose the encoder.")
        if translation and not seq2seq:
            raise ValueError(f"'{settings['task']}' writes a new sequence of its own length: choose the encoder-decoder.")
        length = max(len(data["train"][0]["input_ids"]), 0 if classify else len(data["train"][0]["labels"]))
        config = TransformerConfig(
            vocab_size=len(vocabulary(data)), d_model=settings["width"], n_heads=settings["heads"],
            n_layers=settings["layers"], max_len=max(64, length + 1), causal=text or settings["task"] == INDUCTION,
            pooling=(settings["pooling"] if settings["pooling"] != "none" else "mean") if classify else None,
            n_classes=len(class_names(data)) if classify else None, positional=settings["positional"],
            norm=settings["norm"], cross_score=settings["score"], attention_only=settings["attention_only"],
            pad_id=vocabulary(data).index(PAD) if translation else None)
        compare = settings["compare"]
        other = replace(config, n_heads=settings["heads_b"], n_layers=settings["layers_b"] if compare else config.n_layers,
                        cross_score=settings["score_b"] if seq2seq else config.cross_score)
        scores = seq2seq and (settings["score"] != "scaled_dot" or compare and settings["score_b"] != "scaled_dot")
        layers = compare and other.n_layers != config.n_layers
        if not compare:
            return [(run_name(config, scores), config)]
        return [(f"A: {run_name(config, scores, layers)}", config), (f"B: {run_name(other, scores, layers)}", other)]

    def build(self, settings: dict | None = None) -> tuple[dict, Lab]:
        """New data and models from the architecture ``settings`` (default: the settings now), in a lab (in the
        worker); the seed makes the same start every time."""
        settings = settings or self.architecture()
        data = self.task_data(settings)
        trainers = {}
        for name, config in self.configs(data, settings):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = (TinySeq2Seq if settings["kind"] == "encoder-decoder" else TinyTransformer)(config)
            trainers[name] = self._trainer(model, data)
            trainers[name].take_snapshot()
        return settings, self._lab(trainers)

    def _trainer(self, model, data) -> Trainer:
        return Trainer(model, data, lr=self.lr, batch_size=self.batch_size, seed=self.seed)

    def _lab(self, trainers: dict) -> Lab:
        return Lab(trainers, chunk=1, evaluate=False, owner=self.home)

    def _use(self, built: tuple[dict, Lab]) -> None:
        settings, lab = built
        self._built = settings
        if settings == self._building:
            self._building = None
        self.use(lab)
        self._follow_task_in_path(settings["task"])
        self.translation_notice, self.translation = "", None
        self.busy = self.worker.waiting
        model = self.runs[0].trainer.model
        self.say(f"New {type(model).__name__}: {model.config.n_layers} layer(s), width {model.config.d_model}, "
                 f"{sum(p.numel() for p in model.parameters()):,} weights. Press Train.", "ok")

    def _follow_task_in_path(self, task: str) -> None:
        """Keep the checkpoint folder at checkpoints/<task> unless the user typed another one."""
        default = f"checkpoints/{task.removeprefix(TEXT_PREFIX).removeprefix(PAIRS_PREFIX)}"
        if self.path in (self._default_path, ""):
            self.path = default
        self._default_path = default

    @property
    def runs(self) -> list[Run]:
        """The models being trained, by name (the first is the one exported, translated and saved first)."""
        return [Run(name, trainer) for name, trainer in self.trainers.items()]

    # ----- training ------------------------------------------------------------------------------------------------
    def train(self, steps: int | None = None) -> None:
        """Train every model ``steps`` steps (default: the steps setting) on the lab's worker."""
        if self.training:
            raise ValueError("Training is already running: press Stop first, or wait for it to finish.")
        if self.worker.running:
            raise ValueError("The model is still being built; press Train again in a moment.")
        steps = self.start_training(self.steps if steps is None else steps)
        self.say(f"Training {len(self.trainers)} model(s) for {steps} steps…", "busy")

    def stop(self) -> None:
        if not self.training or not self.lab.stop(timeout=0.0):
            raise ValueError("Training is not running, so there is nothing to stop.")

    def reset(self) -> None:
        """New weights from the seed and empty histories (refused while training)."""
        if self.training:
            raise ValueError("Training is running: press Stop before you reset.")
        self.lab.reset()
        self.say("Weights re-initialised from the seed; the history is cleared.", "ok")

    def ended(self, view: LabView) -> None:
        if view.status in ("finished", "stopped"):
            parts = [f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v:.1%}" for k, v in trainer.evaluate().items())
                     for name, trainer in self.trainers.items()]
            self.say(f"{view.message} Test set: " + "; ".join(parts) + ".", "ok")
        else:
            self.say(view.message, "error")

    def probe_maps(self):
        """The first model's newest attention on the probe input (None before it has any)."""
        record = self.record()
        snapshot = record.runs[0].snapshot if record is not None else None
        return snapshot.maps if snapshot is not None else None

    # ----- files and translation ---------------------------------------------------------------------------------------
    def add_text(self, name: str, content: bytes) -> None:
        """A user's file becomes a task (refused while training; limits say why): a .tsv of source<TAB>target lines
        a translation for the encoder-decoder, any other text a next-character task."""
        if self.training:
            raise ValueError("Training is running: press Stop before you switch to your file.")
        key, data, message = lab_files.text_task(name, content)
        self.text_tasks = {**self.text_tasks, key: data}
        self.update(task=key)
        self.say(message, "ok")

    def checkpoint_files(self):
        folder = confined(self.path.strip() or "checkpoints/model", "checkpoint folder")
        return lab_files.checkpoint_files(folder, len(self.trainers))

    def save(self) -> None:
        if self.training:
            raise ValueError("Training is running: press Stop before you save.")
        paths = self.lab.save(dict(zip(self.trainers, self.checkpoint_files())))
        self.say(f"Saved {len(paths)} model(s) to {paths[0].parent} (step {self.runs[0].trainer.step}).", "ok")

    def load(self) -> None:
        """Load the model saved in the folder (for the current task); on any error the current models stay."""
        if self.training:
            raise ValueError("Training is running: press Stop before you load.")
        path = self.checkpoint_files()[0]
        lab_files.vision_folder_note(path)
        data = self.runs[0].trainer.data
        trainer = Lab.load_trainers({"model": path}, lambda _, model: self._trainer(model, data),
                                    lambda _, model: lab_files.check_loadable(path, model, data))["model"]
        model = trainer.model
        lab = self._lab({run_name(model.config): trainer})
        settings = lab_files.loaded_settings(model, self.architecture())
        built, self._built = self._built, settings  # the loaded model is the one these settings describe
        try:
            self.update(**settings)
        except ValueError as error:  # a model the controls cannot show (width 48, 6 layers)
            self._built = built
            raise ValueError(f"{path} holds a model this tab's controls cannot show: {error} Nothing was loaded.") from None
        self._use((settings, lab))
        self.say(f"Loaded {path} at step {self.runs[0].trainer.step}; press Train to continue.", "ok")

    def translate(self, text: str | None = None) -> Translation:
        """Greedy decoding of ``text`` (default: the ``typed`` setting) with the first model; sets ``translation``
        and ``translation_notice``."""
        text = self.typed if text is None else text
        first = self.runs[0]
        result = translating.translate_text(first.trainer.model, first.trainer.data, text)
        self.typed = text
        self.translation_notice, self.translation_kind = translating.notice(  # first: the panel
            self.task, text, result, first.trainer.data)
        self.translation = result  # draws on ``translation``
        self.say(f"{first.name} at step {first.trainer.step} writes '{result.target}'.", "ok")
        return result

    def faithful_inputs(self) -> CheckInput:
        """What the faithfulness check reads: the first model (its weights of this step) on the probe input, its
        class or its token at ``faith_position``, and the attention of its last layer."""
        if not self.runs:
            raise ValueError("The model is still being built; check it when it is ready.")
        if self.training:  # the check reads (and freezes for its gradients) the weights the training steps change
            raise ValueError("Training is running: the weights change with every step. Press Stop, or check the "
                             "model when training ends.")
        trainer = self.runs[0].trainer
        data = trainer.data
        example, classify = data["test"][0], is_classification(data)
        options = {"names": tuple(vocabulary(data)), "classes": tuple(class_names(data)) if classify else None}
        if getattr(trainer.model, "is_encoder_decoder", False):
            options["length"] = len(example["labels"])
        position = -1 if classify else self.faith_position
        return CheckInput(trainer.model, tuple(example["input_ids"]), position, None, options, trainer.step)
