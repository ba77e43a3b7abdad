"""Hook points: where a model's attention is read, in the manner of TransformerLens.

A model calls its hook points on the tensors worth reading (``pattern = self.hook_pattern(pattern)``); a hook
point is the identity. ``capture(model)`` taps every hook point for one run and always removes its taps:

    with capture(model) as captured:
        logits = model(input_ids)
    captured.stack("blocks")          # [B, layers, heads, Q, K], one entry per block in order

So the maps drawn are the very tensors the forward pass computed, and ``forward`` returns one thing. A module
whose attention runs in torch's fused ``scaled_dot_product_attention`` (``MultiHeadAttention`` with a dot-product
score) computes no pattern tensor; its call is read by ``explorer.capture.capture_attention`` and kept under the
same name, ``<module>.hook_pattern``.
"""

from __future__ import annotations

import contextlib
import fnmatch
from typing import Iterator

import torch
from torch import nn


class HookPoint(nn.Module):
    """The identity, as a module: a named place in the model where ``capture`` can read (or edit) a tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Capture:
    """What one run through a model's hook points gave, by the hook point's name (``blocks.0.attention.hook_pattern``)."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}

    def keep(self, name: str, tensor: torch.Tensor) -> None:
        self.tensors[name] = tensor.detach()

    def names(self, pattern: str = "*") -> list[str]:
        """The captured names matching a shell-style ``pattern``, in the order the model ran them."""
        return [name for name in self.tensors if fnmatch.fnmatchcase(name, pattern)]

    def get(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise KeyError(f"Nothing was captured at '{name}'; captured: {', '.join(self.tensors) or 'nothing'}.")
        return self.tensors[name]

    def stack(self, pattern: str) -> torch.Tensor:
        """The tensors whose names match ``pattern``, stacked on a new axis 1 (``[B, layers, ...]``)."""
        names = self.names(pattern)
        if not names:
            raise KeyError(f"No hook point matches '{pattern}'; captured: {', '.join(self.tensors) or 'nothing'}.")
        return torch.stack([self.tensors[name] for name in names], dim=1)


@contextlib.contextmanager
def capture(model: nn.Module, pattern: str = "*") -> Iterator[Capture]:
    """Tap every hook point of ``model`` whose name matches ``pattern`` for the runs inside the ``with`` block."""
    from explorer.capture import capture_attention

    captured = Capture()
    handles = []

    def tap(name: str):
        def hook(module, inputs, output):
            captured.keep(name, output)
        return hook

    def fused(call) -> None:  # an SDPA call of a module that has a pattern hook point
        name = f"{call.name}.hook_pattern" if call.name else "hook_pattern"
        if name in points and call.weights is not None:
            captured.keep(name, call.weights)

    points = {name for name, module in model.named_modules()
              if isinstance(module, HookPoint) and fnmatch.fnmatchcase(name, pattern)}
    try:
        for name, module in model.named_modules():
            if name in points:
                handles.append(module.register_forward_hook(tap(name)))
        with capture_attention(model) as calls:
            calls.listeners.append(fused)
            yield captured
    finally:
        for handle in handles:
            handle.remove()
