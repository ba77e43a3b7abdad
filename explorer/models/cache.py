"""The explorer's cache of converted models (``AE_CACHE``, default ``~/.cache/attention-explorer``).

A packaged model that transformers cannot read as it ships (SmolLM2's GGUF file, Whisper's two CTranslate2 halves)
is converted once into a folder here. A converter writes the folder aside and renames it into place, with
``complete.json`` written last, so a folder without it is unfinished; ``load_cached`` rebuilds a folder that is
unfinished or that fails to load, and says so in the model's ``notice``.
"""

from __future__ import annotations

import os
from pathlib import Path

DONE_MARK = "complete.json"  # written last: a cache folder without it is unfinished


def cache_dir() -> Path:
    return Path(os.environ.get("AE_CACHE") or Path.home() / ".cache" / "attention-explorer")


def load_cached(target: Path, what: str, convert, load):
    """``load()`` the converted folder ``target``; first ``convert()`` it when it is missing, unfinished or damaged
    (the model's ``notice`` then says which). ``what`` names the model and where it comes from in that notice."""
    notice = ""
    if (target / DONE_MARK).is_file():
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
