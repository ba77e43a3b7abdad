"""The whole suite runs with the widget thread check on: a widget made outside the main thread is an error."""

import contextlib
import os

os.environ.setdefault("AE_DEBUG_THREADS", "1")

from explorer.widgets.thread_check import check_widget_threads  # noqa: E402

check_widget_threads(os.environ["AE_DEBUG_THREADS"] == "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fresh_cache(tmp_path_factory):
    """One new ``AE_CACHE`` folder for the whole run, shared by every packaged model: with a folder each, the model
    loaded last would point ``AE_CACHE`` away from the others' conversions, whatever order the tests run in."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AE_CACHE", str(tmp_path_factory.mktemp("ae-cache")))
        yield


@pytest.fixture(scope="session")
def smollm(fresh_cache):
    """The packaged SmolLM2, converted once into a fresh cache for the whole run."""
    from explorer.models import language

    return language.load()


@pytest.fixture(scope="session")
def whisper(fresh_cache):
    """The packaged Whisper base, converted once into a fresh cache for the whole run."""
    from explorer.models import speech

    return speech.load_speech()


def save_tiny_gpt2(folder, n_layer: int = 2, n_positions: int = 64):
    """A seeded random GPT-2 of width 32 (4 heads) saved with the packaged MiniLM tokenizer into ``folder``."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from explorer.models import pretrained

    tokenizer = AutoTokenizer.from_pretrained(pretrained.default_model_dir())
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=n_positions, n_embd=32, n_layer=n_layer, n_head=4)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def eager_attention(model):
    """A Hugging Face model in eager attention inside the block (the explorer loads SDPA), for references from
    ``output_attentions``; put back in the attention it had after."""
    kept = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(kept)


def eager_attentions(model, ids):
    """The reference maps of a Hugging Face model: its own ``output_attentions`` in eager attention, ``[L, H, T, T]``
    of one sequence of token ``ids``."""
    import torch

    with eager_attention(model), torch.inference_mode():
        return torch.stack(model(torch.tensor([list(ids)]), output_attentions=True).attentions)[:, 0]
