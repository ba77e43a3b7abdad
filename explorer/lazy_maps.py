"""Attention maps of a long text, worked out from its kept queries and keys only where they are looked at.

All 30 x 9 maps of SmolLM2 over its whole context of 8,192 tokens would take 69 GB in float32; its queries and
keys take 25 MB a layer. ``capture_attention(model, lazy=True)`` keeps those (one ``AttentionCall`` per layer), and
``LazyAttentionMaps`` is an ``AttentionMaps`` over them whose weights are never held whole:

- a block of rows (``rows``), one head pooled into blocks of tokens (``pooled_head``, what a long map's view
  draws) and single weights (``pairs``) are worked out when asked for, ``BLOCK`` rows at a time, so a map of any
  length costs a few MB at once; a causal map's rows are multiplied only with the keys they may see;
- each row's softmax normaliser (log-sum-exp) and entropy, which the head finder needs for every head, come from
  one fused attention call per layer with the keys as its values: from ``a_i = sum_j p_ij k_j`` the entropy is
  ``H_i = -sum_j p_ij log p_ij = lse_i - scale * q_i . a_i``, with no T x T matrix;
- ``head``, ``layer``, ``mean_over_heads`` and ``layer_maps`` work whole maps out (the last heads and layers
  within ``KEEP_BYTES`` are kept, and ``computed`` counts the maps worked out, so a redraw can be seen to cost
  nothing);
- ``weights``, all maps at once, raises a ValueError that says what to use instead, and so do the functions that
  need every weight (``rollout``, ``to_dict``, ``save_npz``).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from dataclasses import replace

import torch

from explorer.maps import AttentionMaps, MapsInfo

BLOCK = 512  # query rows worked out at once
KEEP_BYTES = 600_000_000  # whole heads and layers kept for head() and layer(): two layers at 2,048 tokens
KEEP_POOLED = 32  # pooled head maps kept (at most 1 MB each), so going back to a head costs nothing
# torch's fused CPU attention, which returns each row's log-sum-exp beside its output; the public SDPA returns the
# output only. Where it is missing (another build), or for masked calls, the statistics are worked out in blocks.
FUSED = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


class LazyAttentionMaps(AttentionMaps):
    """``AttentionMaps`` ``[layers, heads, queries, keys]`` of one batch ``item`` of lazily captured attention calls
    (``explorer.capture.AttentionCall`` with queries and keys kept); see the module docstring."""

    def __init__(self, tokens, calls, key_tokens=None, meta: MapsInfo | None = None, item: int = 0):
        calls = tuple(calls)
        if not calls or any(call.query is None or call.key is None for call in calls):
            raise ValueError("Lazy maps need attention calls that kept their queries and keys: capture them with "
                             "capture_attention(model, lazy=True).")
        shapes = {call.shape[1:] for call in calls}
        if len(shapes) > 1:
            raise ValueError(f"The calls have different shapes {sorted(shapes)} (heads, queries, keys): one record "
                             "holds calls of one kind.")
        _, n_queries, n_keys = shapes.pop()
        tokens = tuple(str(t) for t in tokens)
        key_tokens = None if key_tokens is None else tuple(str(t) for t in key_tokens)
        if len(tokens) != n_queries or len(tokens if key_tokens is None else key_tokens) != n_keys:
            raise ValueError(f"The calls have {n_queries} queries and {n_keys} keys, but {len(tokens)} query labels "
                             f"and {len(tokens if key_tokens is None else key_tokens)} key labels were given.")
        if not 0 <= item < max(call.shape[0] for call in calls):
            raise ValueError(f"Batch item {item} does not exist: the batch has {calls[0].shape[0]}.")
        fields = dict(tokens=tokens, key_tokens=key_tokens, meta=meta or MapsInfo(), calls=calls, item=item,
                      _kept=OrderedDict(), _pooled=OrderedDict(), _statistics={}, _lock=threading.Lock(), computed=0)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    __eq__ = object.__eq__  # records over kept tensors compare by identity
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return (f"LazyAttentionMaps({self.n_layers} layers x {self.n_heads} heads over {len(self.tokens)} queries and "
                f"{len(self.keys)} keys, worked out when shown)")

    @property
    def weights(self) -> torch.Tensor:
        size = self.n_layers * self.n_heads * len(self.tokens) * len(self.keys) * 4
        raise ValueError(f"The maps of these {len(self.tokens)} tokens are not kept whole (all {self.n_layers} layers "
                         f"would take {size / 1e9:.1f} GB). Read them a layer or a head at a time (maps.layer(i), "
                         "maps.head(i, h), maps.layer_maps(i)) or a block of rows (maps.rows(i, rows=slice(a, b))).")

    n_layers = property(lambda self: len(self.calls))
    n_heads = property(lambda self: self.calls[0].shape[1])

    # ----- whole maps ---------------------------------------------------------------------------------------------
    def layer(self, layer: int) -> torch.Tensor:
        layer = self.check_layer(layer)
        return self._kept_or(layer, lambda: self.rows(layer))

    def head(self, layer: int, head: int) -> torch.Tensor:
        layer, head = self.check_layer(layer), self.check_head(head)
        with self._lock:
            whole = self._kept.get(layer)
        if whole is not None:
            return whole[head]
        return self._kept_or((layer, head), lambda: self.rows(layer, [head])[0])

    def _kept_or(self, key, compute) -> torch.Tensor:
        """The kept map under ``key`` (a layer, or a ``(layer, head)``), else ``compute()``'s, kept within
        ``KEEP_BYTES`` (oldest first out)."""
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        weights = compute()
        with self._lock:
            self._kept[key] = weights
            object.__setattr__(self, "computed", self.computed + 1)
            while len(self._kept) > 1 and sum(w.numel() * 4 for w in self._kept.values()) > KEEP_BYTES:
                self._kept.popitem(last=False)
        return weights

    def layer_maps(self, layer: int) -> AttentionMaps:
        layer = self.check_layer(layer)
        return AttentionMaps(tokens=self.tokens, key_tokens=self.key_tokens, weights=self.layer(layer)[None],
                             meta=replace(self.meta, layer_offset=layer))

    def with_meta(self, **changes) -> "LazyAttentionMaps":
        return LazyAttentionMaps(self.tokens, self.calls, self.key_tokens, replace(self.meta, **changes), self.item)

    # ----- parts of maps ------------------------------------------------------------------------------------------
    def rows(self, layer: int, heads=None, rows: slice = slice(None)) -> torch.Tensor:
        layer = self.check_layer(layer)
        heads = list(range(self.n_heads)) if heads is None else [self.check_head(h) for h in heads]
        start, stop, _ = rows.indices(len(self.tokens))
        blocks = []
        for first in range(start, max(start, stop), BLOCK):
            block = self._weights(layer, heads, first, min(first + BLOCK, stop))
            blocks.append(torch.nn.functional.pad(block, (0, len(self.keys) - block.shape[-1])))
        return torch.cat(blocks, dim=1) if blocks else torch.zeros(len(heads), 0, len(self.keys))

    def pooled_head(self, layer: int, head: int, cells: int):
        key = (self.check_layer(layer), self.check_head(head), int(cells))
        with self._lock:
            if key in self._pooled:
                self._pooled.move_to_end(key)
                return self._pooled[key]
        pooled = super().pooled_head(layer, head, cells)
        with self._lock:
            self._pooled[key] = pooled
            object.__setattr__(self, "computed", self.computed + 1)
            while len(self._pooled) > KEEP_POOLED:
                self._pooled.popitem(last=False)
        return pooled

    def _head_rows(self, layer: int, head: int, start: int, stop: int) -> torch.Tensor:
        return self._weights(layer, [head], start, stop)[0]

    def pairs(self, layer: int, queries, keys) -> torch.Tensor:
        layer, call = self.check_layer(layer), self.calls[self.check_layer(layer)]
        queries, keys = torch.as_tensor(queries, dtype=torch.long), torch.as_tensor(keys, dtype=torch.long)
        query, key = self._query_key(call)
        group = self.n_heads // key.shape[0]
        scores = call.scale * (query[:, queries].float() * key[:, keys].float().repeat_interleave(group, 0)).sum(-1)
        if call.causal:  # top-left aligned, as torch's is_causal
            scores = scores.masked_fill(keys > queries, -math.inf)
        if call.mask is not None:
            mask = _mask(call, self.item, list(range(self.n_heads)), slice(None), len(self.keys))[:, queries, keys]
            scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask.float()
        return (scores - self.statistics(layer)[0][:, queries]).exp().nan_to_num(0.0)  # [heads, n]

    def row_entropy(self, layer: int) -> torch.Tensor:
        return self.statistics(layer)[1]

    def statistics(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's log-sum-exp of its scaled scores (softmax's normaliser) and its entropy, ``[heads, queries]``
        each, worked out once per layer."""
        layer = self.check_layer(layer)
        with self._lock:
            if layer in self._statistics:
                return self._statistics[layer]
        call = self.calls[layer]
        if FUSED is not None and call.mask is None and (not call.causal or len(self.tokens) == len(self.keys)):
            query, key = self._query_key(call)
            query, key = query.float()[None], key.float().repeat_interleave(self.n_heads // key.shape[0], 0)[None]
            weighted, log_total = FUSED(query, key, key, 0.0, call.causal, scale=call.scale)[:2]
            found = log_total[0], (log_total - call.scale * (query * weighted).sum(-1))[0]
        else:
            found = self._statistics_in_blocks(layer)
        with self._lock:
            self._statistics[layer] = found
        return found

    def _statistics_in_blocks(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        totals, entropies = [], []
        for start in range(0, len(self.tokens), BLOCK):
            scores = self._scores(layer, list(range(self.n_heads)), start, min(start + BLOCK, len(self.tokens)))
            total = scores.logsumexp(dim=-1, keepdim=True)
            weights = (scores - total).exp().nan_to_num(0.0)
            totals.append(total[..., 0])
            entropies.append(-(weights * torch.log(weights.clamp_min(1e-12))).sum(dim=-1))
        return torch.cat(totals, dim=1), torch.cat(entropies, dim=1)

    # ----- the computation ----------------------------------------------------------------------------------------
    def _query_key(self, call):
        """Queries ``[H, Q, d]`` and keys ``[H_kv, K, d]`` of this record's batch item (a batch of 1 broadcasts)."""
        return call.query[min(self.item, len(call.query) - 1)], call.key[min(self.item, len(call.key) - 1)]

    def _key_limit(self, call, stop: int) -> int:
        """How many keys rows up to ``stop`` may weigh: a causal call's row i sees keys 0..i only."""
        return min(stop, len(self.keys)) if call.causal and call.mask is None else len(self.keys)

    def _scores(self, layer: int, heads: list, start: int, stop: int) -> torch.Tensor:
        """Scaled scores of rows ``start:stop`` with the call's masks applied (-inf where a key may not be seen),
        ``[heads, rows, keys it may see]``; grouped-query heads share their key head's keys without copies."""
        call = self.calls[layer]
        query, key = self._query_key(call)
        limit, group = self._key_limit(call, stop), self.n_heads // key.shape[0]
        scores = torch.empty(len(heads), stop - start, limit)
        for kv in sorted({h // group for h in heads}):
            chosen = [i for i, h in enumerate(heads) if h // group == kv]
            rows = query[[heads[i] for i in chosen], start:stop].float() * call.scale  # [n, rows, d]
            scores[chosen] = rows @ key[kv, :limit].float().T  # [n, rows, keys]
        if call.causal and start < limit:
            scores[..., start:].masked_fill_(_above_diagonal(stop - start, limit - start), -math.inf)
        if call.mask is not None:
            mask = _mask(call, self.item, heads, slice(start, stop), limit)
            scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask.float()
        return scores

    def _weights(self, layer: int, heads: list, start: int, stop: int) -> torch.Tensor:
        """Weights of rows ``start:stop``, ``[heads, rows, keys they may see]`` (a row with no key gets zeros)."""
        weights = torch.softmax(self._scores(layer, heads, start, stop), dim=-1)
        return weights if self.calls[layer].mask is None else weights.nan_to_num(0.0)  # causal rows see key 0


@functools.lru_cache(maxsize=8)
def _above_diagonal(rows: int, keys: int) -> torch.Tensor:
    """``[rows, keys]``: True above the diagonal, the keys a causal row may not see."""
    return torch.ones(rows, keys, dtype=torch.bool).triu(1)


def _mask(call, item: int, heads: list, rows: slice, limit: int) -> torch.Tensor:
    """The call's mask for ``heads``, ``rows`` and the first ``limit`` keys of batch ``item``."""
    mask = call.mask
    while mask.dim() < 4:
        mask = mask[None]
    mask = mask[min(item, mask.shape[0] - 1)]  # [H or 1, Q or 1, K]
    mask = mask.expand(call.shape[1], call.shape[2], call.shape[3])
    return mask[heads, rows, :limit]
