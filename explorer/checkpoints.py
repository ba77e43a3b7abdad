"""Save and load models as one ``.safetensors`` file: the weights, plus the model's class, config and history as JSON
in the file's metadata header. Never pickle: nothing in a checkpoint can run code when it is read.

    save(model, "checkpoints/reverse.safetensors", history=trainer.history)
    model, history = load("checkpoints/reverse.safetensors")
    load_into(live_model, path)  # same architecture only; the live model is untouched on any error

A model is saved with its ``config`` attribute (a dataclass or a dict of constructor arguments); its
class must be in ``MODELS`` ("module:Class" strings, imported only when a checkpoint needs them).
A directory path means ``<directory>/model.safetensors``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from explorer.maps import HistoryRow

FORMAT = "attention-explorer/1"
FILE_NAME = "model.safetensors"
MODELS = {
    "TinyTransformer": "explorer.models.transformer:TinyTransformer",
    "TinySeq2Seq": "explorer.models.transformer:TinySeq2Seq",
    "CBAMNet": "explorer.models.cbam:CBAMNet",
    "TinyViT": "explorer.models.vit:TinyViT",
}
CONFIG_CLASSES = {"TinyTransformer": "explorer.models.transformer:TransformerConfig",
                  "TinySeq2Seq": "explorer.models.transformer:TransformerConfig",
                  "TinyViT": "explorer.models.vit:ViTConfig"}
MAX_PARAMETERS = 50_000_000  # the explorer's models have well under a million; a forged config asks for billions
PICKLE_STARTS = (b"\x80", b"PK\x03\x04")  # a pickle protocol header, or the zip archive torch.save writes
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle")


def _import(spec: str):
    module_name, name = spec.split(":")
    return getattr(importlib.import_module(module_name), name)


def checkpoint_path(path) -> Path:
    """The file a path names: a directory (existing, or given without a suffix) means ``<dir>/model.safetensors``."""
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ValueError(f"A checkpoint path is a file or folder name such as checkpoints/reverse, got {path!r:.40}.")
    path = Path(path).expanduser()
    if path.is_dir() or (not path.suffix and not path.exists()):
        return path / FILE_NAME
    return path


def config_dict(model: nn.Module) -> dict:
    """The constructor arguments of ``model`` from its ``config`` attribute."""
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise ValueError(f"{type(model).__name__} has no config (a dataclass or a dict of its arguments): it cannot be saved.")


DEFAULT_FOLDER = "checkpoints"  # where the tabs save by default: checkpoints/<task>, relative to the kernel's folder


def make_folder(folder: Path) -> None:
    """Make ``folder`` and its parents. A ``checkpoints`` folder made here gets a ``.gitignore`` that ignores it
    all, so a kernel run inside any git repository (a fork, a course's repository) never offers weights to commit."""
    default = next((p for p in (folder, *folder.parents) if p.name == DEFAULT_FOLDER), None)
    new_default = default is not None and not default.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if new_default:
        (default / ".gitignore").write_text("# made by Attention Explorer: saved models stay out of git\n*\n")


def save(model: nn.Module, path, history=None) -> Path:
    """Write weights, class, config and ``history`` (a list of dicts) to one safetensors file; returns its path."""
    name = type(model).__name__
    if name not in MODELS:
        raise ValueError(f"Only these models can be saved: {', '.join(MODELS)}; got {name}.")
    rows = [_row_dict(row) for row in history or []]
    metadata = {"format": FORMAT, "model": name, "config": json.dumps(config_dict(model)),
                "history": json.dumps(rows, default=_plain)}
    path = checkpoint_path(path)
    make_folder(path.parent)
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(weights, str(path), metadata=metadata)
    return path


def _read(path) -> tuple[dict, dict[str, tuple]]:
    """Metadata and the tensors' shapes from the file's header (no tensor is read); a pickled, corrupted or foreign
    file is a ValueError."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise ValueError(f"There is no checkpoint at {path}.")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _pickle_error(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        with open(path, "rb") as handle:
            if handle.read(4).startswith(PICKLE_STARTS):
                raise _pickle_error(path) from None
        raise ValueError(f"{path.name} is not a readable safetensors checkpoint (it may be corrupted): "
                         f"{str(error)[:120]}") from None
    if metadata.get("format") != FORMAT or metadata.get("model") not in MODELS:
        raise ValueError(f"{path.name} is a safetensors file but not an Attention Explorer checkpoint (no model and config).")
    return metadata, shapes


def _tensors(path) -> dict[str, torch.Tensor]:
    """The weights, read only after their shapes were checked; NaN or infinite weights are refused."""
    path = checkpoint_path(path)
    tensors = load_file(str(path))
    broken = [key for key, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise ValueError(f"{path.name} holds NaN or infinite weights ({', '.join(broken[:3])}): the model it saved "
                         "had diverged. Nothing was loaded.")
    return tensors


def _pickle_error(path: Path) -> ValueError:
    return ValueError(f"{path.name} looks like a pickled file (torch.save or pickle). The explorer never loads "
                      "pickles, because they can run code; save the model with explorer.checkpoints.save instead.")


def _build(name: str, config, device: str | None = None) -> nn.Module:
    if not isinstance(config, dict):
        raise ValueError(f"The checkpoint's {name} config is damaged: it is not a set of named settings.")
    model_class = _import(MODELS[name])
    try:
        with torch.device(device) if device else contextlib.nullcontext():
            if name in CONFIG_CLASSES:
                return model_class(_import(CONFIG_CLASSES[name])(**config))
            return model_class(**config)
    except (TypeError, ValueError, ImportError, RuntimeError, OverflowError) as error:
        raise ValueError(f"The checkpoint's {name} config does not build a model: {str(error)[:160]}") from None


def _planned(name: str, config, shapes: dict, path) -> nn.Module:
    """Build the model on the meta device (nothing allocated) and check its size and shapes against the file's
    header; only then is it built for real. A forged config with huge sizes is refused here."""
    plan = _build(name, config, device="meta")
    size = sum(p.numel() for p in plan.parameters())
    if size > MAX_PARAMETERS:
        raise ValueError(f"{checkpoint_path(path).name} describes a {name} with {size:,} weights; the explorer loads "
                         f"models of at most {MAX_PARAMETERS:,}. Nothing was loaded.")
    _check_shapes({key: tuple(value.shape) for key, value in plan.state_dict().items()}, shapes, name)
    return _build(name, config)


def _decode_json(metadata: dict, key: str):
    try:
        return json.loads(metadata.get(key) or "null")
    except json.JSONDecodeError:
        raise ValueError(f"The {key} stored in the checkpoint is damaged.") from None


def _row_dict(row) -> dict:
    return HistoryRow.from_dict(row).to_dict()


def _history(metadata: dict) -> list:
    """The saved history as ``HistoryRow``s; a ValueError if it is not a list of steps that go forward."""
    rows = _decode_json(metadata, "history") or []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("The history stored in the checkpoint is damaged: it is not a list of steps.")
    history = [HistoryRow.from_dict(row) for row in rows]
    if any(b.step <= a.step for a, b in zip(history, history[1:])):
        raise ValueError("The history stored in the checkpoint is damaged: its steps do not go forward.")
    return history


def load(path) -> tuple[nn.Module, list]:
    """A new model with the saved architecture and weights, and the saved history: ``(model, history)``.
    Everything is checked (sizes against the file and ``MAX_PARAMETERS``, history, finite weights) before the
    model is built."""
    metadata, shapes = _read(path)
    config = _decode_json(metadata, "config")
    history = _history(metadata)
    model = _planned(metadata["model"], config, shapes, path)
    model.load_state_dict(_tensors(path))
    return model, history


def describe(path) -> dict:
    """The model class, config and number of history steps of a checkpoint, without building it."""
    metadata, _ = _read(path)
    return {"model": metadata["model"], "config": _decode_json(metadata, "config"),
            "steps": len(_history(metadata))}


def load_into(model: nn.Module, path) -> list:
    """Load saved weights into ``model`` of the same architecture; returns the history. On any mismatch,
    a ValueError says what differs and ``model`` keeps its weights."""
    metadata, tensors = _read(path)  # tensors: their shapes
    name, config = metadata["model"], _decode_json(metadata, "config")
    if name != type(model).__name__ or config != config_dict(model):
        raise ValueError(f"The checkpoint holds a different architecture ({name} {_short(config)}) from the "
                         f"current model ({type(model).__name__} {_short(config_dict(model))}); it was not loaded.")
    history = _history(metadata)
    _check_shapes({key: tuple(value.shape) for key, value in model.state_dict().items()}, tensors, name)
    model.load_state_dict(_tensors(path))
    return history


def _check_shapes(wanted: dict, found: dict, name: str) -> None:
    """Every tensor name and shape the model has is in the file, and nothing else (all or nothing)."""
    missing, unexpected = sorted(set(wanted) - set(found)), sorted(set(found) - set(wanted))
    wrong = [key for key in wanted if key in found and found[key] != wanted[key]]
    if missing or unexpected or wrong:
        details = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            f"other shapes for {', '.join(wrong[:3])}" if wrong else "") if part)
        raise ValueError(f"The checkpoint's weights do not fit a {name} of its config ({details}).")


def _plain(value):
    """History values such as numpy or torch scalars as plain numbers; anything else as text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _short(config: dict) -> str:
    keys = ("d_model", "n_heads", "n_layers", "pooling", "vocab_size")
    shown = {k: config[k] for k in keys if k in config} or config
    return ", ".join(f"{k}={v}" for k, v in shown.items())
