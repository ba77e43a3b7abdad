"""A student's own checkpoint files, in and out of the classroom server: Download packs the files of a checkpoint
folder into one zip; Upload puts a ``.safetensors`` file (or such a zip) back into the folder, under the names the
tab loads. Nothing is trusted here: Load checks every file (``explorer.checkpoints``) before anything is built.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from explorer.checkpoints import make_folder

MAX_UPLOAD_BYTES = 8_000_000  # below the server's 10 MB message limit


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
    allowed = {path.name: path for path in files}
    wanted = ", ".join(allowed)
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{name} is {len(content) / 1e6:.1f} MB; checkpoints up to {MAX_UPLOAD_BYTES / 1e6:.0f} MB "
                         "can be uploaded.")
    if name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if sum(m.file_size for m in members) > MAX_UPLOAD_BYTES:
                    raise ValueError(f"{name} unpacks to more than {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
                found = {m.filename: archive.read(m) for m in members if m.filename in allowed}
        except zipfile.BadZipFile:
            raise ValueError(f"{name} is not a zip file that Download made.") from None
    else:
        found = {name: content} if name in allowed else {}
    if not found:
        raise ValueError(f"Upload a file this tab saves ({wanted}) or the zip that Download gave you; "
                         f"{name} is neither.")
    written = []
    for file_name, data in found.items():
        make_folder(allowed[file_name].parent)
        allowed[file_name].write_bytes(data)
        written.append(allowed[file_name])
    return written
