"""Head finder: every head of every layer scored over ``AttentionMaps`` (pure), plus the induction probe.

Each score is ``[layers, heads]``: previous-token (weight on the key just before the query), first-token
(the "attention sink"), self (the diagonal), entropy, and induction (on a random sequence repeated twice,
weight from each position of the second copy to the token after its earlier occurrence; ``copy_score`` for
copies at any distance).
Scores are worked out a layer at a time from the weights they need (``AttentionMaps.pairs`` and ``row_entropy``),
so a long text's ``LazyAttentionMaps`` is scored without any whole map.
"""

from __future__ import annotations

import torch

from explorer.arguments import float_tensor, seed as check_seed, whole
from explorer.maps import AttentionMaps, entropy


def per_layer(maps, score) -> torch.Tensor:
    """``[layers, heads]``: ``score(maps, layer)`` (one value per head) of each layer in turn."""
    return torch.stack([score(maps, layer) for layer in range(maps.n_layers)])


def _diagonal(maps, offset: int):
    """Query and key positions ``(i, i + offset)`` of the cells on one diagonal of the maps."""
    queries = torch.arange(max(0, -offset), min(len(maps.tokens), len(maps.keys) - offset))
    return queries, queries + offset


def _previous(maps, layer: int) -> torch.Tensor:
    return maps.pairs(layer, *_diagonal(maps, -1)).mean(dim=-1)


def _first(maps, layer: int) -> torch.Tensor:
    queries = torch.arange(len(maps.tokens))
    return maps.pairs(layer, queries, torch.zeros_like(queries)).mean(dim=-1)


def _self(maps, layer: int) -> torch.Tensor:
    return maps.pairs(layer, *_diagonal(maps, 0)).mean(dim=-1)


def _entropy(maps, layer: int) -> torch.Tensor:
    return maps.row_entropy(layer).mean(dim=-1)


def previous_token_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean weight each query (from the second on) puts on the key just before it."""
    return per_layer(maps, _previous)


def first_token_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean weight on the first key: the attention sink."""
    return per_layer(maps, _first)


def self_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean weight each query puts on itself."""
    return per_layer(maps, _self)


def entropy_score(maps: AttentionMaps) -> torch.Tensor:
    """Mean entropy (nats) of each head's rows."""
    return per_layer(maps, _entropy)


FINDER_SCORES = {"previous token": _previous, "attention sink": _first, "self": _self, "entropy": _entropy}


def finder_scores(maps: AttentionMaps, progress=None, stop=None) -> dict:
    """The head finder's scores, each ``[layers, heads]``, worked out a layer at a time: ``progress(done, total)``
    hears each layer, and a set ``stop`` event raises a ValueError out of it."""
    rows = []
    for layer in range(maps.n_layers):
        if stop is not None and stop.is_set():
            raise ValueError("Stopped: the heads were not scored, and the previous view is kept.")
        rows.append({name: score(maps, layer) for name, score in FINDER_SCORES.items()})
        if progress is not None:
            progress(layer + 1, maps.n_layers)
    return {name: torch.stack([row[name] for row in rows]) for name in FINDER_SCORES}


def copy_score(maps: AttentionMaps, queries, keys) -> torch.Tensor:
    """Mean weight from each of ``queries`` to its own key in ``keys`` (two position lists of one length)."""
    queries, keys = torch.as_tensor(queries), torch.as_tensor(keys)
    return per_layer(maps, lambda maps, layer: maps.pairs(layer, queries, keys).mean(dim=-1))


def induction_score(maps: AttentionMaps, length: int) -> torch.Tensor:
    """On a sequence of ``length`` tokens repeated twice (after an optional prefix of one token), the mean weight
    from each second-copy position ``i`` to key ``i - length + 1``, the token after its earlier occurrence."""
    n = len(maps.keys)
    queries = torch.arange(n - length, n)  # the second copy
    return copy_score(maps, queries, queries - length + 1)


def repeated_tokens(model, length: int = 40, seed: int = 0) -> list[int]:
    """A first token (BOS when the model has one) and ``length`` random tokens, twice."""
    length = whole(length, "length of the repeated sequence", 2, (model.max_tokens - 1) // 2)
    generator = torch.Generator().manual_seed(check_seed(seed))
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
    logits = model.forward(ids, ablate).logits[0].float()
    start = len(ids) - int(length)
    targets = torch.tensor(ids[start:])
    return float(torch.nn.functional.cross_entropy(logits[start - 1:-1], targets))


def heads_in_words(pairs) -> str:
    """``[(18, 6), (17, 3)]`` as "layer 18, head 6; layer 17, head 3": a page never shows a Python tuple."""
    return "; ".join(f"layer {int(layer)}, head {int(head)}" for layer, head in pairs) or "none"


def top_heads(scores: torch.Tensor, k: int = 3) -> list[tuple[int, int]]:
    """The ``k`` highest-scoring ``(layer, head)`` pairs."""
    scores = float_tensor(scores, "head scores [layers, heads]", dims=(2,))
    if scores.numel() == 0:
        raise ValueError(f"The head scores [layers, heads] are empty (shape {list(scores.shape)}): no head to rank.")
    flat = scores.flatten().topk(whole(k, "number of heads k", 1, scores.numel())).indices
    return [(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in flat]
