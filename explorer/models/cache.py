"""The explorer's cache of converted models (``AE_CACHE``, default ``~/.cache/attention-explorer``).

A packaged model that transformers cannot read as it ships (SmolLM2's GGUF file, Whisper's two CTranslate2 halves)
is converted once into a folder here. A converter writes the folder aside and renames it into place, with
``complete.json`` written last, so a folder without it is unfinished; ``load_cached`` rebuilds a folder that is
unfinished or that fails to load, and says so in the model's ``notice``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DONE_MARK = "complete.json"  # written last: a cache folder without it is unfinished


def cache_dir() -> Path:
    return Path(os.environ.get("AE_CACHE") or Path.home() / ".cache" / "attention-explorer")


def load_cached(target: Path, what: str, convert, load, mark: dict | None = None):
    """``load()`` the converted folder ``target``; first ``convert()`` it when it is missing, unfinished, damaged, or
    (given the ``mark`` its converter writes into ``complete.json``) made by another version of the converter; the
    model's ``notice`` then says which. ``what`` names the model and where it comes from in that notice."""
    notice = ""
    if mark is not None and (target / DONE_MARK).is_file() and _read_mark(target) != mark:
        notice = f"The cached copy of {what} was made by another version of the explorer, so it was rebuilt."
    elif (target / DONE_MARK).is_file():
        try:
            return load()
        except Exception:  # noqa: BLE001 - any failure to read our own cache (safetensors raises its own type) rebuilds it
            notice = f"The cached copy of {what} was damaged, so it was rebuilt."
    elif target.exists():
        notice = f"The cached copy of {what} was unfinished, so it was rebuilt."
    convert()
    model = load()
    model.notice = notice
    return model


def _read_mark(target: Path):
    try:
        return json.loads((target / DONE_MARK).read_text())
    except (OSError, ValueError):
        return None
