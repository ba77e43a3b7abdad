"""The package installs into a user's own environment: its wheel holds every file of ``explorer/`` (the widgets'
JavaScript, ``static/`` for offline pages, and any data added later), and declares what it needs to run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_file_of_the_package(tmp_path):
    source = tmp_path / "source"  # a clean copy: a build folder left in the repository could add stale files
    shutil.copytree(ROOT / "explorer", source / "explorer", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("attention_explorer-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
                                     .decode("utf-8"))
    files = {path.relative_to(source).as_posix() for path in (source / "explorer").rglob("*") if path.is_file()}
    assert files - names == set()
    assert {"explorer/widgets/heatmap_view.js", "explorer/widgets/plot_view.js", "explorer/static/bertviz/d3.min.js",
            "explorer/static/plotly/plotly-cartesian.min.js"} <= names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    requires = metadata.get_all("Requires-Dist")
    assert "torch==2.13.0" in requires and any(r.startswith("anywidget") for r in requires)
    assert any(r.startswith("transformer-lens==4.3.0") and 'extra == "lens"' in r for r in requires)
