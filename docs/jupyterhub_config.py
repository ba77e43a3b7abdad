# JupyterHub for a class on one machine: every student logs in with the class password and lands on the
# dashboard in a Jupyter server of their own (Voila's server extension), with the settings of
# `attention-explorer serve`. Run it with `make hub PASSWORD=...`; docs/deploy.md explains it, and
# tests/test_hub.py starts it on loopback with three students.
#
#   AE_CLASS_PASSWORD   the class password (required, 8 characters or more): any name with it logs in
#   AE_HUB_STATE        where the hub keeps its database, cookie secret and the students' homes (default .hub/)
#   AE_HUB_IDLE_SECONDS a student's server with no activity for this long is stopped (default 1200)
#   AE_CLASS_SIZE       students expected at once: shares the cores among their kernels (default 30)
#
# What it does not do: SimpleLocalProcessSpawner runs every student's server as the hub's own user. Each
# student has a folder and a server of their own, and the hub lets only its owner reach a server, but a
# student's kernel runs Python as that user and could read the others' folders. For a class that must be
# kept apart, use Zero to JupyterHub (one pod per student, docs/deploy.md) or LocalProcessSpawner with
# system accounts.
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from traitlets.config.loader import PyFileConfigLoader  # noqa: E402

from explorer.cli import DASHBOARD, serve_env  # noqa: E402

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

SERVER_CONFIG = ROOT / "docs" / "jupyter_server_config.py"  # the single-user server's (and Binder's) settings
STATE = Path(os.environ.get("AE_HUB_STATE") or ROOT / ".hub").resolve()
HOMES = STATE / "homes"
IDLE_SECONDS = int(os.environ.get("AE_HUB_IDLE_SECONDS", "1200"))
# Activity reaches the hub at least four times per idle timeout, so a student at work is never culled.
ACTIVITY_SECONDS = max(5, min(300, IDLE_SECONDS // 4))
CLASS_SIZE = int(os.environ.get("AE_CLASS_SIZE", "30"))

PASSWORD = os.environ.get("AE_CLASS_PASSWORD", "")
if len(PASSWORD) < 8:
    sys.exit("Set the class password in AE_CLASS_PASSWORD (8 characters or more), e.g. `make hub PASSWORD=...`.")

# ----- the hub ----------------------------------------------------------------------------------------------
STATE.mkdir(parents=True, exist_ok=True)
HOMES.mkdir(exist_ok=True)
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.tornado_settings = {"compress_response": True}  # the login and progress pages travel gzipped
c.JupyterHub.last_activity_interval = ACTIVITY_SECONDS
proxy = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"  # `npm ci` puts it there (package.json)
c.ConfigurableHTTPProxy.command = [str(proxy) if proxy.exists() else "configurable-http-proxy"]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")

# ----- logging in: one class password, any name ---------------------------------------------------------
# JupyterHub's shared-password authenticator is the built-in DummyAuthenticator's password, which JupyterHub
# 5.3 moved here (DummyAuthenticator.password is deprecated). A wrong password gets the login page again
# with "Invalid username or password". Names are lowercased; names with spaces and Unicode letters are kept
# (JupyterHub refuses "/", "." and "..", and leading or trailing spaces).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = PASSWORD
c.SharedPasswordAuthenticator.allow_all = True

# ----- each student's server: a home of their own, opened on the dashboard ------------------------------
c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: the hub's own user, HOME per student
c.SimpleLocalProcessSpawner.home_dir_template = str(HOMES / "{username}")
server_config = PyFileConfigLoader(SERVER_CONFIG.name, path=str(SERVER_CONFIG.parent)).load_config()
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = [f"--config={SERVER_CONFIG}"]  # the same Voila template and settings as Binder and serve
if hasattr(os, "geteuid") and os.geteuid() == 0:  # a hub run as root (containers, CI) runs its servers as root
    c.Spawner.args.append("--allow-root")
c.Spawner.default_url = server_config.ServerApp.default_url
# The environment `attention-explorer serve` gives its kernels (our template on JUPYTER_PATH, plotly's
# bundle, offline Hugging Face, threads shared among the class, classroom paths), plus the teacher's AE_*
# settings; nothing else of the hub's environment reaches the students.
c.Spawner.environment = serve_env(CLASS_SIZE, base={key: value for key, value in os.environ.items()
                                                   if (key.startswith("AE_") and key != "AE_CLASS_PASSWORD")
                                                   or key == "JUPYTER_PATH"})
c.Spawner.environment["AE_CLASSROOM"] = "1"  # a student's paths stay in their own folder (explorer.paths)
c.Spawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] = str(ACTIVITY_SECONDS)
c.Spawner.start_timeout = 180  # a whole class starting on a few cores: Python, Jupyter and Voila each time
c.Spawner.http_timeout = 180


def give_the_student_a_dashboard(spawner):
    """Copy the dashboard notebook into the student's home: their server's root is that home, so the contents
    API and the dashboard's kernel (its working folder) reach that student's folder only, never the repository
    or another student's home. Copied at every start, so a class always gets the current dashboard."""
    home = Path(spawner.home_dir)
    target = home / server_config.ServerApp.default_url.removeprefix("/voila/render/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DASHBOARD, target)
    spawner.environment = dict(spawner.environment, AE_STUDENT_ROOT=str(home / "work"))


c.Spawner.pre_spawn_hook = give_the_student_a_dashboard

# ----- a hub restarted during a class -----------------------------------------------------------------------
# Stopping the hub (Ctrl+C, a crash, a restart to change a setting) leaves the students' servers running, so
# their kernels, trained models and pages survive it: the hub stops its proxy, and the pages reconnect once
# `make hub` is back and has routed each server again (tests/test_hub.py restarts a hub under a student).
# A server the hub never comes back for stops by itself: its kernel is culled after 5 minutes with no page,
# then the server after 10 minutes with no kernel (jupyter_server_config.py).
c.JupyterHub.cleanup_servers = False

# ----- idle servers are stopped ------------------------------------------------------------------------------
# A student's kernel is also shut down after 5 idle minutes with its page closed (jupyter_server_config.py);
# the culler then stops the whole server, which frees its memory for the rest of the class.
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={IDLE_SECONDS}",
                f"--cull-every={max(5, min(60, IDLE_SECONDS // 4))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
