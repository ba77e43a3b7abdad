"""Checks a Trainer makes before it trains: the model reads the data's batches, and its training fits the budget.

Kept apart from ``training.py`` so that module reads in one sitting; nothing here trains or keeps state.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from explorer.arguments import shown, whole
from explorer.limits import Size, check_size
from explorer.models.cbam import CBAMNet, cbam_size
from explorer.models.transformer import TinySeq2Seq, TransformerConfig, model_inputs
from explorer.models.vit import ViTConfig

MAX_STEPS = 10**9  # steps one call trains: weeks of CPU already


def check_steps(steps) -> int:
    """A positive whole number of steps, or a ValueError that says so."""
    return whole(steps, "number of steps", 1, MAX_STEPS)


def training_size(model: nn.Module, batch: int, inputs: torch.Tensor) -> Size | None:
    """What training ``model`` on batches of ``batch`` inputs like ``inputs`` costs, worked out from its config (None
    for a model the explorer does not know)."""
    config = getattr(model, "config", None)
    if isinstance(config, TransformerConfig):
        return config.size(batch, inputs.shape[1] + 1, seq2seq=isinstance(model, TinySeq2Seq))
    if isinstance(config, ViTConfig):
        return config.size(batch)
    if isinstance(model, CBAMNet):
        return cbam_size(model.config, batch, inputs.shape[-2], inputs.shape[-1])
    return None


def check_training_size(model: nn.Module, batch: int, inputs: torch.Tensor) -> None:
    """A ValueError with the numbers when training ``model`` on this batch would not fit the machine's budget."""
    size = training_size(model, batch, inputs)
    if size is not None:
        check_size(f"Training this {type(model).__name__}", size, f"for a batch of {batch:,}")


def check_trainable(model, probe: Callable | None, inputs: torch.Tensor, labels: torch.Tensor, kind: str) -> None:
    """``model`` is a torch model that reads ``inputs`` (two examples) into logits that fit ``labels``: one forward
    pass in eval mode (no weight or statistic changes), so a model that cannot read the data is refused here, in
    words, rather than by a torch error in the middle of training."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"A Trainer trains a torch model (an nn.Module), got {shown(model)}.")
    if probe is not None and not callable(probe):
        raise TypeError(f"The probe must be a function of the model, got {shown(probe)}.")
    name, was_training = type(model).__name__, model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(*model_inputs(model, inputs, labels))
        wanted = tuple(labels.shape) if labels.dim() == 2 else tuple(labels.shape[:1])
        if not torch.is_tensor(logits) or logits.dim() != len(wanted) + 1 or tuple(logits.shape[:-1]) != wanted:
            raise RuntimeError
    except ValueError as error:
        raise ValueError(f"This {name} cannot train on this data: {error}") from None
    except (RuntimeError, IndexError, TypeError):
        raise ValueError(f"This {name} cannot train on this data: its batches of {kind} (shape {list(inputs.shape)}) "
                         "do not fit the model.") from None
    finally:
        model.train(was_training)
