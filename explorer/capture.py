"""Attention read from any PyTorch model at the attention call itself: no eager mode, nothing patched.

Modern models compute attention with ``torch.nn.functional.scaled_dot_product_attention`` (SDPA), which never
returns its weights, or with ``nn.MultiheadAttention``. While ``capture_attention(model)`` is active, a
``TorchFunctionMode`` sees every such call made on this thread. For SDPA it works the weights out from that
call's own arguments,

    weights = softmax(q kᵀ · scale + mask)        # [batch, heads, queries, keys]

with the call's boolean or float ``attn_mask``, ``is_causal``, ``scale`` and grouped-query heads, and returns the
call's own result. ``nn.MultiheadAttention`` reaches the mode as ``F.multi_head_attention_forward``, which is
asked for its per-head weights. Each call is named by the path of the module that made it:

    with capture_attention(model) as captured:
        model(**inputs)
    captured.names            # ["encoder.layer.0.attention.self", ...], in call order
    captured.layer(0)         # AttentionMaps [1, heads, queries, keys] of call 0 (batch item 0)
    captured.head(0, 3)       # [queries, keys]

With ``lazy=True`` a call keeps its queries and keys instead of a T x T map per head, and a map is worked out
when it is asked for: a long text's 30 layers of maps would not fit in memory, its queries and keys do.
Weights are float32 whatever the model's dtype, and no autograd graph is kept. In train mode with dropout,
SDPA's weights are those before dropout (its random mask is not returned); ``nn.MultiheadAttention``'s are the
ones it returns, after dropout.
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import math
import threading
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from explorer.arguments import flag, index, items, shown, text, whole
from explorer.limits import amount
from explorer.maps import AttentionMaps, MapsInfo

SDPA = F.scaled_dot_product_attention
MHA = F.multi_head_attention_forward
MHA_SIGNATURE = inspect.signature(MHA)
LOOKED_FOR = "torch.nn.functional.scaled_dot_product_attention or nn.MultiheadAttention"
MAX_KEPT_BYTES = 2_000_000_000  # eager maps kept by one capture; past this, lazy=True keeps queries and keys
ROW_BLOCK = 512  # queries worked out at once: a block's scores stay a few MB however long the text is


@dataclass
class AttentionCall:
    """One attention call: who made it and what its weights are made of (see the module docstring)."""

    name: str  # the path of the module that made the call ("" for the model itself)
    shape: tuple[int, int, int, int]  # [batch, heads, queries, keys] of its weights
    weights: torch.Tensor | None = None  # [B, H, Q, K] float32, kept when not lazy
    query: torch.Tensor | None = None  # [B, H, Q, d], kept when lazy
    key: torch.Tensor | None = None  # [B, H_kv, K, d], kept when lazy
    mask: torch.Tensor | None = None  # boolean (True: may attend) or float (added), broadcast to [B, H, Q, K]
    causal: bool = False
    scale: float = 1.0

    def rows(self, item: int = 0, heads=None, rows: slice = slice(None)) -> torch.Tensor:
        """The weights of batch ``item`` for ``heads`` (all when None) and a block of query ``rows``: [h, q, K]."""
        group = self.shape[1] // (self.shape[1] if self.key is None else self.key.shape[1])  # query heads per key head
        # every head: slices, which are views; chosen heads (or keys shared by several heads) are gathered
        chosen = slice(None) if heads is None else list(heads)
        if self.weights is not None:
            return self.weights[item, chosen, rows]
        start, stop, _ = rows.indices(self.shape[2])
        shared = chosen if group == 1 else [h // group for h in (range(self.shape[1]) if heads is None else heads)]
        # SDPA broadcasts a batch of 1 (learned queries, say) against the other's batch
        query = self.query[min(item, len(self.query) - 1), chosen, start:stop]  # [h, q, d]
        key = self.key[min(item, len(self.key) - 1), shared]  # [h, K, d]
        mask = None if self.mask is None else _broadcast_mask(self.mask, self.shape)[item, chosen, start:stop]
        return attention_weights(query, key, mask, self.causal, self.scale, first_row=start)


def attention_weights(query, key, mask=None, causal=False, scale=None, first_row: int = 0) -> torch.Tensor:
    """softmax(q kᵀ · scale + mask) in float32, ``[..., Q, K]``, as SDPA weighs its values.

    ``first_row`` is the position of the first query when only a block of rows is asked for (the causal mask
    depends on it). A row whose keys are all masked gets zeros, as SDPA gives it no value.
    """
    query, key = query.detach().float(), key.detach().float()
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)  # [..., Q, K]
    if causal:  # top-left aligned, as torch's is_causal: query i sees keys 0..i
        positions = torch.arange(first_row, first_row + scores.shape[-2])[:, None]
        scores = scores.masked_fill(torch.arange(scores.shape[-1])[None, :] > positions, -math.inf)
    if mask is not None:
        mask = mask.detach()
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask.float()
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)


def _broadcast_mask(mask: torch.Tensor, shape) -> torch.Tensor:
    while mask.dim() < 4:
        mask = mask[None]
    return mask.expand(*shape)


def _as_four_dims(tensor: torch.Tensor) -> torch.Tensor:
    """``[..., T, d]`` as ``[B, H, T, d]``: missing batch or head axes become 1, extra leading axes join the batch."""
    while tensor.dim() < 4:
        tensor = tensor[None]
    return tensor.reshape(-1, *tensor.shape[-3:]) if tensor.dim() > 4 else tensor


class CapturedAttention:
    """The attention calls of one ``capture_attention`` block, in call order (see the module docstring)."""

    def __init__(self, lazy: bool = False, max_bytes: int = MAX_KEPT_BYTES):
        self.lazy = lazy
        self.max_bytes = max_bytes
        self.calls: list[AttentionCall] = []
        self.kept_bytes = 0
        self.listeners: list = []  # called with each new AttentionCall (explorer.hooks.capture names them)

    def __len__(self) -> int:
        return len(self.calls)

    @property
    def names(self) -> list[str]:
        """The path of the module that made each call, in call order."""
        return [call.name for call in self.calls]

    def find(self, pattern: str) -> list[int]:
        """The indices of the calls whose module path matches a shell-style ``pattern`` (``"*.self_attn"``)."""
        pattern = text(pattern, "pattern of module paths", max_length=1000)
        return [i for i, name in enumerate(self.names) if fnmatch.fnmatchcase(name, pattern)]

    def call(self, i: int) -> AttentionCall:
        if not self.calls:
            raise ValueError(f"No attention was captured: the model made no call to {LOOKED_FOR} inside the "
                             "`with` block (a model that multiplies queries and keys by hand is not seen).")
        n = len(self.calls)
        return self.calls[index(i, "attention call", n, negative=True, among=f"{n} were captured (0 to {n - 1})")]

    def weights(self, i: int) -> torch.Tensor:
        """All weights of call ``i``, every batch item: ``[B, heads, queries, keys]``."""
        call = self.call(i)
        if call.weights is not None:
            return call.weights
        return torch.stack([call.rows(item) for item in range(call.shape[0])])

    def head(self, i: int, h: int, item: int = 0) -> torch.Tensor:
        """One head of call ``i`` for batch ``item``: ``[queries, keys]`` (worked out now when lazy)."""
        call = self.call(i)
        h = index(h, "head", call.shape[1], negative=True, among=f"call {i} has heads 0 to {call.shape[1] - 1}")
        return call.rows(self._item(call, item), [h % call.shape[1]])[0]

    def layer(self, i: int, tokens=None, key_tokens=None, item: int = 0) -> AttentionMaps:
        """All heads of call ``i`` for batch ``item`` as ``AttentionMaps`` ``[1, heads, queries, keys]``.

        ``tokens`` label the queries (and keys, unless ``key_tokens`` are given); positions by default.
        """
        call = self.call(i)
        weights = call.rows(self._item(call, item))
        return _maps(weights[None], tokens, key_tokens, call.name)

    def maps(self, calls=None, tokens=None, key_tokens=None, item: int = 0) -> AttentionMaps:
        """Several calls of one shape (all by default) as ``AttentionMaps`` ``[calls, heads, queries, keys]``."""
        indices = range(len(self.calls)) if calls is None else items(calls, "list of attention calls")
        chosen = [self.call(i) for i in indices]
        if not chosen:
            raise ValueError("The list of attention calls is empty: give at least one call (None gives them all).")
        shapes = {call.shape[1:] for call in chosen}
        if len(shapes) > 1:
            raise ValueError(f"These calls have different shapes {sorted(shapes)} (heads, queries, keys): pick calls of "
                             "one kind, e.g. with captured.find('*.self_attn').")
        weights = torch.stack([call.rows(self._item(call, item)) for call in chosen])
        return _maps(weights, tokens, key_tokens, "")

    def stack(self, calls=None) -> torch.Tensor:
        """The weights of several calls of one shape, every batch item: ``[B, calls, heads, queries, keys]``."""
        indices = range(len(self.calls)) if calls is None else calls
        return torch.stack([self.weights(i) for i in indices], dim=1)

    @staticmethod
    def _item(call: AttentionCall, item: int) -> int:
        return index(item, "batch item", call.shape[0], among=f"the batch has {call.shape[0]} (0 to {call.shape[0] - 1})")

    # ----- recording (from the mode) ------------------------------------------------------------------------------
    @staticmethod
    def call_shape(query, key, mask) -> tuple[int, int, int, int]:
        """The ``[batch, heads, queries, keys]`` of an SDPA call's weights; a ValueError in words for heads or a mask
        that do not fit (checked before the call, so the message is this one rather than the kernel's)."""
        query, key = _as_four_dims(query), _as_four_dims(key)
        heads, kv_heads = query.shape[1], key.shape[1]
        if heads % kv_heads:
            raise ValueError(f"The attention call has {heads} query heads and {kv_heads} key heads; grouped-query "
                             "attention needs the query heads to be a multiple of the key heads.")
        shape = (max(query.shape[0], key.shape[0]), heads, query.shape[2], key.shape[2])
        if mask is not None:
            try:
                _broadcast_mask(mask, shape)
            except RuntimeError:
                raise ValueError(f"The attention mask has shape {list(mask.shape)}, which does not fit the weights' "
                                 f"{list(shape)} (batch, heads, queries, keys).") from None
        return shape

    def add_sdpa(self, name: str, query, key, mask, causal: bool, scale) -> None:
        shape = self.call_shape(query, key, mask)
        query, key = _as_four_dims(query.detach()), _as_four_dims(key.detach())
        mask = None if mask is None else mask.detach()
        scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
        if self.lazy:
            self._keep(AttentionCall(name, shape, query=query, key=key, mask=mask, causal=causal, scale=scale),
                       (query.numel() + key.numel()) * query.element_size())
            return
        self._check_room(shape)
        call = AttentionCall(name, shape, query=query, key=key, mask=mask, causal=causal, scale=scale)
        weights = torch.stack([call.rows(item) for item in range(shape[0])])
        self._keep(AttentionCall(name, shape, weights=weights, causal=causal, scale=scale), weights.numel() * 4)

    def add_weights(self, name: str, weights: torch.Tensor) -> None:
        weights = _as_four_dims(weights.detach().float())
        self._check_room(tuple(weights.shape))
        self._keep(AttentionCall(name, tuple(weights.shape), weights=weights), weights.numel() * 4)

    def _check_room(self, shape) -> None:
        needed = self.kept_bytes + math.prod(shape) * 4
        if needed > self.max_bytes:
            raise ValueError(f"Keeping every attention map of this run would take {amount(needed)} ({needed:,} bytes), "
                             f"over the {self.max_bytes:,} a capture keeps (max_bytes): use capture_attention(model, lazy=True), "
                             "which keeps queries and keys and works a map out when it is shown.")

    def _keep(self, call: AttentionCall, size: int) -> None:
        self.calls.append(call)
        self.kept_bytes += size
        for listener in self.listeners:
            listener(call)


def _maps(weights: torch.Tensor, tokens, key_tokens, source: str) -> AttentionMaps:
    n_queries, n_keys = weights.shape[-2:]
    tokens = [str(i) for i in range(n_queries)] if tokens is None else [str(t) for t in items(tokens, "tokens")]
    if key_tokens is None and n_keys != n_queries:
        key_tokens = [str(j) for j in range(n_keys)]
    elif key_tokens is not None:
        key_tokens = [str(t) for t in items(key_tokens, "key tokens")]
    return AttentionMaps(tokens=tokens, key_tokens=key_tokens, weights=weights, meta=MapsInfo(source=source))


class _AttentionMode(TorchFunctionMode):
    """Sees the attention calls of this thread and hands them to a ``CapturedAttention``."""

    def __init__(self, captured: CapturedAttention, where):
        super().__init__()
        self.captured, self.where = captured, where

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is SDPA:
            query, key, _value, mask, _dropout, causal, scale, _gqa = _sdpa_arguments(*args, **kwargs)
            self.captured.call_shape(query, key, mask)
            result = func(*args, **kwargs)  # the call's own output, computed by its own kernel
            self.captured.add_sdpa(self.where(), query, key, mask, causal, scale)
            return result
        if func is MHA:
            return self._multi_head(func, args, kwargs)
        return func(*args, **kwargs)

    def _multi_head(self, func, args, kwargs):
        bound = MHA_SIGNATURE.bind(*args, **kwargs)
        bound.apply_defaults()
        wanted, average = bound.arguments["need_weights"], bound.arguments["average_attn_weights"]
        bound.arguments.update(need_weights=True, average_attn_weights=False)
        output, weights = func(*bound.args, **bound.kwargs)  # [B, H, Q, K] (or [H, Q, K] unbatched)
        self.captured.add_weights(self.where(), weights)
        if not wanted:
            return output, None
        return output, weights.mean(dim=-3) if average else weights


def _sdpa_arguments(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa


class _ModulePath:
    """Which module of ``model`` is running on the capturing thread: forward hooks push and pop its path."""

    def __init__(self, model: nn.Module | None):
        self.thread = threading.get_ident()
        self.stack: list[str] = []
        self.handles = []
        if model is None:
            return
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(name)))
            self.handles.append(module.register_forward_hook(self._leave, always_call=True))

    def _enter(self, name: str):
        def hook(module, args):
            if threading.get_ident() == self.thread:
                self.stack.append(name)
        return hook

    def _leave(self, module, args, output):
        if threading.get_ident() == self.thread and self.stack:
            self.stack.pop()

    def __call__(self) -> str:
        return self.stack[-1] if self.stack else ""

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@contextlib.contextmanager
def capture_attention(model: nn.Module | None = None, *, lazy: bool = False,
                      max_bytes: int = MAX_KEPT_BYTES) -> Iterator[CapturedAttention]:
    """Record the attention of every SDPA and ``nn.MultiheadAttention`` call made on this thread inside the block.

    ``model`` names the calls by module path (any model works; ``None`` leaves names empty). With ``lazy`` the
    maps are worked out when asked for. Everything is removed on exit and on any exception; contexts nest.
    """
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"The model given to capture_attention must be a torch nn.Module, got {shown(model)}.")
    if model is not None and any(p.is_meta for p in model.parameters()):
        raise ValueError("The model is on the meta device: its weights are not loaded, so it computes no attention. "
                         "Load its weights (e.g. from_pretrained, or model.to_empty() then load_state_dict).")
    captured = CapturedAttention(lazy=flag(lazy, "lazy switch"), max_bytes=whole(max_bytes, "max_bytes", 1))
    where = _ModulePath(model)
    try:
        with _AttentionMode(captured, where):
            yield captured
    finally:
        where.remove()
