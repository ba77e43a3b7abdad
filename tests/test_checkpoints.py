"""Checkpoints: safetensors weights plus JSON config and history; never pickle."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explorer import checkpoints
from explorer.hooks import capture
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig


def make_model(**options):
    torch.manual_seed(0)
    return TinyTransformer(TransformerConfig(vocab_size=10, d_model=32, **options)).eval()


@pytest.mark.parametrize("options", [{}, dict(pooling="attention", n_classes=3, positional="learned", norm="post")])
def test_round_trip_gives_identical_outputs_and_history(tmp_path, options):
    model = make_model(**options)
    history = [{"step": 1, "loss": 2.3, "accuracy": 0.1, "lr": 1e-3, "elapsed": 0.01}]
    path = checkpoints.save(model, tmp_path / "run", history=history)
    assert path == tmp_path / "run" / "model.safetensors"
    loaded, loaded_history = checkpoints.load(tmp_path / "run")
    assert type(loaded) is TinyTransformer and loaded.config == model.config
    assert [row.to_dict() for row in loaded_history] == history
    x = torch.randint(0, 10, (4, 10))
    loaded.eval()
    with capture(model) as ours, capture(loaded) as theirs:
        assert torch.equal(model(x), loaded(x))
    for name in ours.names():
        assert torch.equal(ours.get(name), theirs.get(name))


def test_seq2seq_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TinySeq2Seq(TransformerConfig(vocab_size=6, d_model=16, n_heads=2)).eval()
    path = checkpoints.save(model, tmp_path / "s2s.safetensors")
    loaded, history = checkpoints.load(path)
    x = torch.randint(0, 6, (2, 5))
    assert history == [] and torch.equal(model(x, model.decoder_inputs(x)), loaded.eval()(x, loaded.decoder_inputs(x)))


def test_the_file_is_plain_safetensors_with_json_metadata(tmp_path):
    from safetensors import safe_open

    path = checkpoints.save(make_model(), tmp_path / "m.safetensors", history=[{"step": 1, "loss": 2.0, "accuracy": 0.1, "lr": 1e-3}])
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        assert "blocks.0.self_attention.q_proj.weight" in handle.keys()
    assert metadata["model"] == "TinyTransformer" and '"d_model": 32' in metadata["config"]
    assert checkpoints.describe(path)["steps"] == 1


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_pickled_file_is_refused(tmp_path, writer):
    model = make_model()
    for name in ("weights.pt", "weights.safetensors"):
        path = tmp_path / name
        if writer == "torch":
            torch.save(model.state_dict(), path)
        else:
            path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
        with pytest.raises(ValueError, match="pickle"):
            checkpoints.load(path)


def test_corrupted_and_foreign_files_are_clear_errors(tmp_path):
    path = checkpoints.save(make_model(), tmp_path / "m.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:200])
    (tmp_path / "noise.safetensors").write_bytes(bytes(range(256)) * 4)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    for name, match in (("cut", "corrupted"), ("noise", "corrupted"), ("foreign", "not an Attention Explorer"),
                        ("missing", "no checkpoint")):
        with pytest.raises(ValueError, match=match):
            checkpoints.load(tmp_path / f"{name}.safetensors")


def test_another_architecture_is_refused_and_the_live_model_is_unchanged(tmp_path):
    path = checkpoints.save(make_model(n_heads=4), tmp_path / "four.safetensors")
    live = make_model(n_heads=2)
    before = {k: v.clone() for k, v in live.state_dict().items()}
    with pytest.raises(ValueError, match="different architecture"):
        checkpoints.load_into(live, path)
    assert all(torch.equal(v, before[k]) for k, v in live.state_dict().items())
    trained = make_model(n_heads=2)
    torch.nn.init.zeros_(trained.head.weight)
    checkpoints.load_into(live, checkpoints.save(trained, tmp_path / "two.safetensors"))
    assert torch.equal(live.head.weight, torch.zeros_like(live.head.weight))


def test_weights_that_do_not_fit_their_config_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    path = checkpoints.save(make_model(), tmp_path / "m.safetensors")
    tensors = load_file(str(path))
    tensors["head.weight"] = torch.zeros(3, 3)
    with open(path, "rb"):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match="do not fit"):
        checkpoints.load(tmp_path / "bad.safetensors")


def test_models_without_a_config_or_unknown_classes_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="Only these models"):
        checkpoints.save(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def test_history_with_numpy_and_torch_numbers_is_saved_as_plain_numbers(tmp_path):
    import numpy as np

    path = checkpoints.save(make_model(), tmp_path / "m.safetensors",
                            history=[{"step": 1, "loss": np.float32(0.5), "accuracy": torch.tensor(0.25)}])
    _, history = checkpoints.load(path)
    assert [(r.step, r.loss, r.accuracy) for r in history] == [(1, 0.5, 0.25)]
    assert all(type(value) in (int, float) for value in history[0].to_dict().values())


def forge(path, model_name, config, tensors, history="[]"):
    from safetensors.torch import save_file

    metadata = {"format": checkpoints.FORMAT, "model": model_name, "config": json.dumps(config), "history": history}
    save_file(tensors, str(path), metadata=metadata)
    return path


FORGED = """
import resource, sys
from explorer import checkpoints
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    checkpoints.load(sys.argv[1])
    print("LOADED")
except ValueError as error:
    print("REFUSED", error)
print("GROWTH_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_forged_200_kB_checkpoint_with_huge_sizes_is_refused_without_allocating(tmp_path):
    config = dict(vocab_size=1_000_000, d_model=4096, n_heads=4, n_layers=2)
    path = forge(tmp_path / "forged.safetensors", "TinyTransformer", config, {"embed.weight": torch.zeros(50_000)})
    assert 150_000 < path.stat().st_size < 250_000
    result = subprocess.run([sys.executable, "-c", FORGED, str(path)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(Path(checkpoints.__file__).parents[1])})
    assert "REFUSED" in result.stdout and "at most" in result.stdout, result.stdout + result.stderr
    growth_kb = int(result.stdout.split("GROWTH_KB")[1])
    assert growth_kb < 500_000  # building that model first would take 33 GB


def test_nan_weights_are_refused_with_a_message(tmp_path):
    model = make_model()
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    path = checkpoints.save(model, tmp_path / "nan.safetensors")
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        checkpoints.load(path)
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        checkpoints.load_into(make_model(), path)


@pytest.mark.parametrize("history", [
    '{"step": 1}', '[1, 2]', '[{"step": "1", "loss": 0.5, "accuracy": 1}]', '[{"step": 1, "loss": "abc", "accuracy": 1}]',
    '[{"step": 1, "loss": true, "accuracy": 1}]', '[{"step": 1, "loss": NaN, "accuracy": 1}]',
    '[{"step": 2, "loss": 1, "accuracy": 1}, {"step": 1, "loss": 1, "accuracy": 1}]'])
def test_histories_of_the_wrong_types_are_refused_with_a_message(tmp_path, history):
    model = make_model()
    tensors = {key: value.contiguous() for key, value in model.state_dict().items()}
    path = forge(tmp_path / "h.safetensors", "TinyTransformer", checkpoints.config_dict(model), tensors, history)
    with pytest.raises(ValueError, match="history"):
        checkpoints.load(path)


def test_a_config_that_is_not_a_dict_is_refused(tmp_path):
    model = make_model()
    tensors = {key: value.contiguous() for key, value in model.state_dict().items()}
    path = forge(tmp_path / "c.safetensors", "TinyTransformer", [1, 2], tensors)
    with pytest.raises(ValueError, match="config"):
        checkpoints.load(path)


def test_the_default_checkpoint_folder_is_ignored_by_git_wherever_it_is_made(tmp_path, monkeypatch):
    from explorer.models.transformer import TinyTransformer, TransformerConfig

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    model = TinyTransformer(TransformerConfig(vocab_size=5, max_len=8, d_model=16, n_heads=2, n_layers=1))
    checkpoints.save(model, "checkpoints/reverse")
    checkpoints.save(model, "mine/run1")  # a folder the user named is theirs: no .gitignore is written there
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert "checkpoints" not in status and "mine/run1/model.safetensors" in status
    assert checkpoints.load("checkpoints/reverse")[0].config == model.config
