"""Head finder: every head of every layer scored over ``AttentionMaps`` (pure), plus the induction probe.

Each score is ``[layers, heads]``: previous-token (weight on the key just before the query), first-token
(the "attention sink"), self (the diagonal), entropy, and induction (on a random sequence repeated twice,
weight from each position of the second copy to the token after its earlier occurrence; ``copy_score`` for
copies at any distance).
Scores are worked out a layer at a time, so they also read ``LayerMaps`` (long texts) without holding every layer.
"""

from __future__ import annotations

import torch

from explorer.maps import AttentionMaps, entropy


def per_layer(maps, score) -> torch.Tensor:
    """``[layers, heads]``: ``score`` of each layer's weights ``[heads, queries, keys]``, one layer at a time."""
    return torch.stack([score(maps.layer(layer)) for layer in range(maps.n_layers)])


def previous_token_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean weight each query (from the second on) puts on the key just before it."""
    return per_layer(maps, lambda w: w.diagonal(offset=-1, dim1=1, dim2=2).mean(dim=-1))


def first_token_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean weight on the first key: the attention sink."""
    return per_layer(maps, lambda w: w[..., 0].mean(dim=-1))


def self_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean weight each query puts on itself."""
    return per_layer(maps, lambda w: w.diagonal(dim1=1, dim2=2).mean(dim=-1))


def entropy_score(maps: AttentionMaps) -> torch.Tensor:
    return per_layer(maps, lambda w: entropy(AttentionMaps(tokens=maps.tokens, weights=w[None]))[0])


def copy_score(maps: AttentionMaps, queries, keys) -> torch.Tensor:
    """Mean weight from each of ``queries`` to its own key in ``keys`` (two position lists of one length)."""
    queries, keys = torch.as_tensor(queries), torch.as_tensor(keys)
    return per_layer(maps, lambda w: w[:, queries, keys].mean(dim=-1))


def induction_score(maps: AttentionMaps, length: int) -> torch.Tensor:
    """On a sequence of ``length`` tokens repeated twice (after an optional prefix of one token), the mean weight
    from each second-copy position ``i`` to key ``i - length + 1``, the token after its earlier occurrence."""
    n = len(maps.keys)
    queries = torch.arange(n - length, n)  # the second copy
    return copy_score(maps, queries, queries - length + 1)


def repeated_tokens(model, length: int = 40, seed: int = 0) -> list[int]:
    """A first token (BOS when the model has one) and ``length`` random tokens, twice."""
    if not 2 <= int(length) <= (model.max_tokens - 1) // 2:
        raise ValueError(f"The repeated sequence must be 2 to {(model.max_tokens - 1) // 2} tokens long, got {length}.")
    generator = torch.Generator().manual_seed(int(seed))
    vocab = len(model.tokenizer)
    special = set(model.tokenizer.all_special_ids)
    pool = torch.tensor([i for i in range(min(vocab, 20000)) if i not in special])
    half = pool[torch.randint(len(pool), (int(length),), generator=generator)].tolist()
    first = model.tokenizer.bos_token_id if model.tokenizer.bos_token_id is not None else half[0]
    return [first] + half + half


def induction_probe(model, length: int = 40, seed: int = 0) -> torch.Tensor:
    """Induction score ``[layers, heads]`` of a ``LanguageModel`` on a random sequence repeated twice."""
    ids = repeated_tokens(model, length, seed)
    return induction_score(model.attend_ids(ids), int(length))


def second_copy_loss(model, ablate=(), length: int = 40, seed: int = 0) -> float:
    """Mean cross-entropy of predicting the second copy's tokens, with the ``ablate`` heads zeroed."""
    ids = repeated_tokens(model, length, seed)
    logits = model.forward(ids, ablate, attentions=False).logits[0].float()
    start = len(ids) - int(length)
    targets = torch.tensor(ids[start:])
    return float(torch.nn.functional.cross_entropy(logits[start - 1:-1], targets))


def top_heads(scores: torch.Tensor, k: int = 3) -> list[tuple[int, int]]:
    """The ``k`` highest-scoring ``(layer, head)`` pairs."""
    flat = scores.flatten().topk(k).indices
    return [(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in flat]
