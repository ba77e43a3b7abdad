"""Attention of a long text, one layer at a time, without running the model again.

All 30 x 9 maps of SmolLM2 over 2,048 tokens would take 4.5 GB in float32. So for a long text the model runs
once without keeping its weights, and a hook keeps what each attention module was given (the normalised hidden
states, positions and mask: a few MB per layer). A layer's weights ``[heads, T, T]`` are then worked out by
calling that one module again on its own inputs; the last few layers asked for are kept. ``LayerMaps`` answers
the questions the views ask of ``AttentionMaps`` (``head``, ``layer``, labels, meta), and a one-layer
``AttentionMaps`` for exports.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from functools import partial

import torch

from explorer.maps import AttentionMaps, MapsInfo

KEEP_LAYERS = 2  # worked-out layers kept: 2 x 150 MB for SmolLM2 at 2,048 tokens


def capture_hooks(modules) -> tuple[list, list]:
    """Forward pre-hooks that keep each attention module's inputs: ``(hooks, inputs)``, inputs filled by the pass."""
    inputs: list = [None] * len(modules)

    def keep(index, module, args, kwargs):
        inputs[index] = (module, args, dict(kwargs))

    hooks = [module.register_forward_pre_hook(partial(keep, index), with_kwargs=True)
             for index, module in enumerate(modules)]
    return hooks, inputs


class LayerMaps:
    """``AttentionMaps`` of one text whose layers are worked out when first asked for (see the module docstring)."""

    key_tokens = None

    def __init__(self, tokens, inputs: list, n_heads: int, meta: MapsInfo, keep: int = KEEP_LAYERS):
        if not inputs or any(entry is None for entry in inputs):
            raise ValueError("The model's attention inputs were not all captured; the long text cannot be shown.")
        self.tokens = tuple(str(t) for t in tokens)
        self.meta = meta
        self._inputs = inputs
        self._n_heads = n_heads
        self._keep = max(1, int(keep))
        self._layers: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # layers worked out so far, so tests can see a head switch computes nothing

    keys = property(lambda self: self.tokens)
    n_layers = property(lambda self: len(self._inputs))
    n_heads = property(lambda self: self._n_heads)
    check_layer = AttentionMaps.check_layer
    check_head = AttentionMaps.check_head

    def layer(self, layer: int) -> torch.Tensor:
        """All heads of one layer ``[heads, queries, keys]``, from that layer's module and its kept inputs."""
        layer = self.check_layer(layer)
        with self._lock:
            if layer not in self._layers:
                module, args, kwargs = self._inputs[layer]
                with torch.inference_mode():
                    weights = module(*args, **kwargs)[1]
                self._layers[layer] = weights[0].detach().to("cpu", torch.float32)
                self.computed += 1
                while len(self._layers) > self._keep:
                    self._layers.popitem(last=False)
            self._layers.move_to_end(layer)
            return self._layers[layer]

    def head(self, layer: int, head: int) -> torch.Tensor:
        return self.layer(layer)[self.check_head(head)]

    def mean_over_heads(self, layer: int) -> torch.Tensor:
        return self.layer(layer).mean(dim=0)

    def layer_maps(self, layer: int) -> AttentionMaps:
        """One layer as an ordinary ``AttentionMaps`` (``meta.layer_offset`` says which), for exports."""
        layer = self.check_layer(layer)
        return AttentionMaps(tokens=self.tokens, weights=self.layer(layer)[None],
                             meta=replace(self.meta, layer_offset=layer))
