"""The Transformer lab's files: a user's text or pairs file as a task, and what a checkpoint must be to load.

Plain functions of their arguments, so the session (``sessions/transformer_lab.py``) reads in one sitting; saving
and loading the models themselves is the lab's (``explorer.lab.Lab.save`` and ``Lab.load``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from explorer import checkpoints
from explorer.arguments import path as user_path, shown
from explorer.data.sequences import MAX_TEXT_BYTES, is_classification, load_pairs_task, load_text_task, vocabulary
from explorer.models.transformer import TinySeq2Seq, TransformerConfig
from explorer.training import Trainer

TEXT_PREFIX = "text: "
PAIRS_PREFIX = "pairs: "
COMPARE_FILE = "compare.safetensors"  # the second model of a comparison


@dataclass(frozen=True)
class Run:
    """One configuration being trained: its name and its trainer."""

    name: str
    trainer: Trainer


def run_name(config: TransformerConfig, with_score: bool = False, with_layers: bool = False) -> str:
    """"4 heads"; "4 heads, additive" when the cross-attention scores differ between runs; "2 layers, 4 heads" when
    the layers do."""
    layers = f"{config.n_layers} layer{'s' * (config.n_layers != 1)}, " if with_layers else ""
    return layers + f"{config.n_heads} head{'s' * (config.n_heads != 1)}" + (f", {config.cross_score}" if with_score else "")


def text_task(name: str, content: bytes) -> tuple[str, object, str]:
    """A user's file as a task: its key, its DatasetDict and a sentence about it. A .tsv of source<TAB>target
    lines is a translation for the encoder-decoder, any other text a next-character task; limits say why not."""
    name = user_path(name, "uploaded file's name").name
    if not name.strip():
        raise ValueError("An uploaded file needs a name such as notes.txt, to tell its kind.")
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise ValueError(f"An uploaded file is its bytes, got {shown(content)}.")
    pairs = Path(name).suffix.lower() == ".tsv"
    if len(content) > MAX_TEXT_BYTES:
        raise ValueError(f"{name} is {len(content) / 1e6:.1f} MB; the lab takes {'pairs' if pairs else 'text'} "
                         f"files up to {MAX_TEXT_BYTES / 1e6:.1f} MB.")
    with tempfile.TemporaryDirectory(prefix="ae-text-") as folder:  # the task is read into memory
        path = Path(folder) / Path(name).name
        path.write_bytes(content)
        data = load_pairs_task(path, max_bytes=MAX_TEXT_BYTES) if pairs else load_text_task(path)
    if pairs:
        return PAIRS_PREFIX + path.name, data, (
            f"{path.name}: {len(data['train'])} pairs to train on, {len(data['test'])} to test, "
            f"{len(vocabulary(data)) - 3} different characters. The encoder-decoder learns to translate.")
    return TEXT_PREFIX + path.name, data, (
        f"{path.name}: {len(data['train'])} windows of {len(data['train'][0]['input_ids'])} characters, "
        f"{len(vocabulary(data))} different characters. The model learns to predict the next one.")


def checkpoint_files(folder: Path, runs: int) -> list[Path]:
    """The files Save writes for ``runs`` models (the first is the one Load reads)."""
    return [folder / checkpoints.FILE_NAME, folder / COMPARE_FILE][: max(1, runs)]


def check_loadable(path: Path, model, data) -> None:
    """A ValueError in words unless ``model`` (read from ``path``) is a Transformer of this lab for ``data``."""
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


def vision_folder_note(path: Path) -> None:
    """A ValueError when ``path``'s folder holds the Vision tab's nets rather than a model of this lab."""
    if not path.exists() and (path.parent / "cbam.safetensors").exists():
        raise ValueError(f"{path.parent} holds the Vision tab's nets, not a Transformer of this lab: load them in "
                         "the Vision tab. Nothing was loaded.")


def loaded_settings(model, architecture: dict) -> dict:
    """The architecture settings that describe a loaded model (the rest of ``architecture`` stays)."""
    config = model.config
    return dict(architecture, kind="encoder-decoder" if isinstance(model, TinySeq2Seq) else "encoder",
                layers=config.n_layers, width=config.d_model, heads=config.n_heads, norm=config.norm,
                positional=config.positional, compare=False, pooling=config.pooling or "none",
                score=config.cross_score, attention_only=config.attention_only)
