"""The layering of ARCHITECTURE.md, checked on the imports: models never draw, views never hold models."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "explorer"
CORE = ["attention.py", "hooks.py", "capture.py", "maps.py", "training.py", "lab.py", "checkpoints.py", "threads.py",
        "links.py", "models", "data"]
TRAINING = ("explorer.training", "explorer.lab")  # between the models and the sessions


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


@pytest.mark.parametrize("path", files(*CORE), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_the_lab_sits_between_the_models_and_the_sessions(path):
    """Models and data never train; the trainer never runs a lab; nothing below the sessions imports them."""
    modules = imported_modules(path)
    bad = {m for m in modules if m.startswith("explorer.sessions")}
    if path.parent.name in ("models", "data"):
        bad |= {m for m in modules if m.startswith(TRAINING)}
    if path.name == "training.py":
        bad |= {m for m in modules if m.startswith("explorer.lab")}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", files("widgets", "views"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_panels_draw_records_and_never_reach_a_trainer(path):
    """Panels read the Lab's record and the session's settings: no trainer, no lab, no training group."""
    bad = {m for m in imported_modules(path) if m.startswith(TRAINING)}
    assert not bad, f"{path.name} imports {bad}"


# Where reaching into another object's private members is known and owned by other work, with the reason.
PRIVATE_EXCEPTIONS: dict[str, str] = {}  # a file allowed one private member while a rewrite is pending


def private_reaches(path: Path) -> list[tuple[str, str]]:
    """``(owner, name)`` of every ``owner._name`` in ``path`` where ``owner`` is not ``self``, ``cls`` or ``super()``, nor a
    panel's own session or a panel (``s``, ``session``, ``panel``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            inherited = isinstance(owner, ast.Call) and ast.unparse(owner.func) == "super"  # a parent's own member
            if not inherited and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls", "s", "session", "panel")):
                found.append((ast.unparse(owner), node.attr))
    return found


@pytest.mark.parametrize("path", [p for p in PACKAGE.rglob("*.py") if p.name not in ("training.py", "lab.py")],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_private_members_stay_in_their_module(path):
    """Nothing outside training.py and the Lab touches a trainer's underscore members; no session or panel a model's."""
    name = path.relative_to(PACKAGE).as_posix()
    reaches = private_reaches(path)
    assert not [r for r in reaches if "trainer" in r[0]], f"{name} reaches into a trainer: {reaches}"
    if path.parent.name in ("sessions", "widgets", "views") or path.name == "app.py":
        found = {attr for _, attr in reaches}
        allowed = {PRIVATE_EXCEPTIONS[name]} if name in PRIVATE_EXCEPTIONS else set()
        assert found <= allowed, f"{name} reaches into {reaches}"
        assert allowed <= found, f"{name} no longer needs its exception {allowed}: remove it from the test"


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

