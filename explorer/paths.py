"""Where a tab may read and write files. A single user keeps free paths; in classroom mode (``AE_CLASSROOM=1``,
set by ``attention-explorer serve`` for a class) every path a student types stays inside one folder per
session (per kernel), and model folders come only from the teacher's list ``AE_MODEL_FOLDERS``.

    confined("checkpoints/reverse")   # <session folder>/checkpoints/reverse in a classroom, as typed otherwise
    model_source("models/bert-tiny")  # refused in a classroom unless it lies in a folder the teacher listed
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from explorer.arguments import path as user_path

CLASSROOM = "AE_CLASSROOM"  # "1": paths are confined
STUDENT_ROOT = "AE_STUDENT_ROOT"  # where the per-session folders are made (default: the system's temp folder)
MODEL_FOLDERS = "AE_MODEL_FOLDERS"  # the teacher's model folders, separated by os.pathsep


def classroom() -> bool:
    return os.environ.get(CLASSROOM, "") == "1"


def session_folder() -> Path:
    """This session's own folder (one per kernel process), made when first needed."""
    root = Path(os.environ.get(STUDENT_ROOT) or Path(tempfile.gettempdir()) / "attention-explorer-students")
    folder = root / f"session-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def confined(path, what: str = "folder") -> Path:
    """``path`` as typed (single user), or inside this session's folder (classroom): ``..``, absolute paths, ``~``
    and symlinks that lead out are refused with a ValueError in words, and so are names no file system holds."""
    user_path(path, what)
    text = str(path).strip()
    if not classroom():
        return Path(text).expanduser()
    refused = ValueError(f"In this classroom a {what} is a name inside your own folder, such as checkpoints/reverse; "
                         f"'{text[:60]}' leads outside it.")
    relative = Path(text)
    if not text or relative.is_absolute() or text.startswith("~") or ".." in relative.parts:
        raise refused
    root = session_folder()
    full = (root / relative).resolve()  # follows symlinks: one that points out of the folder is caught here
    if full != root and root not in full.parents:
        raise refused
    return full


def teacher_folders() -> list[Path]:
    return [Path(p).expanduser().resolve() for p in os.environ.get(MODEL_FOLDERS, "").split(os.pathsep) if p.strip()]


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "~", "/")) or "\\" in name or Path(name).expanduser().exists() or name.count("/") > 1


def model_source(name_or_path: str) -> str:
    """A model name or folder a student may load: in a classroom a folder must lie in one the teacher listed."""
    if name_or_path is not None:
        user_path(name_or_path, "model's name or folder")
    text = str(name_or_path or "").strip()
    if not classroom() or not text or not looks_like_path(text):
        return text
    full = Path(text).expanduser().resolve()
    if any(full == folder or folder in full.parents for folder in teacher_folders()):
        return str(full)
    listed = ", ".join(map(str, teacher_folders())) or "none"
    raise ValueError(f"In this classroom models load only from the folders your teacher listed ({listed}); "
                     f"'{text[:60]}' is not in one of them.")
