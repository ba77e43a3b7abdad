"""One door for ``explorer.show(obj, ...)``: the reader for whatever ``obj`` is.

- an ``AttentionMaps`` record, the tuple ``output_attentions`` returns, a ``[layers, heads, queries, keys]`` tensor,
  or a model output holding attentions: ``WeightsReader`` (``explorer.models.shown``);
- a TransformerLens model or ``ActivationCache``: ``explorer.models.lens``;
- a transformers model (with ``tokenizer=`` or ``processor=``): ``explorer.models.hf_reader``;
- any other ``nn.Module``: ``explorer.models.captured``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from explorer.arguments import say_name, shown
from explorer.maps import AttentionMaps
from explorer.models.shown import Reading, bertviz_reading, weights_reading

OPTIONS = ("tokenizer", "processor", "tokens", "key_tokens", "target")
KINDS = ("a transformers model (with tokenizer= or processor=)", "any torch nn.Module", "a TransformerLens model or "
         "ActivationCache", "the tuple output_attentions returns (with tokens=)", "an AttentionMaps record")


class WeightsReader:
    """Weights handed over as they are: nothing to run, so no text, ablation or generation."""

    accepts_text = can_ablate = can_generate = False
    name = "weights"

    def __init__(self, make: Callable[[int], Reading]):
        self.make = make
        self.first = make(0)  # checks the weights now, so a bad one is refused at once

    def read(self, inputs=None, item: int = 0, ablate=(), watch=None) -> Reading:
        """The handed-over weights of batch ``item`` (nothing runs, so ``watch`` hears nothing)."""
        if ablate:
            raise ValueError("These maps were handed over as weights: there is no model to run with a head ablated.")
        return self.first if item == 0 else self.make(item)


def reader_for(obj, **options):
    """The reader of ``obj`` (see the module docstring); a TypeError names what is accepted."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"There is no option called {say_name(unknown[0])} in show(); its options are {', '.join(OPTIONS)}, and layer, "
                        "head, view, part, token and item to choose what is shown first.")
    tokens, key_tokens = options.get("tokens"), options.get("key_tokens")
    from explorer.models.lens import LensReader, cache_reading, is_lens

    if is_lens(obj):
        _only(options, ("tokens",), "A TransformerLens model or cache")
        if hasattr(obj, "run_with_cache"):
            return LensReader(obj, tokens)
        return WeightsReader(lambda item: cache_reading(obj, tokens, item))
    if _is_weights(obj):
        _only(options, ("tokens", "key_tokens"), "Weights")
        return WeightsReader(lambda item: weights_reading(obj, tokens, key_tokens, item))
    from explorer.models.hf_reader import TransformersReader, is_transformers_model

    if is_transformers_model(obj):
        return TransformersReader(obj, **options)
    if isinstance(obj, nn.Module):
        _only(options, ("tokens", "key_tokens"), f"A {type(obj).__name__} (not a transformers model)")
        from explorer.models.captured import ModuleReader

        return ModuleReader(obj, tokens, key_tokens)
    raise TypeError(f"The object given to show() is {shown(obj)}, which it cannot read. It takes {'; '.join(KINDS)}.")


def bertviz_reader(**arguments) -> WeightsReader:
    """bertviz's arguments (``head_view``, ``model_view``) as a reader of their weights."""
    return WeightsReader(lambda item: bertviz_reading(**arguments, item=item))


def _is_weights(obj) -> bool:
    if isinstance(obj, (AttentionMaps, torch.Tensor)):
        return True
    if isinstance(obj, (tuple, list)):
        return True
    return not isinstance(obj, nn.Module) and (hasattr(obj, "attentions") or hasattr(obj, "cross_attentions"))


def _only(options: dict, allowed, what: str) -> None:
    extra = sorted(name for name, value in options.items() if value is not None and name not in allowed)
    if extra:
        raise TypeError(f"{what} takes {' and '.join(f'{a}=' for a in allowed)} only, not {extra[0]}= "
                        "(tokenizers and processors go with transformers models).")
