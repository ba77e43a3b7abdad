"""The Transformer lab's files: a user's text or pairs file as a task, and saving and loading checkpoints.

A mixin of ``TransformerLabSession`` (it uses that session's settings, runs and ``_use``); kept apart so each
module reads in one sitting.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from explorer import checkpoints
from explorer.data.sequences import MAX_TEXT_BYTES, is_classification, load_pairs_task, load_text_task, vocabulary
from explorer.models.transformer import TinySeq2Seq, TransformerConfig
from explorer.paths import confined
from explorer.training import Trainer

TEXT_PREFIX = "text: "
PAIRS_PREFIX = "pairs: "


@dataclass
class Run:
    """One configuration being trained: its name and its trainer."""

    name: str
    trainer: Trainer


class LabFiles:
    """Uploads and checkpoints of the Transformer lab."""

    def add_text(self, name: str, content: bytes) -> None:
        """A user's file becomes a task (refused while training; limits say why): a .tsv of source<TAB>target
        lines a translation for the encoder-decoder, any other text a next-character task."""
        pairs = Path(name).suffix.lower() == ".tsv"
        if len(content) > MAX_TEXT_BYTES:
            raise ValueError(f"{name} is {len(content) / 1e6:.1f} MB; the lab takes {'pairs' if pairs else 'text'} "
                             f"files up to {MAX_TEXT_BYTES / 1e6:.1f} MB.")
        if self.training:
            raise ValueError("Training is running: press Stop before you switch to your file.")
        with tempfile.TemporaryDirectory(prefix="ae-text-") as folder:  # the task is read into memory
            path = Path(folder) / Path(name).name
            path.write_bytes(content)
            data = load_pairs_task(path, max_bytes=MAX_TEXT_BYTES) if pairs else load_text_task(path)
        key = (PAIRS_PREFIX if pairs else TEXT_PREFIX) + path.name
        self.text_tasks = {**self.text_tasks, key: data}
        self.update(task=key)
        if pairs:
            self.say(f"{path.name}: {len(data['train'])} pairs to train on, {len(data['test'])} to test, "
                     f"{len(vocabulary(data)) - 3} different characters. The encoder-decoder learns to translate.", "ok")
            return
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
                        positional=config.positional, compare=False, pooling=config.pooling or "none",
                        score=config.cross_score)
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
