"""Hugging Face models are built one at a time, with transformers' process-wide patches intact: a leaked
`tie_weights` patch once left SmolLM2's output layer at zero (every next token equally likely)."""

import threading

import pytest
import torch

from explorer.models import hf, language
from tests.conftest import save_tiny_gpt2


@pytest.fixture(scope="module")
def tied_gpt2(tmp_path_factory):
    """A random GPT-2 whose output layer is tied to its embedding (the file holds the embedding only)."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tied-gpt2"))


def is_tied(model) -> bool:
    net = model.model
    return torch.equal(net.lm_head.weight, net.transformer.wte.weight) and net.lm_head.weight.abs().sum() > 0


def test_a_leaked_tie_weights_patch_is_repaired_before_loading(tied_gpt2):
    from transformers.initialization import no_tie_weights
    from transformers.modeling_utils import PreTrainedModel

    hf.restore()
    first, second = no_tie_weights(), no_tie_weights()
    first.__enter__(), second.__enter__(), first.__exit__(None, None, None), second.__exit__(None, None, None)
    try:
        assert hf._leaked(PreTrainedModel.tie_weights)  # what two interleaved loads leave behind
        model = language.load(tied_gpt2)
        assert is_tied(model)
        assert not hf._leaked(PreTrainedModel.tie_weights)
    finally:
        hf.restore()


def test_loads_in_many_threads_all_come_back_tied(tied_gpt2):
    from transformers.modeling_utils import PreTrainedModel

    models, errors = [], []

    def load():
        try:
            models.append(language.load(tied_gpt2))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(models) == 4
    assert all(is_tied(model) for model in models)
    assert not hf._leaked(PreTrainedModel.tie_weights) and not hf._leaked(PreTrainedModel.init_weights)
    assert hf.restore() == []


def test_first_imports_from_many_threads_all_succeed():
    """In a fresh process (transformers not yet imported), eight threads take names through ``hf.names`` at once."""
    import subprocess
    import sys

    script = """
import threading
from explorer.models import hf
wanted = ["AutoConfig", "AutoModel", "AutoTokenizer", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM",
          "AutoImageProcessor", "PreTrainedModel", "GPT2Config"]
errors, start = [], threading.Barrier(len(wanted))
def take(name):
    start.wait()
    try:
        assert hf.names(name)[0].__name__ == name
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=take, args=(name,)) for name in wanted]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_datasets_built_while_a_worker_imports_transformers_never_see_it_half_made():
    """datasets' pickler reads transformers.PreTrainedTokenizerBase whenever transformers is in sys.modules."""
    import subprocess
    import sys

    script = """
import threading
from explorer.data.sequences import make_task
from explorer.imports import transformers_names
errors = []
def build():
    for _ in range(20):
        try:
            make_task("reverse", n_train=64, n_test=8, seed=0)
        except Exception as error:
            errors.append(repr(error))
builder = threading.Thread(target=build)
builder.start()
transformers_names("AutoModel")
builder.join()
print(errors)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
