"""A student's own checkpoint files, in and out of the classroom server: Download packs the files of a checkpoint
folder into one zip; Upload puts a ``.safetensors`` file (or such a zip) back into the folder, under the names the
tab loads. Nothing is trusted here: Load checks every file (``explorer.checkpoints``) before anything is built.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

from explorer.arguments import items, path as user_path, say_name, shown
from explorer.checkpoints import make_folder

MAX_UPLOAD_BYTES = 8_000_000  # below the server's 10 MB message limit
MAX_MEMBERS = 8  # Download packs at most three checkpoint files


def pack(files: list[Path]) -> bytes:
    """The files that exist among ``files``, as a zip of their names; a ValueError when there is none."""
    present = [path for path in files if path.is_file()]
    if not present:
        raise ValueError(f"There is nothing saved in {files[0].parent.name if files else 'this folder'} yet: "
                         "press Save first.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in present:
            archive.write(path, path.name)
    return buffer.getvalue()


def unpack(name: str, content: bytes, files: list[Path]) -> list[Path]:
    """Write an uploaded ``.safetensors`` file or zip of them into the folder of ``files``, only under the names in
    ``files``; returns what was written. A ValueError in words for anything else."""
    name = say_name(str(user_path(name, "uploaded file's name")))
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise ValueError(f"An upload is the bytes of a file, got {shown(content)}.")
    allowed = {path.name: path for path in items(files, "checkpoint files")}
    if not allowed:
        raise ValueError("This tab names no checkpoint files to upload into.")
    wanted = ", ".join(allowed)
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValueError(f"'{name}' is {len(content) / 1e6:.1f} MB; checkpoints up to {MAX_UPLOAD_BYTES / 1e6:.0f} MB "
                         "can be uploaded.")
    if name.lower().endswith(".zip"):
        found = _members(name, bytes(content), allowed)
    else:
        found = {name: bytes(content)} if name in allowed else {}
    if not found:
        raise ValueError(f"Upload a file this tab saves ({wanted}) or the zip that Download gave you; "
                         f"{name} is neither.")
    written = []
    for file_name, data in found.items():
        make_folder(allowed[file_name].parent)
        allowed[file_name].write_bytes(data)
        written.append(allowed[file_name])
    return written


def _members(name: str, content: bytes, allowed: dict) -> dict[str, bytes]:
    """The members of an uploaded zip that the tab loads, read only after the archive was checked: how many members,
    their sizes, no encryption, and a compression method of Download's (stored or deflated)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            names = [m.filename for m in members]
            if len(members) > MAX_MEMBERS or len(set(names)) != len(names):
                raise ValueError(f"'{name}' holds {len(members)} files, {len(names) - len(set(names))} of them under a "
                                 f"repeated name; the zip Download makes holds at most {MAX_MEMBERS}, each once.")
            if any(m.flag_bits & 0x1 for m in members):
                raise ValueError(f"'{name}' is encrypted; upload the zip that Download gave you, without a password.")
            if any(m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) for m in members):
                raise ValueError(f"'{name}' is compressed in a way Download never uses; upload the zip Download gave you.")
            if sum(m.file_size for m in members) > MAX_UPLOAD_BYTES:
                raise ValueError(f"'{name}' unpacks to more than {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
            return {m.filename: archive.read(m) for m in members if m.filename in allowed}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError):
        raise ValueError(f"'{name}' is not a zip file that Download made (it may be damaged).") from None
