"""``attention-explorer serve``: the dashboard in Voila, with warm kernels waiting for visitors.

Voila starts one kernel per visitor. Starting a kernel and importing the explorer costs seconds of CPU,
so the server keeps a pool of preheated kernels that have already run the dashboard notebook: a visitor
gets one at once and sees the first plot without waiting for Python to start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
DASHBOARD = ROOT / "dashboards" / "explorer.ipynb"
NOTEBOOKS = ROOT / "notebooks"
# Our Voila template (Voila's lab template with its CDN assets served locally) lives in share/jupyter.
JUPYTER_DATA = ROOT / "share" / "jupyter"
TEMPLATE_STATIC = JUPYTER_DATA / "voila" / "templates" / "explorer" / "static"
IDLE_CULL_SECONDS = 5 * 60  # a kernel whose page was closed is shut down after 5 idle minutes (open pages never are)
# The largest message a page may send to its kernel, uploads included (one file travels as one message).
# Twice the largest file a panel accepts (5 MB images, 2 MB text files): such files still reach the panel,
# which explains its own limit; anything bigger is refused by the server and never reaches a kernel.
WEBSOCKET_MAX_BYTES = 10_000_000
# After a visitor takes a warm kernel Voila starts a replacement (after 1 s). For a class, waiting lets students
# arriving together get the CPU for their own pages first: the pool is sized for all of them, so nobody needs
# the replacements yet. Not longer: a replacement is queued in the pool at once, so a visitor beyond the pool
# waits for it (this delay plus about 4 s) rather than getting a kernel of its own (measured: with 300 s, the
# fourth visitor of a 3-kernel pool was still waiting after 120 s).
REFILL_DELAY_SECONDS = 30
# JupyterLab extensions installed in the environment that the dashboard page does not load. jupyterlab-plotly
# renders plotly's FigureWidget and figure outputs, which the dashboard has none of (its figures are PlotView,
# drawn with our template's plotly.js): Voila would fetch its 4.8 MB bundle (1.4 MB compressed) on every first
# visit before it connects to the kernel. JupyterLab itself keeps it for the lessons.
PAGE_EXTENSIONS_LEFT_OUT = ("jupyterlab-plotly",)
WARM_TIMEOUT_SECONDS = 600  # stop waiting for the pool to warm up after this long (the server keeps running)


def pool_size(students: int) -> int:
    """Warm kernels to keep for a class: one per student (at least one)."""
    return max(1, int(students))


def kernel_threads(students: int) -> int:
    """Torch threads per kernel: the machine's cores shared out among the class (at least one each).

    Ten kernels with two OpenMP threads each on two cores spend their time waiting on each other."""
    return max(1, (os.cpu_count() or 1) // pool_size(students))


def voila_command(notebook: Path, port: int, open_browser: bool, students: int = 1, ip: str = "localhost") -> list[str]:
    """The Voila command line that serves ``notebook`` with a preheated kernel pool."""
    command = [
        sys.executable, "-m", "explorer.voila_app", str(notebook),  # Voila, with compressed responses
        f"--port={port}",
        "--Voila.port_retries=0",  # a busy port is an error, not a silent move to another port
        f"--Voila.ip={ip}",
        "--template=explorer",
        "--preheat_kernel=True",
        f"--pool_size={pool_size(students)}",
        "--strip_sources=True",
        "--show_tracebacks=False",
        # Serve no files from the folder (Voila would serve its images by default): there is no file browser.
        "--VoilaConfiguration.file_denylist=.*",
        *(f"--VoilaConfiguration.extension_denylist={name}" for name in PAGE_EXTENSIONS_LEFT_OUT),
        # The dict form keeps the number an int (traitlets warns that the form is old; key=value would give a str).
        f"--Voila.tornado_settings={{'websocket_max_message_size': {WEBSOCKET_MAX_BYTES}}}",
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
    from explorer.widgets.plot import install_bundle

    install_bundle(TEMPLATE_STATIC)
    env = dict(os.environ if base is None else base)
    paths = [str(JUPYTER_DATA)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    env.update(JUPYTER_PATH=os.pathsep.join(paths), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    return env


def warm_kernels(server_pid: int, port: int) -> int:
    """How many kernels of the Voila server ``server_pid`` have run the dashboard and wait for a visitor.

    A preheated kernel runs the dashboard notebook up to ``app.apply_link()``, which connects back to the
    server on ``port`` to wait for its visitor's address: a kernel holding that connection is warm.
    """
    import psutil

    warm = 0
    for kernel in psutil.Process(server_pid).children(recursive=True):
        try:
            connections = kernel.net_connections("tcp")
        except psutil.Error:
            continue
        warm += any(c.raddr and c.raddr.port == port for c in connections)
    return warm


def wait_until_warm(process: subprocess.Popen, port: int, kernels: int,
                    timeout: float = WARM_TIMEOUT_SECONDS) -> bool:
    """Wait until the Voila server ``process`` has ``kernels`` warm kernels; False if it stopped or timed out.

    Not by fetching the page: each fetch is a visit that takes a kernel from the pool."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if warm_kernels(process.pid, port) >= kernels:
            return True
        time.sleep(0.5)
    return False


def announce_when_ready(process: subprocess.Popen, url: str, port: int, students: int,
                        timeout: float = WARM_TIMEOUT_SECONDS) -> bool:
    """Print "Ready for N students at <url>" once the whole pool is warm; False if it was not within ``timeout``."""
    wanted = pool_size(students)
    if wait_until_warm(process, port, wanted, timeout):
        print(f"Ready for {students} student(s) at {url} ({wanted} warm kernel(s)).", flush=True)
        return True
    if process.poll() is None:
        print(f"The warm pool is still filling after {timeout:.0f} s; visitors are served, the first ones may wait.",
              flush=True)
    return False


def serve_env(students: int, ip: str = "localhost", base: dict | None = None) -> dict:
    """The kernels' environment; a class (several students, or reachable from other machines) gets classroom mode:
    each student's paths stay in their own folder (``explorer.paths``)."""
    env = dict(voila_env(base), OMP_NUM_THREADS=str(kernel_threads(students)))
    if students > 1 or ip not in ("localhost", "127.0.0.1"):
        env.setdefault("AE_CLASSROOM", "1")
    return env


def serve(port: int = 8866, open_browser: bool = True, students: int = 1, notebook: Path = DASHBOARD,
          ip: str = "localhost") -> int:
    """Run Voila until it stops (Ctrl+C), echoing its log and saying when the warm pool is ready.

    ``ip="0.0.0.0"`` lets the students' laptops on the same network reach the dashboard."""
    if not notebook.exists():
        raise SystemExit(f"The dashboard notebook {notebook} is missing: run from a clone of the repository "
                         "(pip install -e .) so that dashboards/ is next to the package.")
    if students < 1:
        raise SystemExit("--students must be at least 1.")
    url = f"http://{socket.gethostname() if ip == '0.0.0.0' else ip}:{port}/"
    print(f"Serving Attention Explorer at {url}, warming {pool_size(students)} kernel(s) "
          "(each runs the dashboard once before its visitor arrives). Press Ctrl+C to stop.", flush=True)
    env = serve_env(students, ip)
    command = voila_command(notebook, port, open_browser, students, ip)
    if students > 1:
        command.append(f"--VoilaKernelManager.fill_delay={REFILL_DELAY_SECONDS}")
    process = subprocess.Popen(command, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())  # Voila then shuts its kernels down
    threading.Thread(target=announce_when_ready, args=(process, url, port, students), daemon=True).start()
    try:
        for line in process.stdout:
            sys.stdout.write(line)
        return process.wait()
    except KeyboardInterrupt:  # Voila got the same Ctrl+C and shuts its kernels down
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()


def lab_command(root_dir: Path, port: int, open_browser: bool, ip: str = "localhost") -> list[str]:
    """The JupyterLab command line that opens the lessons in ``root_dir``."""
    command = [
        sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root_dir}", f"--port={port}",
        "--ServerApp.port_retries=0", f"--ServerApp.ip={ip}",
        # Uploads travel as one message, as in the dashboard (see WEBSOCKET_MAX_BYTES).
        f"--ServerApp.tornado_settings={{'websocket_max_message_size': {WEBSOCKET_MAX_BYTES}}}",
    ]
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers (Docker, CI) often run as root
        command.append("--allow-root")
    return command


def lab(port: int = 8888, open_browser: bool = True, ip: str = "localhost", root_dir: Path = NOTEBOOKS) -> int:
    """Run JupyterLab on the lesson notebooks with the dashboard's offline environment, until Ctrl+C."""
    if not root_dir.is_dir():
        raise SystemExit(f"The lessons folder {root_dir} is missing: run from a clone of the repository.")
    try:
        return subprocess.call(lab_command(root_dir, port, open_browser, ip), env=voila_env())
    except KeyboardInterrupt:  # JupyterLab got the same Ctrl+C and shuts its kernels down
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attention-explorer", description="Attention Explorer dashboard.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the dashboard with Voila")
    serve_parser.add_argument("--port", type=int, default=8866, help="port to listen on (default 8866)")
    serve_parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    serve_parser.add_argument("--students", type=int, default=1,
                              help="size the warm kernel pool for this many simultaneous visitors")
    serve_parser.add_argument("--ip", default="localhost",
                              help="address to listen on; 0.0.0.0 serves the laptops of a class on this network")
    lab_parser = commands.add_parser("lab", help="open the lesson notebooks in JupyterLab")
    lab_parser.add_argument("--port", type=int, default=8888, help="port to listen on (default 8888)")
    lab_parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    lab_parser.add_argument("--ip", default="localhost", help="address to listen on")
    args = parser.parse_args(argv)
    if args.command == "lab":
        return lab(args.port, not args.no_browser, args.ip)
    if shutil.which("voila") is None and not (Path(sys.executable).parent / "voila").exists():
        print("Voila is not installed in this environment: run `make dashboard` or pip install -e .", file=sys.stderr)
    return serve(args.port, not args.no_browser, args.students, ip=args.ip)


if __name__ == "__main__":
    sys.exit(main())
