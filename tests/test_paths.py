"""Classroom mode confines the paths a student types to their own folder; a single user keeps free paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer import paths
from explorer.sessions.transformer_lab import TransformerLabSession


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CLASSROOM, "1")
    monkeypatch.setenv(paths.STUDENT_ROOT, str(tmp_path / "students"))
    monkeypatch.setenv(paths.MODEL_FOLDERS, str(tmp_path / "teacher"))
    (tmp_path / "teacher" / "bert-tiny").mkdir(parents=True)
    return tmp_path


def test_a_name_inside_the_session_folder_is_allowed(classroom):
    folder = paths.confined("checkpoints/reverse")
    assert folder == paths.session_folder() / "checkpoints" / "reverse"
    assert str(paths.session_folder()).startswith(str((classroom / "students").resolve()))
    assert paths.session_folder().name == f"session-{os.getpid()}"


@pytest.mark.parametrize("typed", ["../other", "checkpoints/../../x", "/etc", "/tmp/model.safetensors", "~/x", ""])
def test_parent_absolute_and_home_paths_are_refused(classroom, typed):
    with pytest.raises(ValueError, match="inside your own folder"):
        paths.confined(typed)


def test_a_symlink_out_of_the_session_folder_is_refused(classroom):
    outside = classroom / "outside"
    outside.mkdir()
    (paths.session_folder() / "escape").symlink_to(outside)
    with pytest.raises(ValueError, match="leads outside"):
        paths.confined("escape/model.safetensors")


def test_model_folders_come_only_from_the_teachers_list(classroom):
    assert paths.model_source(str(classroom / "teacher" / "bert-tiny")) == str((classroom / "teacher" / "bert-tiny").resolve())
    for typed in (str(classroom / "students"), "/usr/share", str(classroom / "teacher" / ".." / "outside"), "./models"):
        with pytest.raises(ValueError, match="teacher listed"):
            paths.model_source(typed)
    assert paths.model_source("prajjwal1/bert-tiny") == "prajjwal1/bert-tiny"  # a name from the cache, not a path


def test_a_single_user_keeps_free_paths(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CLASSROOM, raising=False)
    assert paths.confined(str(tmp_path / "x")) == tmp_path / "x"
    assert paths.confined("../x") == Path("../x")
    assert paths.model_source("/usr/share") == "/usr/share"


def test_the_lab_saves_into_the_session_folder_and_refuses_a_path_out(classroom):
    session = TransformerLabSession()
    try:
        session.update(path="/tmp/overwrite-me")
        with pytest.raises(ValueError, match="inside your own folder"):
            session.save()
        assert not Path("/tmp/overwrite-me/model.safetensors").exists()
        session.update(path="mine")
        session.save()
        assert (paths.session_folder() / "mine" / "model.safetensors").is_file()
    finally:
        session.stop_work()


def test_serve_turns_classroom_mode_on_for_a_class():
    from explorer.cli import serve_env

    assert serve_env(20, base={})["AE_CLASSROOM"] == "1"
    assert serve_env(1, "0.0.0.0", base={})["AE_CLASSROOM"] == "1"
    assert "AE_CLASSROOM" not in serve_env(1, base={})


def test_the_language_tab_loads_model_folders_only_from_the_teachers_list(classroom):
    from explorer.sessions.language import LanguageSession

    from types import SimpleNamespace

    loaded = SimpleNamespace(name="a loaded model", n_layers=2, n_heads=4, stop=lambda: None)  # refused before a load
    session = LanguageSession(language_model=loaded)
    try:
        session.update(model="/usr/share")
        assert session.model == "" and session.status_kind == "error"
        assert "teacher listed" in session.status and session.language_model is loaded
    finally:
        session.stop_work()


def test_the_vision_tab_loads_vit_folders_only_from_the_teachers_list(classroom):
    from explorer.sessions.vision_pretrained import PretrainedViTSection

    section = PretrainedViTSection()
    try:
        section.vit_folder = "/usr/share"
        with pytest.raises(ValueError, match="teacher listed"):
            section.load_pretrained()
    finally:
        section.stop_work()
