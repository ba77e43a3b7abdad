"""How well cross-attention found the alignment: pure functions over weights and known alignments.

The alignment score of a head is the mean cross-attention mass that each target character puts on the source
positions that hold its field (``explorer.data.translation``): 1 when every row looks only there, the aligned
share ``|aligned| / keys`` when it looks everywhere alike. Target characters with no aligned position (the
dashes of a date, ``<end>``) do not count.
"""

from __future__ import annotations

import torch


def alignment_mask(alignment, n_queries: int, n_keys: int) -> torch.Tensor:
    """Boolean ``[Q, K]``: row ``i`` is True at the source positions of target character ``i``."""
    mask = torch.zeros(n_queries, n_keys, dtype=torch.bool)
    for i, positions in enumerate(list(alignment)[:n_queries]):
        for j in positions:
            if not 0 <= j < n_keys:
                raise ValueError(f"Target position {i} aligns with source position {j}, but there are {n_keys} keys.")
            mask[i, j] = True
    return mask


def alignment_masks(alignments, n_queries: int, n_keys: int) -> torch.Tensor:
    """``alignment_mask`` of every example, ``[B, Q, K]``."""
    return torch.stack([alignment_mask(a, n_queries, n_keys) for a in alignments])


def alignment_score(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean attention mass on the aligned keys, per head: ``weights`` ``[..., Q, K]`` (``[L, H, Q, K]`` or a batch
    ``[B, L, H, Q, K]``) and ``mask`` ``[Q, K]`` or ``[B, Q, K]``; the result has the shape of ``weights``
    without its batch, queries and keys (``[L, H]``). Rows of ``mask`` with nothing aligned are left out."""
    weights, mask = torch.as_tensor(weights, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape[-2:] != weights.shape[-2:]:
        raise ValueError(f"The alignment covers {tuple(mask.shape[-2:])} (targets x sources) but the weights "
                         f"{tuple(weights.shape[-2:])}.")
    rows = mask.any(dim=-1)  # [B?, Q]
    if not rows.any():
        raise ValueError("No target character has a known alignment, so there is nothing to score.")
    batched = mask.dim() == 3
    if batched:  # [B, Q, K] -> [B, 1, ..., 1, Q, K] to meet weights [B, L, H, Q, K]
        shape = (mask.shape[0],) + (1,) * (weights.dim() - 3) + mask.shape[1:]
        mask, rows = mask.reshape(shape), rows.reshape(shape[:-1])
    mass = (weights * mask).sum(dim=-1)  # [..., Q]
    total = (mass * rows).sum(dim=-1)  # [B?, L, H]
    if batched:
        return total.sum(dim=0) / rows.sum()
    return total / rows.sum()


def best_head(scores: torch.Tensor) -> tuple[int, int]:
    """``(layer, head)`` with the highest score in ``[L, H]``."""
    scores = torch.as_tensor(scores)
    index = int(scores.flatten().argmax())
    return index // scores.shape[1], index % scores.shape[1]
