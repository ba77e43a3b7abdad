"""The one record every token model produces, and pure functions over it.

``AttentionMaps`` holds attention weights ``[layers, heads, queries, keys]`` with the labels of the
queries and keys. Views draw it; models make it. Rollout (Abnar and Zuidema, 2020), entropy and head
statistics are plain functions of the record.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from explorer.arguments import float_tensor, items, real, shown, whole

MAX_TOKENS = 1_000_000  # labels of one record: longer than any text a model here reads
POOL_NUMBERS = 4_000_000  # weights of a pooled map worked out at once (16 MB): few, large steps, however long


@dataclass(frozen=True)
class MapsInfo:
    """What travels with a record besides the weights: where it came from and how to read it."""

    source: str = ""  # the model (or "mechanism") that made the maps
    kind: str = "self-attention"  # "self-attention", "cross-attention", "difference B - A", ...
    notice: str = ""  # something the reader should know, such as "the text was cut to 512 tokens"
    full_length: int | None = None  # tokens of the whole input before it was cut
    special: tuple[bool, ...] = ()  # per query token: is it a special token ([CLS], <s>, ...)
    segment_b_start: int | None = None  # first token of the second text of a pair
    ablated: tuple[tuple[int, int], ...] = ()  # (layer, head) outputs zeroed inside the pass
    layer_offset: int = 0  # the model layer of weights[0] (an export of one layer)
    kv_heads: tuple[int, ...] = ()  # per query head: the key/value head it shares (grouped-query attention)
    next_tokens: tuple[tuple[tuple[str, float], ...], ...] = ()  # per position: the top next tokens, probability

    def __post_init__(self):
        object.__setattr__(self, "special", tuple(bool(v) for v in self.special))
        object.__setattr__(self, "ablated", tuple((int(l), int(h)) for l, h in self.ablated))
        object.__setattr__(self, "kv_heads", tuple(int(v) for v in self.kv_heads))
        object.__setattr__(self, "next_tokens", tuple(tuple((str(t), float(p)) for t, p in row)
                                                      for row in self.next_tokens))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "MapsInfo":
        """The known fields of ``data`` (a saved record's meta); others are dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass(frozen=True)
class AttentionMaps:
    """Attention over tokens: ``weights`` ``[layers, heads, queries, keys]`` and their labels."""

    tokens: tuple[str, ...]
    weights: torch.Tensor
    key_tokens: tuple[str, ...] | None = None
    meta: MapsInfo = field(default_factory=MapsInfo)

    def __post_init__(self):
        weights = float_tensor(self.weights, "attention weights [layers, heads, queries, keys]", dims=(2, 4))
        if weights.dim() == 2:  # one matrix: one layer, one head
            weights = weights[None, None]
        tokens = tuple(str(t) for t in items(self.tokens, "tokens", MAX_TOKENS))
        key_tokens = None if self.key_tokens is None else tuple(
            str(t) for t in items(self.key_tokens, "key tokens", MAX_TOKENS))
        n_keys = len(tokens) if key_tokens is None else len(key_tokens)
        if weights.shape[2] != len(tokens) or weights.shape[3] != n_keys:
            raise ValueError(f"The attention weights of shape {tuple(weights.shape)} do not match {len(tokens)} tokens "
                             f"(the queries) and {n_keys} {'key tokens' if key_tokens is not None else 'keys (the tokens)'}.")
        if not isinstance(self.meta, MapsInfo):
            raise TypeError(f"meta must be a MapsInfo, got {type(self.meta).__name__}.")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "key_tokens", key_tokens)

    @property
    def keys(self) -> tuple[str, ...]:
        """The key labels (the query labels for self-attention)."""
        return self.tokens if self.key_tokens is None else self.key_tokens

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    def check_layer(self, layer: int) -> int:
        layer = whole(layer, "layer")
        if not -self.n_layers <= layer < self.n_layers:
            raise ValueError(f"Layer {shown(layer)} does not exist: this model has layers 0 to {self.n_layers - 1}.")
        return layer % self.n_layers

    def check_head(self, head: int) -> int:
        head = whole(head, "head")
        if not -self.n_heads <= head < self.n_heads:
            raise ValueError(f"Head {shown(head)} does not exist: each layer has heads 0 to {self.n_heads - 1}.")
        return head % self.n_heads

    def head(self, layer: int, head: int) -> torch.Tensor:
        """One head's weights ``[queries, keys]``."""
        return self.weights[self.check_layer(layer), self.check_head(head)]

    def layer(self, layer: int) -> torch.Tensor:
        """All heads of one layer ``[heads, queries, keys]``."""
        return self.weights[self.check_layer(layer)]

    def mean_over_heads(self, layer: int) -> torch.Tensor:
        """The average of one layer's heads ``[queries, keys]``."""
        return self.layer(layer).mean(dim=0)

    def rows(self, layer: int, heads=None, rows: slice = slice(None)) -> torch.Tensor:
        """A block of query ``rows`` of one layer, ``[heads, rows, keys]`` (every head when ``heads`` is None)."""
        weights = self.layer(layer)
        return weights[:, rows] if heads is None else weights[[self.check_head(h) for h in heads], rows]

    def pairs(self, layer: int, queries, keys) -> torch.Tensor:
        """The weight from each of ``queries`` to the matching one of ``keys`` (two index lists), ``[heads, n]``."""
        return self.layer(layer)[:, torch.as_tensor(queries, dtype=torch.long), torch.as_tensor(keys, dtype=torch.long)]

    def row_entropy(self, layer: int) -> torch.Tensor:
        """The entropy in nats of each query's weights, ``[heads, queries]`` (0 log 0 counts as 0)."""
        weights = self.layer(layer)
        return -(weights * torch.log(weights.clamp_min(1e-12))).sum(dim=-1)

    def pooled_head(self, layer: int, head: int, cells: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """One head averaged over square blocks of ``size`` tokens, so each side has at most ``cells`` blocks:
        ``[row blocks, key blocks]`` and the token span of each row block. Worked out a block of rows at a time."""
        layer, head = self.check_layer(layer), self.check_head(head)
        n_queries, n_keys = len(self.tokens), len(self.keys)
        size = -(-max(n_queries, n_keys) // cells)  # tokens per block, rounded up
        sums = torch.zeros(-(-n_queries // size), -(-n_keys // size))
        step = size * max(1, POOL_NUMBERS // (n_keys * size))  # whole blocks of rows at once
        for start in range(0, n_queries, step):
            block = self._head_rows(layer, head, start, min(start + step, n_queries))  # [rows, keys it may see]
            pooled = torch.nn.functional.avg_pool2d(block[None, None], size, ceil_mode=True, divisor_override=1)[0, 0]
            sums[start // size:start // size + pooled.shape[0], :pooled.shape[1]] = pooled  # block sums
        spans = [(a, min(a + size, n_queries)) for a in range(0, n_queries, size)]
        row_counts = torch.tensor([b - a for a, b in spans], dtype=torch.float32)
        key_counts = torch.tensor([min(a + size, n_keys) - a for a in range(0, n_keys, size)], dtype=torch.float32)
        return sums / (row_counts[:, None] * key_counts[None, :]), spans

    def _head_rows(self, layer: int, head: int, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of one head, ``[rows, K']``: the keys any of them may weigh (here all)."""
        return self.weights[layer, head, start:stop]

    def layer_maps(self, layer: int) -> "AttentionMaps":
        """One layer as its own record (``meta.layer_offset`` says which), e.g. to save when all are too large."""
        layer = self.check_layer(layer)
        return replace(self, weights=self.weights[layer:layer + 1], meta=replace(self.meta, layer_offset=layer))

    def with_meta(self, **changes) -> "AttentionMaps":
        """The same maps with some of ``meta``'s fields changed."""
        return replace(self, meta=replace(self.meta, **changes))

    def to_dict(self) -> dict:
        """A JSON-ready dict (weights as nested lists)."""
        return {"tokens": list(self.tokens), "key_tokens": None if self.key_tokens is None else list(self.key_tokens),
                "weights": self.weights.tolist(), "meta": _jsonable(self.meta.to_dict())}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "AttentionMaps":
        return cls(tokens=data["tokens"], key_tokens=data.get("key_tokens"), weights=torch.tensor(data["weights"]),
                   meta=MapsInfo.from_dict(data.get("meta")))

    def save_npz(self, path) -> Path:
        """Save weights and labels to a NumPy ``.npz`` file (no pickled objects)."""
        path = Path(path)
        np.savez_compressed(path, weights=self.weights.numpy(), tokens=np.array(self.tokens, dtype=str),
                            key_tokens=np.array(self.keys, dtype=str), meta=np.array(json.dumps(_jsonable(self.meta.to_dict()))))
        return path

    @classmethod
    def load_npz(cls, path) -> "AttentionMaps":
        with np.load(path, allow_pickle=False) as data:
            return cls(tokens=data["tokens"].tolist(), key_tokens=data["key_tokens"].tolist(),
                       weights=torch.from_numpy(data["weights"]), meta=MapsInfo.from_dict(json.loads(str(data["meta"]))))


@dataclass(frozen=True)
class ImageAttention:
    """Attention over images: per stage, channel weights ``[B, C]`` and spatial maps ``[B, H, W]``.

    ``spatial`` maps are upsampled to the input size so they can be drawn over ``images`` ``[B, C, H, W]``.
    A Vision Transformer's record has no channel weights: its ``spatial`` maps are, per layer, where the CLS
    token looks, ``rollout`` ``[B, H, W]`` per layer the attention rollout up to that layer, and ``heads``
    ``[B, heads, H, W]`` per layer each head's map (when asked for).
    ``grad_cam`` ``[B, H, W]`` and ``localization`` (map name -> score against the objects' boxes) are filled
    by probes that compute them.
    """

    channel: list
    spatial: list
    images: torch.Tensor | None = None
    predictions: tuple[int, ...] = ()
    grad_cam: torch.Tensor | None = None
    localization: dict[str, float] = field(default_factory=dict)
    rollout: list = field(default_factory=list)
    heads: list = field(default_factory=list)

    def __post_init__(self):
        channel = [torch.as_tensor(c).detach().to("cpu", torch.float32) for c in self.channel]
        spatial = [torch.as_tensor(s).detach().to("cpu", torch.float32) for s in self.spatial]
        rolled = [torch.as_tensor(r).detach().to("cpu", torch.float32) for r in self.rollout]
        heads = [torch.as_tensor(h).detach().to("cpu", torch.float32) for h in self.heads]
        sizes = {t.shape[0] for t in channel + spatial + rolled + heads}
        if len(sizes) > 1:
            raise ValueError(f"Every stage must hold the same number of images, got {sorted(sizes)}.")
        if any(c.dim() != 2 for c in channel) or any(s.dim() != 3 for s in spatial + rolled):
            raise ValueError("Channel weights must be [B, C] and spatial and rollout maps [B, H, W] for each stage.")
        if any(h.dim() != 4 for h in heads):
            raise ValueError("Per-head maps must be [B, heads, H, W] for each layer.")
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "spatial", spatial)
        object.__setattr__(self, "rollout", rolled)
        object.__setattr__(self, "heads", heads)
        if self.images is not None:
            object.__setattr__(self, "images", torch.as_tensor(self.images).detach().to("cpu", torch.float32))
        if self.grad_cam is not None:
            object.__setattr__(self, "grad_cam", torch.as_tensor(self.grad_cam).detach().to("cpu", torch.float32))
        object.__setattr__(self, "predictions", tuple(int(p) for p in self.predictions))
        object.__setattr__(self, "localization", {str(k): float(v) for k, v in self.localization.items()})

    @property
    def n_stages(self) -> int:
        return max(len(self.channel), len(self.spatial))


@dataclass(frozen=True)
class Snapshot:
    """A probe's record at one training step: the maps of a fixed input, and the model's answer beside the target."""

    step: int
    maps: object  # AttentionMaps or ImageAttention (or whatever a custom probe returns)
    prediction: tuple[str, ...] | str | None = None
    target: tuple[str, ...] | str | None = None
    pooling: tuple[float, ...] | None = None  # attention pooling: each token's weight in the pooled vector
    exact_match: float | None = None  # translation: share of the probe examples written entirely right
    alignment: tuple[tuple[float, ...], ...] | None = None  # translation: [layer][head] alignment score
    induction: InductionScores | None = None  # the induction task: losses on each copy, head scores


@dataclass(frozen=True)
class InductionScores:
    """The induction task's probe at one step: the loss on each copy, and every head's induction and
    previous-token score (``[layer][head]``, mean over the probe's rows; see ``explorer.induction``)."""

    first_copy_loss: float  # next tokens inside the first copy: nothing gives them away
    second_copy_loss: float  # next tokens inside the second copy: the first copy gives them away
    induction: tuple[tuple[float, ...], ...]
    previous_token: tuple[tuple[float, ...], ...]

    @property
    def top_induction(self) -> float:
        """The highest induction score of any head."""
        return max(max(row) for row in self.induction)


@dataclass(frozen=True)
class Translation:
    """A source text and the target an encoder-decoder wrote for it (or was given), with the attention of the pass
    that read both: ``maps["cross"]`` ``[layers, heads, target tokens, source tokens]``, and ``"encoder"`` and
    ``"decoder"`` when the model reports them; no maps for a source with nothing to read."""

    source: str  # the text the model read (cut to what it reads)
    target: str  # what it wrote, up to its end token; or the target it was given
    maps: dict = field(default_factory=dict)  # "encoder", "decoder", "cross" -> AttentionMaps
    written: tuple[str, ...] = ()  # per decoder row: the token written at that step
    translated: bool = True  # the model wrote ``target`` itself (greedy decoding)
    cut: bool = False  # the source was longer than the model reads
    unknown: tuple[str, ...] = ()  # characters of the source outside the vocabulary, read as <unk>
    ended: bool = True  # the model wrote its end token within its length

    @property
    def cross(self) -> AttentionMaps | None:
        return self.maps.get("cross")


@dataclass(frozen=True)
class HistoryRow:
    """One optimiser step: its loss and accuracy on the batch, the learning rate used, seconds trained so far."""

    step: int
    loss: float
    accuracy: float
    lr: float = 0.0
    elapsed: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row) -> "HistoryRow":
        """A row from a saved history; a ValueError if it is not a step with numbers."""
        if isinstance(row, HistoryRow):
            return row
        try:
            if not isinstance(row, dict):
                raise ValueError
            required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
            values = {f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in row or f.name in required}
            if any(isinstance(value, str) for value in values.values()):  # saved numbers are numbers, not text
                raise ValueError
            step = whole(values.pop("step"), "step", 0)
            numbers = {name: real(value, name) for name, value in values.items()}
        except (KeyError, ValueError):
            raise ValueError(f"A history row should hold a step and its loss, accuracy and learning rate as numbers, "
                             f"got {shown(row, 80)}.") from None
        return cls(step=step, **numbers)


def check_maps(maps) -> AttentionMaps:
    if not isinstance(maps, AttentionMaps):
        raise TypeError(f"This needs an AttentionMaps record (tokens and weights), got {shown(maps)}.")
    return maps


def rollout(maps: AttentionMaps, add_residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar and Zuidema, 2020), ``[layers, T, T]``.

    Each layer's heads are averaged, the residual connection is added as ``0.5 A + 0.5 I`` and rows are
    renormalised; entry ``l`` is the product ``A_l ... A_1 A_0``: how much each token at layer ``l``
    draws on each input token.
    """
    check_maps(maps)
    if len(maps.tokens) != len(maps.keys):
        raise ValueError("Rollout needs self-attention (as many keys as queries).")
    return rollout_weights(maps.weights, add_residual)


def rollout_weights(weights: torch.Tensor, add_residual: bool = True) -> torch.Tensor:
    """``rollout`` of raw weights ``[..., layers, heads, T, T]`` (a batch of images at once), ``[..., layers, T, T]``."""
    n_tokens = weights.shape[-1]
    identity = torch.eye(n_tokens, dtype=weights.dtype)
    joint = identity.expand(*weights.shape[:-4], n_tokens, n_tokens)
    layers = []
    for layer_weights in weights.mean(dim=-3).unbind(-3):  # [..., T, T] per layer
        a = 0.5 * layer_weights + 0.5 * identity if add_residual else layer_weights
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        joint = a @ joint
        layers.append(joint)
    return torch.stack(layers, dim=-3)


def entropy(maps: AttentionMaps) -> torch.Tensor:
    """Per-head entropy in nats ``[layers, heads]``: each query row's entropy, averaged over queries.

    Low entropy means a head focuses on few keys; ``log(K)`` is the most spread out a row can be.
    """
    check_maps(maps)
    return torch.stack([maps.row_entropy(layer).mean(dim=-1) for layer in range(maps.n_layers)])  # a layer at a time


def pattern_score(maps: AttentionMaps, pattern: torch.Tensor) -> torch.Tensor:
    """Mean weight each head puts on the cells of a boolean ``pattern`` ``[Q, K]``, ``[layers, heads]``.

    For example the anti-diagonal pattern scores how much each head attends to the mirrored position.
    """
    check_maps(maps)
    try:
        if isinstance(pattern, (str, bytes, dict)):
            raise TypeError
        pattern = torch.as_tensor(pattern).to(torch.bool)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"The pattern must be a table of True/False [queries, keys], got {shown(pattern)}.") from None
    if pattern.shape != maps.weights.shape[2:]:
        raise ValueError(f"The pattern has shape {list(pattern.shape)}; the maps have {maps.weights.shape[2]} queries "
                         f"and {maps.weights.shape[3]} keys.")
    return (maps.weights * pattern).sum(dim=-1).mean(dim=-1)


def attention_distance(maps: AttentionMaps) -> torch.Tensor:
    """Mean distance |i - j| between a query and the keys it attends to, ``[layers, heads]``."""
    check_maps(maps)
    q = torch.arange(maps.weights.shape[2], dtype=torch.float32)[:, None]
    k = torch.arange(maps.weights.shape[3], dtype=torch.float32)[None, :]
    return (maps.weights * (q - k).abs()).sum(dim=-1).mean(dim=-1)


def _jsonable(value):
    """Meta values made JSON-safe (tensors and arrays as lists, unknown objects as strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
