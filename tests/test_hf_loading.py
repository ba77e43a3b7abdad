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
