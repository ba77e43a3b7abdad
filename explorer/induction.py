"""Watching an induction head form: the induction task's probe.

While a model trains on ``make_task("induction")``, ``induction_probe(data)`` records at every snapshot the
maps of one test row (as every token probe does) and, over the first ``n_examples`` test rows, an
``InductionScores``: the loss on the first and on the second copy, and each head's induction score (the weight
from a second-copy position to the token after its earlier occurrence, ``explorer.heads.copy_score``) and
previous-token score. One forward pass of those rows, about as long as a training step.

Olsson et al. (2022) saw the second-copy loss sit on a plateau and then fall abruptly as an induction head
forms; ``explorer.phase`` finds that step in the curves these records make.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from explorer import heads
from explorer.data.induction import is_induction  # noqa: F401  (training asks it here, beside the probe)
from explorer.arguments import whole
from explorer.hooks import capture
from explorer.maps import AttentionMaps, InductionScores, Snapshot
from explorer.models.transformer import token_probe


def induction_scores(model: nn.Module, batch: dict) -> InductionScores:
    """The probe's numbers on ``batch`` (the induction task's columns as tensors), in one forward pass."""
    with capture(model) as captured:
        logits = model(batch["input_ids"])  # [B, T, vocab]
    weights = model.attention(captured)["self"]  # [B, layers, heads, T, T]
    losses = nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"].clamp_min(0), reduction="none")
    positions = [str(i) for i in range(weights.shape[-1])]
    induction, previous = [], []
    for row, second_copy, (first, second) in zip(weights, batch["second_copy"], batch["starts"].tolist()):
        maps = AttentionMaps(tokens=positions, weights=row)
        queries = second_copy.nonzero()[:, 0]
        induction.append(heads.copy_score(maps, queries, queries - (second - first) + 1))
        previous.append(heads.previous_token_score(maps))
    as_rows = lambda scores: tuple(tuple(row) for row in torch.stack(scores).mean(dim=0).tolist())  # noqa: E731
    return InductionScores(first_copy_loss=float(losses[batch["first_copy"]].mean()),
                           second_copy_loss=float(losses[batch["second_copy"]].mean()),
                           induction=as_rows(induction), previous_token=as_rows(previous))


def induction_probe(data, index: int = 0, n_examples: int = 64) -> Callable[[nn.Module], Snapshot]:
    """The maps, prediction and target of test row ``index``, with ``InductionScores`` over ``n_examples`` rows."""
    shown = token_probe(data, index)
    split = data["test"]
    n_examples = whole(n_examples, "number of examples the induction probe reads", 1)
    columns = ["input_ids", "labels", "starts", "first_copy", "second_copy"]
    batch = split.select(range(min(n_examples, len(split)))).with_format("torch", columns=columns)[:]

    def probe(model: nn.Module) -> Snapshot:
        return dataclasses.replace(shown(model), induction=induction_scores(model, batch))

    return probe
