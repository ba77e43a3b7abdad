"""``attention-explorer serve``: the dashboard in Voila, with warm kernels waiting for visitors.

Voila starts one kernel per visitor. Starting a kernel and importing the explorer costs seconds of CPU,
so the server keeps a pool of preheated kernels that have already run the dashboard notebook: a visitor
gets one at once and sees the first plot without waiting for Python to start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
DASHBOARD = ROOT / "dashboards" / "explorer.ipynb"
# Our Voila template (Voila's lab template with its CDN assets served locally) lives in share/jupyter.
JUPYTER_DATA = ROOT / "share" / "jupyter"
TEMPLATE_STATIC = JUPYTER_DATA / "voila" / "templates" / "explorer" / "static"
IDLE_CULL_SECONDS = 20 * 60  # a kernel whose visitor left is shut down after 20 idle minutes


def pool_size(students: int) -> int:
    """Warm kernels to keep for a class: one per student (at least one)."""
    return max(1, int(students))


def voila_command(notebook: Path, port: int, open_browser: bool, students: int = 1, ip: str = "localhost") -> list[str]:
    """The Voila command line that serves ``notebook`` with a preheated kernel pool."""
    command = [
        sys.executable, "-m", "voila", str(notebook),
        f"--port={port}",
        f"--Voila.ip={ip}",
        "--template=explorer",
        "--preheat_kernel=True",
        f"--pool_size={pool_size(students)}",
        "--strip_sources=True",
        "--show_tracebacks=False",
        f"--MappingKernelManager.cull_idle_timeout={IDLE_CULL_SECONDS}",
        "--MappingKernelManager.cull_interval=60",
        # Plotly's FigureWidget and the heavy imports can take a while on a busy machine.
        "--VoilaExecutor.timeout=180",
    ]
    if not open_browser:
        command.append("--no-browser")
    return command


def voila_env(base: dict | None = None) -> dict:
    """The environment for Voila and its kernels: offline libraries and our template on the Jupyter path.

    Also puts plotly's widget bundle among the template's static files, so figures load it once per page.
    """
    from explorer.widgets.figure import BUNDLE_ENV, bundle_file_name, install_bundle

    install_bundle(TEMPLATE_STATIC)
    env = dict(os.environ if base is None else base)
    env[BUNDLE_ENV] = f"voila/templates/explorer/static/{bundle_file_name()}"
    paths = [str(JUPYTER_DATA)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    env.update(JUPYTER_PATH=os.pathsep.join(paths), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    return env


def serve(port: int = 8866, open_browser: bool = True, students: int = 1, notebook: Path = DASHBOARD) -> int:
    if not notebook.exists():
        raise SystemExit(f"The dashboard notebook {notebook} is missing: run from a clone of the repository "
                         "(pip install -e .) so that dashboards/ is next to the package.")
    if students < 1:
        raise SystemExit("--students must be at least 1.")
    env = voila_env()
    print(f"Serving Attention Explorer at http://localhost:{port} with {pool_size(students)} warm kernel(s)."
          " The page is ready once Voila logs that its kernels are preheated. Press Ctrl+C to stop.", flush=True)
    return subprocess.call(voila_command(notebook, port, open_browser, students), env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attention-explorer", description="Attention Explorer dashboard.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the dashboard with Voila")
    serve_parser.add_argument("--port", type=int, default=8866, help="port to listen on (default 8866)")
    serve_parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    serve_parser.add_argument("--students", type=int, default=1,
                              help="size the warm kernel pool for this many simultaneous visitors")
    args = parser.parse_args(argv)
    if shutil.which("voila") is None and not (Path(sys.executable).parent / "voila").exists():
        print("Voila is not installed in this environment: run `make dashboard` or pip install -e .", file=sys.stderr)
    return serve(args.port, not args.no_browser, args.students)


if __name__ == "__main__":
    sys.exit(main())
