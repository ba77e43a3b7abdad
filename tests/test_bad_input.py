"""The failures of issue 27, one of each kind: sizes are refused before anything is built, nesting and overflow
are refused in words, a refused setting changes nothing, and files in a class stay in the student's folder."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
import zlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from explorer import checkpoints, student_files
from explorer.attention import MultiHeadAttention, valid_head_counts
from explorer.models.vit import valid_patch_sizes


@pytest.mark.parametrize("build", [lambda: MultiHeadAttention(d_model=10**10 + 1, n_heads=2),
                                   lambda: valid_head_counts(10**15), lambda: valid_patch_sizes(10**14)])
def test_huge_widths_are_refused_at_once(build):
    started = time.monotonic()
    with pytest.raises(ValueError, match="width|image size"):
        build()
    assert time.monotonic() - started < 2


def forged(path, model: str, config, history="[]"):
    metadata = {"format": checkpoints.FORMAT, "model": model, "config": config, "history": history}
    save_file({"x": torch.zeros(1)}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("model, config, words", [
    ("TinyTransformer", json.dumps(dict(vocab_size=10, d_model=4, n_heads=1, n_layers=100_000)), "100,000 layers"),
    ("CBAMNet", json.dumps(dict(n_classes=4, width=2, stages=100_000)), "100,000 stages"),
    ("TinyViT", json.dumps(dict(image_size=10**11, patch_size=4)), "image size"),
    ("TinyTransformer", "[" * 5000 + "]" * 5000, "nests"),
    ("TinyTransformer", '{"vocab_size": 10, "dropout": Infinity}', "not JSON with finite numbers"),
])
def test_a_forged_checkpoint_header_is_refused_before_anything_is_built(tmp_path, model, config, words):
    started = time.monotonic()
    with pytest.raises(ValueError, match=words) as refused:
        checkpoints.load(forged(tmp_path / "forged.safetensors", model, config))
    assert time.monotonic() - started < 5
    assert "Recursion" not in str(refused.value)


def forged_state(text: str) -> str:
    return "1." + base64.urlsafe_b64encode(zlib.compress(text.encode())).decode().rstrip("=")


@pytest.mark.parametrize("text, words", [('{"blocked": ' + "[" * 5000 + "]" * 5000 + "}", "nests"),
                                         ('{"temperature": Infinity}', "finite numbers")])
def test_a_link_of_nested_lists_or_infinities_is_a_notice(text, words):
    from explorer.sessions.mechanism import MechanismSession

    session = MechanismSession()
    before = session.settings()
    notices = session.load_state(forged_state(text))
    assert len(notices) == 1 and words in notices[0] and notices[0].endswith("The defaults are shown.")
    assert session.settings() == before


def test_a_refused_setting_changes_nothing_whatever_the_check_raises():
    from explorer.sessions.pretrained import PretrainedSession
    from explorer.sessions.transformer_lab import TransformerLabSession

    lab = TransformerLabSession()
    try:
        before = lab.settings()
        for changes in (dict(width=10**13), dict(lr=10**400), dict(lr=True), dict(preset={"a": 1}), dict(task=["x"]),
                        dict(steps=2.7), dict(typed="\ud800")):
            with pytest.raises(ValueError) as refused:
                lab.update(**changes)
            assert "unhashable" not in str(refused.value) and "Overflow" not in str(refused.value)
            assert lab.settings() == before
        lab.update(width=np.int64(32))  # numpy numbers are numbers
        assert lab.width == 32 and isinstance(lab.width, int)
    finally:
        lab.stop_work()
    from explorer.models.pretrained import load

    session = PretrainedSession(encoder=load())
    try:
        session.wait(120)
        for ablated in ([[float("inf"), 0]], "12", [[True, 0]]):
            with pytest.raises(ValueError, match="ablated head"):
                session.update(ablated=ablated)
            assert session.ablated == []
    finally:
        session.stop_work()


def test_vision_train_refuses_bad_steps_and_is_not_left_training():
    from explorer.sessions.vision import VisionSession

    session = VisionSession(n_train=64, n_test=16)
    try:
        for steps in (-5, 2.7, True):
            with pytest.raises(ValueError, match="number of steps"):
                session.train(steps)
            assert not session.training
        session.train(1)
        assert session.wait(120) and not session.training
    finally:
        session.stop_work()


def test_save_never_overwrites_a_file_it_did_not_write(tmp_path):
    from explorer.models.transformer import TinyTransformer, TransformerConfig

    model = TinyTransformer(TransformerConfig(vocab_size=5, d_model=8, n_heads=2, n_layers=1))
    notes = tmp_path / "notes"
    notes.write_text("my notes")
    with pytest.raises(ValueError, match="not a checkpoint the explorer wrote"):
        checkpoints.save(model, notes)
    assert notes.read_text() == "my notes"
    with pytest.raises(ValueError, match="is a file, not a folder"):
        checkpoints.save(model, notes / "inside")
    with pytest.raises(ValueError, match="255 bytes"):
        checkpoints.save(model, tmp_path / ("n" * 300))
    with pytest.raises(ValueError, match="null character"):
        checkpoints.save(model, str(tmp_path / "a\x00b"))
    saved = checkpoints.save(model, tmp_path / "mine")
    assert checkpoints.save(model, saved) == saved  # its own checkpoint is saved over
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".saving")] == []


def zipped(entries, method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def encrypted(content: bytes) -> bytes:
    """A zip whose members say they are encrypted (the flag in the local and central headers)."""
    data = bytearray(content)
    data[6] |= 1
    data[data.rfind(b"PK\x01\x02") + 8] |= 1
    return bytes(data)


@pytest.mark.parametrize("content, words", [
    (encrypted(zipped([("model.safetensors", b"x" * 10)])), "encrypted"),
    (zipped([("model.safetensors", b"x" * 10)], zipfile.ZIP_BZIP2), "compressed in a way"),
    (zipped([(f"f{i}", b"") for i in range(50)]), "at most 8"),
    (zipped([("model.safetensors", b"x" * 10)])[:-30], "not a zip file"),
])
def test_an_uploaded_zip_is_checked_before_it_is_read(tmp_path, content, words):
    with pytest.raises(ValueError, match=words):
        student_files.unpack("upload.zip", content, [tmp_path / "model.safetensors"])
    assert not (tmp_path / "model.safetensors").exists()


def test_uploaded_text_is_read_without_the_shared_datasets_cache(tmp_path, monkeypatch):
    import datasets

    from explorer.sessions.transformer_lab import TransformerLabSession

    shared = tmp_path / "shared-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", shared)
    monkeypatch.setenv("AE_CLASSROOM", "1")
    monkeypatch.setenv("AE_STUDENT_ROOT", str(tmp_path / "students"))
    session = TransformerLabSession()
    try:
        session.add_text("story.jsonl", b"\n".join(b'{"text": "a line of a story number %d"}' % i for i in range(30)))
        session.add_text("pairs.tsv", b"".join(b"%d apples\t%d\n" % (i, i) for i in range(30)))
        assert session.wait(120) and session.task == "pairs: pairs.tsv"
        with pytest.raises(ValueError, match="nests"):
            session.add_text("deep.jsonl", b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n")
    finally:
        session.stop_work()
    assert not shared.exists() or not any(shared.rglob("*"))
    assert not [p for p in (tmp_path / "students").rglob("*") if "ae-read" in str(p)]
