"""The layering of ARCHITECTURE.md, checked on the imports: models never draw, views never hold models."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "explorer"
CORE = ["attention.py", "hooks.py", "capture.py", "maps.py", "training.py", "checkpoints.py", "threads.py", "links.py", "models",
        "data"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def files(*parts: str) -> list[Path]:
    out = []
    for part in parts:
        target = PACKAGE / part
        out.extend(sorted(target.glob("*.py")) if target.is_dir() else [target])
    return out


@pytest.mark.parametrize("path", files(*CORE), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_core_never_imports_widgets_or_plotting(path):
    bad = {m for m in imported_modules(path) if m.split(".")[0] in ("ipywidgets", "plotly", "anywidget")
           or m.startswith(("explorer.widgets", "explorer.views", "explorer.app"))}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", files("views"), ids=lambda p: p.name)
def test_views_never_import_torch_modules_or_widgets(path):
    bad = {m for m in imported_modules(path) if m.split(".")[0] in ("ipywidgets", "anywidget", "transformers")
           or m.startswith(("torch.nn", "explorer.widgets", "explorer.models", "explorer.training", "explorer.app"))}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", files("sessions"), ids=lambda p: p.name)
def test_sessions_import_no_widgets_and_draw_nothing(path):
    bad = {m for m in imported_modules(path) if m.split(".")[0] in ("ipywidgets", "anywidget", "plotly")
           or m.startswith(("explorer.widgets", "explorer.views", "explorer.app"))}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", files("widgets"), ids=lambda p: p.name)
def test_widgets_do_not_import_the_app_or_start_threads(path):
    """Panels hand long work to their session's worker; the one thread check is the exception."""
    modules = imported_modules(path)
    assert "explorer.app" not in modules
    assert "threading" not in modules or path.name == "thread_check.py", f"{path.name} imports threading"


def test_no_module_is_over_400_lines():
    long = {p.relative_to(PACKAGE).as_posix(): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_no_function_is_over_50_lines_without_a_reason_beside_it():
    """A longer function says why on the line of its ``def`` (``# long: ...``)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                if "# long:" not in lines[node.lineno - 1]:
                    long.append(f"{path.relative_to(PACKAGE).as_posix()}:{node.name}")
    assert not long, f"functions over 50 lines with no reason given: {long}"

