"""environment.yml and pyproject.toml name the same dependencies; the set-up files say what the README says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirement_names(requirements) -> dict[str, str]:
    """Map each requirement's normalised name to its full spec."""
    out = {}
    for requirement in requirements:
        name = re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]
        out[name.lower().replace("_", "-")] = requirement.strip().replace(" ", "")
    return out


def environment_pip_list() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    return [line.strip()[2:] for line in lines[start + 1:] if line.strip().startswith("- ") and line.strip() != "- -e ."]


def test_environment_yml_and_pyproject_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = requirement_names(project["dependencies"] + extras["hub"] + extras["lens"] + extras["test"])
    in_environment = requirement_names(environment_pip_list())
    assert declared == in_environment


def test_torch_is_pinned_to_the_local_cpu_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert not any(dep.startswith("torchvision") for dep in project["dependencies"])


def test_readme_gives_the_two_commands_first():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "make dashboard" in first_screen and "make test" in first_screen


def test_ci_requires_the_browser_and_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "REQUIRE_BROWSER=1" in ci and "make test" in ci and "chromium" in ci


def test_the_hub_proxy_is_installed_by_npm_ci_where_it_is_needed():
    """JupyterHub's proxy comes from package-lock.json, installed by `npm ci` in CI and before `make test`/`make hub`."""
    import json

    lock = json.loads((ROOT / "package-lock.json").read_text())
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
    assert lock["packages"]["node_modules/configurable-http-proxy"]["version"] == wanted
    assert "npm ci" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "npm ci" in makefile
    for target in ("test", "hub"):
        line = next(line for line in makefile.splitlines() if line.startswith(f"{target}:"))
        assert "node_modules/.package-lock.json" in line, f"make {target} must install the proxy first"
