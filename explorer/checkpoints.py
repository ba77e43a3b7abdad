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
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from explorer.arguments import items, parse_json, path as user_path, shown
from explorer.limits import MAX_WEIGHTS
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
CBAM_SETTINGS = ("n_classes", "in_channels", "width", "stages", "cbam", "ratio", "kernel_size", "order", "channel",
                 "spatial", "pool", "merge")  # the arguments of CBAMNet
MAX_CONFIG_CHARS = 64_000  # a config is a few hundred characters
MAX_HISTORY_CHARS = 32_000_000  # about 300,000 steps of history
MAX_DEPTH = 4  # a config nests a list in a dict, a history a dict in a list; deeper is forged
PICKLE_STARTS = (b"\x80", b"PK\x03\x04")  # a pickle protocol header, or the zip archive torch.save writes
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle")


def _import(spec: str):
    module_name, name = spec.split(":")
    return getattr(importlib.import_module(module_name), name)


def checkpoint_path(path) -> Path:
    """The file a path names: a directory (existing, or given without a suffix) means ``<dir>/model.safetensors``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError(f"A checkpoint path is a file or folder name such as checkpoints/reverse, got {shown(path)}.")
    path = user_path(path, "checkpoint path").expanduser()
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
    """Write weights, class, config and ``history`` (a list of dicts) to one safetensors file; returns its path. A file
    there that is not a checkpoint of the explorer is never overwritten; the write is atomic (a new file is renamed
    over the old one), so a failed save leaves the previous checkpoint whole."""
    name = type(model).__name__
    if name not in MODELS or not isinstance(model, nn.Module):
        raise ValueError(f"Only these models can be saved: {', '.join(MODELS)}; got {shown(model)}.")
    rows = [_row_dict(row) for row in items([] if history is None else history, "history", max_items=10**7)]
    metadata = {"format": FORMAT, "model": name, "config": json.dumps(config_dict(model), default=_plain),
                "history": json.dumps(rows, default=_plain)}
    path = checkpoint_path(path)
    _check_can_write(path)
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    try:
        make_folder(path.parent)
        handle, temporary = tempfile.mkstemp(prefix=".saving-", suffix=".safetensors", dir=path.parent)
        os.close(handle)
        try:
            save_file(weights, temporary, metadata=metadata)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{_shown_path(path.parent)} is a file, not a folder, so nothing can be saved in it. "
                         "Choose another folder. Nothing was saved.") from None
    except OSError as error:
        raise ValueError(f"Could not save to {_shown_path(path)}: {error.strerror or 'the system refused'}. "
                         "Nothing was saved.") from None
    return path


def _check_can_write(path: Path) -> None:
    """Save writes over nothing but a checkpoint of the explorer: a text file or a folder of the same name is kept."""
    if path.is_dir():
        raise ValueError(f"{_shown_path(path)} is a folder; choose a file name for the checkpoint. Nothing was saved.")
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as handle:
                ours = (handle.metadata() or {}).get("format") == FORMAT
        except (SafetensorError, OSError, ValueError, RuntimeError):
            ours = False
        if not ours:
            raise ValueError(f"{_shown_path(path)} exists and is not a checkpoint the explorer wrote, so Save does not "
                             "overwrite it. Choose another name. Nothing was saved.")


def _shown_path(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else "..." + text[-77:]


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
    except (SafetensorError, OSError, ValueError, RuntimeError):
        with open(path, "rb") as handle:
            if handle.read(4).startswith(PICKLE_STARTS):
                raise _pickle_error(path) from None
        raise ValueError(f"'{path.name}' is not a readable safetensors checkpoint (it may be corrupted or cut "
                         "short).") from None
    if metadata.get("format") != FORMAT or metadata.get("model") not in MODELS:
        raise ValueError(f"'{path.name}' is a safetensors file but not an Attention Explorer checkpoint (no model and config).")
    return metadata, shapes


def _tensors(path) -> dict[str, torch.Tensor]:
    """The weights, read only after their shapes were checked; NaN or infinite weights are refused."""
    path = checkpoint_path(path)
    tensors = load_file(str(path))
    broken = [key for key, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise ValueError(f"'{path.name}' holds NaN or infinite weights ({', '.join(broken[:3])}): the model it saved "
                         "had diverged. Nothing was loaded.")
    return tensors


def _pickle_error(path: Path) -> ValueError:
    return ValueError(f"'{path.name}' looks like a pickled file (torch.save or pickle). The explorer never loads "
                      "pickles, because they can run code; save the model with explorer.checkpoints.save instead.")


def _build(name: str, config, device: str | None = None) -> nn.Module:
    """The model of a checkpoint's config. Its settings are checked by name first, and each value by the config
    itself (sizes against the budget) before any module is built."""
    if not isinstance(config, dict):
        raise ValueError(f"The checkpoint's {name} config is damaged: it is not a set of named settings.")
    config_class = _import(CONFIG_CLASSES[name]) if name in CONFIG_CLASSES else None
    fields = dataclasses.fields(config_class) if config_class else ()
    known = [f.name for f in fields] if config_class else list(CBAM_SETTINGS)
    required = [f.name for f in fields if f.default is dataclasses.MISSING] if config_class else ["n_classes"]
    unknown, missing = sorted(set(config) - set(known)), [key for key in required if key not in config]
    if unknown or missing:
        why = (f"it has settings this version does not know ({', '.join(map(shown, unknown[:3]))})" if unknown
               else f"it lacks {', '.join(missing)}")
        raise ValueError(f"The checkpoint's {name} config does not build a model: {why}. Nothing was loaded.")
    model_class = _import(MODELS[name])
    try:
        with torch.device(device) if device else contextlib.nullcontext():
            return model_class(config_class(**config)) if config_class else model_class(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"The checkpoint's {name} config does not build a model. {error} Nothing was loaded.") from None


def _planned(name: str, config, shapes: dict, path) -> nn.Module:
    """Build the model on the meta device (nothing allocated) and check its size and shapes against the file's
    header; only then is it built for real. A forged config with huge sizes is refused here."""
    plan = _build(name, config, device="meta")  # the config's own checks worked its size out before this
    size = sum(p.numel() for p in plan.parameters())
    if size > MAX_WEIGHTS:
        raise ValueError(f"'{checkpoint_path(path).name}' describes a {name} with {size:,} weights; the explorer loads "
                         f"models of at most {MAX_WEIGHTS:,}. Nothing was loaded.")
    _check_shapes({key: tuple(value.shape) for key, value in plan.state_dict().items()}, shapes, name)
    return _build(name, config)


def _decode_json(metadata: dict, key: str):
    """A JSON field of the header, its size and nesting checked on the raw text before it is parsed."""
    limit = MAX_HISTORY_CHARS if key == "history" else MAX_CONFIG_CHARS
    return parse_json(metadata.get(key) or "null", f"{key} stored in the checkpoint", limit, MAX_DEPTH)


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
    Everything is checked (the config, its size against ``explorer.limits``, the shapes against the file, the
    history, finite weights) before the model is built."""
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
