"""The attention mechanism itself: score functions, ``attend`` and multi-head attention.

Attention in three steps (Bahdanau et al. 2015; Vaswani et al. 2017):

    scores  e_ij = score(q_i, k_j)                     (relevance of key j to query i)
    weights a_ij = softmax_j(e_ij / temperature)       (each row sums to one)
    context c_i  = sum_j a_ij v_j                      (weighted average of the values)

Pure torch: no widgets, no plotting. Shapes are written ``[..., Q, K]`` with ``Q`` queries and ``K`` keys.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from explorer.arguments import choice, count, flag, real, seed as check_seed, shown, whole
from explorer.hooks import HookPoint
from explorer.limits import MAX_WEIGHTS, Size, check_memory, check_size

SCORES = ("dot", "scaled_dot", "general", "additive")
FUSED_SCORES = ("dot", "scaled_dot")  # computed by torch's scaled_dot_product_attention

# The formula of each score, in LaTeX, for the views that explain it.
SCORE_FORMULAS = {
    "dot": r"e_{ij} = q_i^\top k_j",
    "scaled_dot": r"e_{ij} = \frac{q_i^\top k_j}{\sqrt{d}}",
    "general": r"e_{ij} = q_i^\top W k_j",
    "additive": r"e_{ij} = v^\top \tanh(W_q q_i + W_k k_j)",
}


class GeneralScore(nn.Module):
    """Luong's "general" score: e_ij = q_i^T W k_j with a learned matrix W [d_query, d_key]."""

    def __init__(self, d_query: int, d_key: int | None = None):
        super().__init__()
        d_key = d_query if d_key is None else d_key
        self.weight = nn.Parameter(torch.eye(d_query, d_key))

    def reset_parameters(self) -> None:
        with torch.no_grad():  # the identity where the shapes allow, so an untrained "general" equals "dot"
            self.weight.copy_(torch.eye(*self.weight.shape))

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return query @ self.weight @ key.transpose(-2, -1)  # [..., Q, K]


class AdditiveScore(nn.Module):
    """Bahdanau's additive score: e_ij = v^T tanh(W_q q_i + W_k k_j)."""

    def __init__(self, d_query: int, d_key: int | None = None, d_hidden: int | None = None):
        super().__init__()
        d_key = d_query if d_key is None else d_key
        d_hidden = d_hidden or max(d_query, d_key)
        self.w_query = nn.Linear(d_query, d_hidden, bias=False)
        self.w_key = nn.Linear(d_key, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        q = self.w_query(query).unsqueeze(-2)  # [..., Q, 1, h]
        k = self.w_key(key).unsqueeze(-3)  # [..., 1, K, h]
        return self.v(torch.tanh(q + k)).squeeze(-1)  # [..., Q, K]


def make_scorer(score: str, d_query: int, d_key: int | None = None, seed: int | None = None) -> nn.Module | None:
    """The module that holds the parameters of ``score`` (None for the parameter-free scores)."""
    score = _check_score(score)
    d_query = whole(d_query, "query size d_query", 1, MAX_WEIGHTS)
    d_key = d_query if d_key is None else whole(d_key, "key size d_key", 1, MAX_WEIGHTS)
    check_size(f"A '{score}' score for sizes {d_query:,} and {d_key:,}", Size(scorer_weights(score, d_query, d_key), 0))
    if seed is not None:
        torch.manual_seed(check_seed(seed))
    if score == "general":
        return GeneralScore(d_query, d_key)
    if score == "additive":
        return AdditiveScore(d_query, d_key)
    return None


def scorer_weights(score: str, d_query: int, d_key: int) -> int:
    """The numbers a score's module learns (worked out before it is built)."""
    if score == "general":
        return d_query * d_key
    if score == "additive":
        hidden = max(d_query, d_key)
        return (d_query + d_key + 1) * hidden
    return 0


def score_matrix(query: torch.Tensor, key: torch.Tensor, score: str = "scaled_dot", scorer: nn.Module | None = None) -> torch.Tensor:
    """Raw relevance scores e_ij, ``[..., Q, K]``, before temperature and softmax."""
    score = _check_score(score)
    check_tensors(queries=query, keys=key)
    if query.shape[-1] != key.shape[-1] and score in ("dot", "scaled_dot"):
        raise ValueError(f"Queries have {query.shape[-1]} numbers and keys {key.shape[-1]}: a dot product needs the same length.")
    if score == "dot":
        return query @ key.transpose(-2, -1)
    if score == "scaled_dot":
        return (query @ key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    if scorer is None:
        raise ValueError(f"The '{score}' score has learned parameters: pass scorer=make_scorer('{score}', d).")
    return scorer(query, key)


SHORT_ROWS = 16


def softmax_last(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis. For short rows (a few keys, as in the tiny Transformer) torch's CPU
    kernel is several times faster along the second-last axis, so such rows are transposed there and back."""
    if scores.dim() < 2 or scores.shape[-1] > SHORT_ROWS:
        return torch.softmax(scores, dim=-1)
    return torch.softmax(scores.transpose(-2, -1), dim=-2).transpose(-2, -1).contiguous()


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """softmax(scores / temperature) over the last axis where ``mask`` is True; a row with no allowed key gets
    all-zero weights.

    The row's largest allowed score is subtracted before dividing by the temperature, so a tiny temperature
    or huge scores give the limit (all weight on the largest scores), never NaN. Masked scores are set to the
    most negative finite number rather than -inf, so an all-masked row gives a finite (uniform) softmax that is
    then zeroed, and gradients stay finite.
    """
    temperature = _check_temperature(temperature)
    if not torch.is_tensor(scores) or not scores.is_floating_point() or scores.dim() < 1:
        raise TypeError(f"The scores must be a float tensor [..., queries, keys], got {shown(scores)}.")
    if mask is not None:
        mask = check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    if temperature != 1.0:  # divided in float64: a temperature below float32's smallest number (1e-46) is not 0
        shifted = (scores - scores.amax(dim=-1, keepdim=True).detach()).double()
        scores = (shifted / temperature).to(scores.dtype)
    weights = softmax_last(scores)
    return weights if mask is None else weights.masked_fill(~mask, 0.0)


def check_mask(mask, shape) -> torch.Tensor:
    """``mask`` as booleans that broadcast to the scores' ``shape`` ``[..., Q, K]``; a ValueError says what fits."""
    try:
        mask = torch.as_tensor(mask) if not torch.is_tensor(mask) else mask
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"The mask must be a table of True/False, one per query and key, got {shown(mask)}.") from None
    try:
        torch.broadcast_shapes(mask.shape, shape)
    except RuntimeError:
        raise ValueError(f"The mask has shape {list(mask.shape)} but the scores have {list(shape)} (queries x keys): "
                         "give one True/False per query and key.") from None
    return mask.to(torch.bool)


def check_tensors(**tensors) -> None:
    """Each argument is a tensor of real numbers of at least two dimensions ``[..., tokens, numbers]``, all finite."""
    for name, value in tensors.items():
        if not torch.is_tensor(value) or value.dim() < 2:
            raise TypeError(f"The {name} must be a torch tensor of shape [tokens, numbers], got {shown(value)}.")
        if not value.is_floating_point():
            raise TypeError(f"The {name} must hold real numbers (a float tensor), got numbers of type {value.dtype}.")
        if not torch.isfinite(value).all():
            raise ValueError(f"The {name} hold NaN or infinite numbers; attention needs finite ones.")


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    score: str = "scaled_dot",
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    scorer: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of queries ``[..., Q, d]`` over keys ``[..., K, d]`` and values ``[..., K, dv]``.

    Returns ``(context [..., Q, dv], weights [..., Q, K])``. ``mask`` is boolean, broadcastable to
    ``[..., Q, K]``, True where a query may attend.
    """
    temperature = _check_temperature(temperature)
    score = _check_score(score)
    check_tensors(queries=query, keys=key, values=value)
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"There are {key.shape[-2]} keys but {value.shape[-2]} values: each key needs one value.")
    scores = score_matrix(query, key, score, scorer)
    if not torch.isfinite(scores).all():
        raise ValueError("Some scores are too large to compute (they become infinite): "
                         "use smaller vectors, for example numbers below a million.")
    weights = masked_softmax(scores, mask, temperature)
    return weights @ value, weights


def causal_mask(n_queries: int, n_keys: int | None = None, device=None) -> torch.Tensor:
    """Boolean ``[Q, K]``: query i may attend to keys 0..i (lower triangle)."""
    n_queries = whole(n_queries, "number of queries", 0)
    n_keys = n_queries if n_keys is None else whole(n_keys, "number of keys", 0)
    check_memory(f"A causal mask of {count(n_queries)} queries x {count(n_keys)} keys", n_queries * n_keys)
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril()


def valid_head_counts(d_model: int) -> list[int]:
    """The head counts that divide ``d_model`` evenly, found in O(sqrt(d_model)) steps; a width beyond any model the
    budget allows is refused first."""
    d_model = whole(d_model, "width d_model", 1, MAX_WEIGHTS)
    small = [h for h in range(1, math.isqrt(d_model) + 1) if d_model % h == 0]
    return sorted(set(small) | {d_model // h for h in small})


def check_heads(d_model: int, n_heads: int) -> tuple[int, int]:
    """Raise a ValueError that names the numbers and the valid choices when heads do not divide the width."""
    d_model = whole(d_model, "width d_model", 1, MAX_WEIGHTS)
    n_heads = whole(n_heads, "number of heads", 1)
    if d_model % n_heads != 0:
        counts = valid_head_counts(d_model)
        choices = ", ".join(map(str, counts[:12])) + (f" and {len(counts) - 12} more" if len(counts) > 12 else "")
        raise ValueError(
            f"The width d_model={d_model} is not divisible by n_heads={n_heads}: each head gets d_model / n_heads numbers. "
            f"Valid head counts for width {d_model}: {choices}."
        )
    return d_model, n_heads


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017, section 3.2.2).

    head_h = softmax(score(Q W_h^Q, K W_h^K)) V W_h^V, out = concat(head_1..head_H) W^O, where the score is
    scaled_dot by default (q.k / sqrt(d_head)) or any other of ``SCORES``; "general" and "additive" (Bahdanau's
    v^T tanh(W_q q + W_k k)) have learned parameters of their own in every head.
    ``forward`` returns the output. The dot-product scores run in torch's fused
    ``scaled_dot_product_attention``, so training runs at its speed; ``explorer.capture_attention`` reads that
    call's weights. The learned scores compute their weights here and pass them through ``hook_pattern``
    (``[B, H, Q, K]``). ``explorer.hooks.capture`` gives both under the name ``<module>.hook_pattern``, and the
    values under ``<module>.hook_v``.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0, score: str = "scaled_dot"):
        super().__init__()
        d_model, n_heads = check_heads(d_model, n_heads)
        score, bias = _check_score(score), flag(bias, "bias switch")
        dropout = real(dropout, "dropout", 0.0, below=1.0)
        learned = n_heads * scorer_weights(score, d_model // n_heads, d_model // n_heads)
        check_size(f"A MultiHeadAttention of width {d_model:,}", Size(4 * d_model * d_model + 4 * d_model + learned, 0))
        self.d_model, self.n_heads, self.d_head, self.score = d_model, n_heads, d_model // n_heads, score
        learned = score in ("general", "additive")
        self.scorers = nn.ModuleList(make_scorer(score, self.d_head) for _ in range(n_heads)) if learned else None
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.hook_pattern = HookPoint()  # [B, H, Q, K]
        self.hook_v = HookPoint()  # [B, H, K, d_head]: the values, where value-weighted attention reads them

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # Contiguous per-head blocks make the two batched matrix products below about twice as fast.
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2).contiguous()  # [B, H, T, d_head]

    def project(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries from ``x``; keys and values from ``context`` (cross-attention) or from ``x`` (self-attention)."""
        if context is not None:
            return self.split_heads(self.q_proj(x)), self.split_heads(self.k_proj(context)), self.split_heads(self.v_proj(context))
        # Self-attention: one matrix product for all three projections, one copy into head-major order.
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        bias = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        b, t, _ = x.shape
        qkv = nn.functional.linear(x, weight, bias).view(b, t, 3, self.n_heads, self.d_head)
        return qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # 3 x [B, H, T, d_head]

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """e_ij of every head ``[B, H, Q, K]`` from queries and keys ``[B, H, T, d_head]``."""
        if self.score == "scaled_dot":
            return (q * (1.0 / math.sqrt(self.d_head))) @ k.transpose(-2, -1)
        if self.score == "dot":
            return q @ k.transpose(-2, -1)
        return torch.stack([scorer(q[:, h], k[:, h]) for h, scorer in enumerate(self.scorers)], dim=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """``x`` ``[B, Q, d]``, ``context`` ``[B, K, d]`` or None; ``mask`` broadcastable to ``[B, H, Q, K]``, True
        where a query may attend; ``causal``: query i sees keys 0..i."""
        q, k, v = self.project(x, context)  # [B, H, T, d_head]
        v = self.hook_v(v)
        if mask is not None:
            mask = check_mask(mask, (q.shape[0], self.n_heads, q.shape[2], k.shape[2]))
        if causal and (mask is not None or self.score not in FUSED_SCORES):  # one mask holds both
            below = causal_mask(q.shape[2], k.shape[2], device=q.device)
            mask, causal = below if mask is None else mask & below, False
        if self.score in FUSED_SCORES:
            context_vectors = nn.functional.scaled_dot_product_attention(  # [B, H, Q, d_head]
                q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout.p if self.training else 0.0,
                scale=None if self.score == "scaled_dot" else 1.0)
        else:
            weights = self.hook_pattern(masked_softmax(self.scores(q, k), mask))  # [B, H, Q, K]
            context_vectors = self.dropout(weights) @ v  # [B, H, Q, d_head]
        b, _, n_queries, _ = context_vectors.shape
        merged = context_vectors.transpose(1, 2).reshape(b, n_queries, self.d_model)
        return self.out_proj(merged)


def _check_score(score) -> str:
    return choice(score, "score function", SCORES)


def _check_temperature(temperature) -> float:
    """A positive, finite temperature (it divides the scores)."""
    return real(temperature, "temperature", above=0, wanted="a positive number (it divides the scores)")
