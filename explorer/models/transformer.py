"""A tiny Transformer (Vaswani et al. 2017) built on ``explorer.attention.MultiHeadAttention``.

In the manner of nanoGPT's model.py: a config dataclass, small blocks with obvious names and a
``forward`` that reads like the paper. Every attention layer hands back its weights, so the lab can
draw them without re-deriving anything.

    x_0     = embed(tokens) + position                                (section 3.4 and 3.5)
    pre-norm:  x = x + MHA(LN(x));  x = x + FFN(LN(x))                 (Xiong et al. 2020)
    post-norm: x = LN(x + MHA(x));  x = LN(x + FFN(x))                 (the original, section 3.1)
    FFN(x)  = W_2 gelu(W_1 x)                                          (section 3.3)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from explorer.attention import MultiHeadAttention, causal_mask, check_heads
from explorer.maps import AttentionMaps

POOLINGS = (None, "cls", "mean", "max", "attention")
POSITIONALS = ("sinusoidal", "learned")
NORMS = ("pre", "post")


@dataclass
class TransformerConfig:
    """The architecture. ``pooling`` None predicts one token per position; otherwise one class per sequence."""

    vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None  # 4 x d_model when None
    max_len: int = 64
    dropout: float = 0.0
    causal: bool = False
    pooling: str | None = None
    n_classes: int | None = None
    positional: str = "sinusoidal"
    norm: str = "pre"

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_heads(self.d_model, self.n_heads)
        for name in ("vocab_size", "n_layers", "d_ff", "max_len"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {getattr(self, name)}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is a probability in [0, 1), got {self.dropout}.")
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("positional", self.positional, POSITIONALS)
        _check_choice("norm", self.norm, NORMS)
        if self.pooling is not None and (self.n_classes is None or self.n_classes < 2):
            raise ValueError(f"Pooling '{self.pooling}' makes a classifier: set n_classes to the number of classes (2 or more).")
        if self.pooling is not None and self.causal:
            raise ValueError("A causal mask hides later tokens from earlier ones; a pooled classifier needs to see all of them.")

    def to_dict(self) -> dict:
        return asdict(self)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} '{value}'. Choose one of: {', '.join(str(c) for c in choices)}.")


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...) (section 3.5), ``[max_len, d_model]``."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
    return table


class FeedForward(nn.Module):
    """FFN(x) = W_2 gelu(W_1 x): the same two-layer network applied at every position."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(nn.functional.gelu(self.up(x))))


class Block(nn.Module):
    """One layer: self-attention (and cross-attention in a decoder), then the feed-forward network.

    Each sub-layer sits in a residual connection with LayerNorm before it (pre) or after the sum (post).
    """

    def __init__(self, config: TransformerConfig, cross: bool = False):
        super().__init__()
        d = config.d_model
        self.pre_norm = config.norm == "pre"
        self.self_attention = MultiHeadAttention(d, config.n_heads, dropout=config.dropout)
        self.cross_attention = MultiHeadAttention(d, config.n_heads, dropout=config.dropout) if cross else None
        self.feed_forward = FeedForward(d, config.d_ff, config.dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3 if cross else 2))
        self.dropout = nn.Dropout(config.dropout)

    def sublayer(self, x: torch.Tensor, norm: nn.LayerNorm, function) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x + f(LN(x)) for pre-norm, LN(x + f(x)) for post-norm; returns the new x and f's attention weights."""
        out = function(norm(x) if self.pre_norm else x)
        out, weights = out if isinstance(out, tuple) else (out, None)
        x = x + self.dropout(out)
        return (x if self.pre_norm else norm(x)), weights

    def forward(self, x, mask=None, memory=None, memory_mask=None):
        """``x`` ``[B, T, d]``; ``memory`` ``[B, S, d]`` (the encoder output) for cross-attention.

        Returns ``(x, self_weights [B, H, T, T], cross_weights [B, H, T, S] or None)``.
        """
        x, self_weights = self.sublayer(x, self.norms[0], lambda h: self.self_attention(h, mask=mask))
        cross_weights = None
        if self.cross_attention is not None:
            x, cross_weights = self.sublayer(
                x, self.norms[2], lambda h: self.cross_attention(h, context=memory, mask=memory_mask))
        x, _ = self.sublayer(x, self.norms[1], self.feed_forward)
        return x, self_weights, cross_weights


class Embedding(nn.Module):
    """Token embedding scaled by sqrt(d) plus a sinusoidal or learned position (section 3.4 and 3.5)."""

    def __init__(self, n_tokens: int, config: TransformerConfig):
        super().__init__()
        self.scale = math.sqrt(config.d_model)
        self.tokens = nn.Embedding(n_tokens, config.d_model)
        if config.positional == "learned":
            self.positions = nn.Embedding(config.max_len, config.d_model)
        else:
            self.register_buffer("table", sinusoidal_positions(config.max_len, config.d_model), persistent=False)
            self.positions = None
        self.dropout = nn.Dropout(config.dropout)
        self.max_len = config.max_len

    def reset_parameters(self) -> None:
        nn.init.normal_(self.tokens.weight, std=1.0 / self.scale)
        if self.positions is not None:
            nn.init.normal_(self.positions.weight, std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: token embeddings ``[B, T, d]`` already looked up, or ids ``[B, T]``."""
        if x.dtype in (torch.int64, torch.int32):
            x = self.tokens(x) * self.scale
        n = x.shape[1]
        if n > self.max_len:
            raise ValueError(f"The sequence has {n} tokens but the model's max_len is {self.max_len}: raise max_len.")
        position = self.table[:n] if self.positions is None else self.positions.weight[:n]
        return self.dropout(x + position)


class AttentionPooling(nn.Module):
    """One learned query attends over the tokens: w = softmax(x q / sqrt(d)), pooled = sum_t w_t x_t."""

    def __init__(self, d_model: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.query, std=self.query.shape[0] ** -0.5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(x @ self.query / math.sqrt(x.shape[-1]), dim=-1)  # [B, T]
        return (weights.unsqueeze(-1) * x).sum(dim=1), weights


class TinyTransformer(nn.Module):
    """An encoder (or, with ``causal``, a decoder-only) Transformer that returns its attention weights.

    ``forward(input_ids)`` gives logits ``[B, T, vocab]`` (or ``[B, n_classes]`` with pooling).
    With ``return_attention=True`` it also gives the weights ``[B, layers, heads, T, T]`` and, for
    attention pooling, the pooling weights ``[B, T]``. With ``cls`` pooling a [CLS] token is put first,
    so the maps have T + 1 rows.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed = Embedding(config.vocab_size + (config.pooling == "cls"), config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model) if config.norm == "pre" else nn.Identity()
        self.pool = AttentionPooling(config.d_model) if config.pooling == "attention" else None
        n_out = config.vocab_size if config.pooling is None else config.n_classes
        self.head = nn.Linear(config.d_model, n_out)
        self.embed.reset_parameters()

    @property
    def cls_id(self) -> int:
        return self.config.vocab_size

    def encode(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks: hidden states ``[B, T, d]`` and attention ``[B, layers, heads, T, T]``."""
        if self.config.pooling == "cls":
            cls = torch.full_like(input_ids[:, :1], self.cls_id)
            input_ids = torch.cat([cls, input_ids], dim=1)
        x = self.embed(input_ids)
        mask = causal_mask(x.shape[1], device=x.device) if self.config.causal else None
        maps = []
        for block in self.blocks:
            x, weights, _ = block(x, mask=mask)
            maps.append(weights)
        return self.final_norm(x), torch.stack(maps, dim=1)

    def pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One vector per sequence ``[B, d]`` (and the pooling weights for attention pooling)."""
        pooling = self.config.pooling
        if pooling == "cls":
            return x[:, 0], None
        if pooling == "mean":
            return x.mean(dim=1), None
        if pooling == "max":
            return x.max(dim=1).values, None
        return self.pool(x)

    def forward(self, input_ids: torch.Tensor, return_attention: bool = False):
        _check_ids(input_ids, self.config.vocab_size)
        x, attention = self.encode(input_ids)
        pool_weights = None
        if self.config.pooling is not None:
            x, pool_weights = self.pooled(x)
        logits = self.head(x)
        if not return_attention:
            return logits
        return (logits, attention) if self.config.pooling != "attention" else (logits, attention, pool_weights)


class TinySeq2Seq(nn.Module):
    """Encoder-decoder Transformer: the decoder attends to itself (causally) and, by cross-attention, to the source.

    ``forward(input_ids, decoder_input_ids)`` gives logits ``[B, T, vocab]``; with ``return_attention``
    also a dict of weights: ``encoder`` ``[B, L, H, S, S]``, ``decoder`` ``[B, L, H, T, T]`` and
    ``cross`` ``[B, L, H, T, S]``. The decoder starts from a begin token (id ``vocab_size``).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if config.pooling is not None:
            raise ValueError("The encoder-decoder model predicts a sequence; pooling is for the encoder-only classifier.")
        self.config = config
        self.source_embed = Embedding(config.vocab_size, config)
        self.target_embed = Embedding(config.vocab_size + 1, config)
        self.encoder = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.decoder = nn.ModuleList(Block(config, cross=True) for _ in range(config.n_layers))
        self.encoder_norm = nn.LayerNorm(config.d_model) if config.norm == "pre" else nn.Identity()
        self.decoder_norm = nn.LayerNorm(config.d_model) if config.norm == "pre" else nn.Identity()
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.source_embed.reset_parameters()
        self.target_embed.reset_parameters()

    @property
    def bos_id(self) -> int:
        return self.config.vocab_size

    def decoder_inputs(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the targets shifted right behind the begin token (ignored labels become 0)."""
        shifted = labels.clamp_min(0).roll(1, dims=1)
        shifted[:, 0] = self.bos_id
        return shifted

    def forward(self, input_ids, decoder_input_ids=None, return_attention: bool = False):
        _check_ids(input_ids, self.config.vocab_size)
        if decoder_input_ids is None:
            raise ValueError("The decoder needs its inputs: pass decoder_input_ids=model.decoder_inputs(labels).")
        memory = self.source_embed(input_ids)
        encoder_maps = []
        for block in self.encoder:
            memory, weights, _ = block(memory)
            encoder_maps.append(weights)
        memory = self.encoder_norm(memory)
        x = self.target_embed(decoder_input_ids)
        mask = causal_mask(x.shape[1], device=x.device)
        decoder_maps, cross_maps = [], []
        for block in self.decoder:
            x, weights, cross = block(x, mask=mask, memory=memory)
            decoder_maps.append(weights)
            cross_maps.append(cross)
        logits = self.head(self.decoder_norm(x))
        if not return_attention:
            return logits
        stack = lambda maps: torch.stack(maps, dim=1)  # noqa: E731 - [B, L, H, Q, K]
        return logits, {"encoder": stack(encoder_maps), "decoder": stack(decoder_maps), "cross": stack(cross_maps)}

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Greedy decoding, one token at a time, ``[B, length]`` (the source length by default)."""
        length = input_ids.shape[1] if length is None else length
        decoded = torch.full_like(input_ids[:, :1], self.bos_id)
        for _ in range(length):
            next_token = self(input_ids, decoded)[:, -1].argmax(dim=-1, keepdim=True)
            decoded = torch.cat([decoded, next_token], dim=1)
        return decoded[:, 1:]


def token_probe(data, index: int = 0) -> Callable:
    """The default probe: the model's attention on test example ``index``, as AttentionMaps.

    ``meta`` holds the prediction and the target as token strings (and the pooling weights, if any).
    """
    split = data["test"]
    example = split.with_format("torch")[index]
    inputs, labels = example["input_ids"][None], example["labels"][None]
    names = _names(split.features["input_ids"].feature, split.features["input_ids"].feature.num_classes)
    label_feature = split.features["labels"]
    label_names = names if labels.dim() == 2 else _names(label_feature, int(labels.max()) + 1)
    tokens = [names[i] for i in inputs[0].tolist()]

    def probe(model: nn.Module) -> AttentionMaps:
        extra = (model.decoder_inputs(labels),) if hasattr(model, "decoder_inputs") else ()
        outputs = model(inputs, *extra, return_attention=True)
        logits, attention = outputs[0], outputs[1]
        predicted = model.generate(inputs, labels.shape[1]) if extra else logits.argmax(dim=-1)  # greedy for seq2seq
        meta = {"target": _decode(labels[0], label_names), "prediction": _decode(predicted[0], label_names)}
        if isinstance(attention, dict):  # encoder-decoder: show the cross-attention, targets over sources
            targets = [label_names[i] for i in labels[0].clamp_min(0).tolist()]
            return AttentionMaps(tokens=targets, key_tokens=tokens, weights=attention["cross"][0], meta=meta)
        shown = (["[CLS]"] + tokens) if attention.shape[-1] == len(tokens) + 1 else tokens
        if len(outputs) == 3:
            meta["pool_weights"] = outputs[2][0].tolist()
        return AttentionMaps(tokens=shown, weights=attention[0], meta=meta)

    return probe


def _names(feature, n: int) -> list[str]:
    return list(feature.names) if hasattr(feature, "names") else [str(i) for i in range(n)]


def _decode(ids: torch.Tensor, names: list[str]):
    if ids.dim() == 0:
        return names[int(ids)] if int(ids) < len(names) else str(int(ids))
    return [names[i] if 0 <= i < len(names) else "·" for i in ids.tolist()]


def _check_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}.")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(f"Token ids must lie in 0..{vocab_size - 1} for a vocabulary of {vocab_size}, "
                         f"got {int(input_ids.min())}..{int(input_ids.max())}.")
