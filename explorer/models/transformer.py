"""A tiny Transformer (Vaswani et al. 2017) built on ``explorer.attention.MultiHeadAttention``.

In the manner of nanoGPT's model.py: a config dataclass, small blocks with obvious names and a
``forward`` that reads like the paper and returns the logits. Attention runs in torch's fused
``scaled_dot_product_attention`` (Bahdanau's additive and Luong's general cross-attention scores are computed
here); ``explorer.hooks.capture`` and ``explorer.capture_attention`` read the very weights the pass used.

    x_0     = embed(tokens) + position                                (section 3.4 and 3.5)
    pre-norm:  x = x + MHA(LN(x));  x = x + FFN(LN(x))                 (Xiong et al. 2020)
    post-norm: x = LN(x + MHA(x));  x = LN(x + FFN(x))                 (the original, section 3.1)
    FFN(x)  = W_2 gelu(W_1 x)                                          (section 3.3)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from explorer.arguments import choice, flag, real, shown, whole
from explorer.attention import SCORES, MultiHeadAttention, check_heads, scorer_weights
from explorer.hooks import Capture, HookPoint, capture
from explorer.limits import MAX_WEIGHTS, Size, check_layers, check_size
from explorer.maps import AttentionMaps, MapsInfo, Snapshot

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
    cross_score: str = "scaled_dot"  # the encoder-decoder's cross-attention score, one of explorer.attention.SCORES
    pad_id: int | None = None  # the encoder-decoder's source padding token: no query attends to it
    attention_only: bool = False  # no feed-forward networks: each layer is attention alone (Elhage et al. 2021)

    def __post_init__(self):
        """Every field checked (numpy and 0-d tensor numbers become ints), then the size worked out: a config that
        cannot be built, or is over the machine's budget, is refused before any module exists."""
        self.vocab_size = whole(self.vocab_size, "vocabulary size vocab_size", 1, MAX_WEIGHTS)
        self.d_model, self.n_heads = check_heads(self.d_model, self.n_heads)
        self.n_layers = check_layers("A TinyTransformer", whole(self.n_layers, "number of layers n_layers", 1))
        self.d_ff = 4 * self.d_model if self.d_ff is None else whole(self.d_ff, "feed-forward width d_ff", 1, MAX_WEIGHTS)
        self.max_len = whole(self.max_len, "longest sequence max_len", 1, MAX_WEIGHTS)
        self.dropout = real(self.dropout, "dropout", 0.0, below=1.0)
        self.causal = flag(self.causal, "causal switch")
        self.pooling = choice(self.pooling, "pooling", POOLINGS)
        self.positional = choice(self.positional, "positional encoding", POSITIONALS)
        self.norm = choice(self.norm, "LayerNorm placement norm", NORMS)
        self.cross_score = choice(self.cross_score, "cross-attention score", SCORES)
        if self.pad_id is not None:
            self.pad_id = whole(self.pad_id, "padding token pad_id", 0, self.vocab_size - 1)
        if self.n_classes is not None:
            self.n_classes = whole(self.n_classes, "number of classes n_classes", 2, MAX_WEIGHTS)
        if self.pooling is not None and self.n_classes is None:
            raise ValueError(f"Pooling '{self.pooling}' makes a classifier: set n_classes to the number of classes (2 or more).")
        if self.pooling is not None and self.causal:
            raise ValueError("A causal mask hides later tokens from earlier ones; a pooled classifier needs to see all of them.")
        check_size(self.described(), self.size(), f"for one sequence of {self.max_len:,} tokens")

    def described(self) -> str:
        return f"A TinyTransformer of width {self.d_model:,} with {self.n_layers:,} layers"

    def size(self, batch: int = 1, length: int | None = None, seq2seq: bool = False) -> Size:
        """Weights and activations worked out from the config (before anything is built), for ``batch`` sequences of
        ``length`` tokens (``max_len`` by default); ``seq2seq`` for the encoder-decoder."""
        d, f, h, layers, t = self.d_model, self.d_ff, self.n_heads, self.n_layers, length or self.max_len
        attention = 4 * d * d + 4 * d
        block = attention + 2 * d * f + f + 5 * d  # attention, feed-forward network, two LayerNorms
        kept = batch * (t * (10 * d + 2 * f) + 3 * h * t * t)  # per block: per token and per query-key pair
        embedding = (self.vocab_size + 1) * d + (self.max_len * d if self.positional == "learned" else 0)
        n_out = self.vocab_size if self.pooling is None else self.n_classes
        weights = embedding + layers * block + (d + 1) * n_out + 2 * d
        activations = layers * kept + batch * t * (d + 2 * n_out) + self.max_len * d
        if seq2seq:
            cross = attention + h * scorer_weights(self.cross_score, d // h, d // h) + 2 * d
            additive = batch * t * t * d if self.cross_score == "additive" else 0  # tanh(W_q q + W_k k) per pair
            weights += embedding + layers * (block + cross)
            activations += layers * (2 * kept + additive)
        return Size(weights, activations)

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.cross_attention = MultiHeadAttention(d, config.n_heads, dropout=config.dropout,
                                                  score=config.cross_score) if cross else None
        self.feed_forward = None if config.attention_only else FeedForward(d, config.d_ff, config.dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3 if cross else 2))  # attention, FFN, cross
        if config.attention_only:
            self.norms[1] = nn.Identity()
        self.dropout = nn.Dropout(config.dropout)

    def sublayer(self, x: torch.Tensor, norm: nn.LayerNorm, function) -> torch.Tensor:
        """x + f(LN(x)) for pre-norm, LN(x + f(x)) for post-norm."""
        x = x + self.dropout(function(norm(x) if self.pre_norm else x))
        return x if self.pre_norm else norm(x)

    def forward(self, x, mask=None, memory=None, memory_mask=None, causal: bool = False) -> torch.Tensor:
        """``x`` ``[B, T, d]``; ``memory`` ``[B, S, d]`` (the encoder output) for cross-attention; ``causal``: each
        position sees only itself and earlier ones."""
        x = self.sublayer(x, self.norms[0], lambda h: self.self_attention(h, mask=mask, causal=causal))
        if self.cross_attention is not None:
            x = self.sublayer(x, self.norms[2], lambda h: self.cross_attention(h, context=memory, mask=memory_mask))
        if self.feed_forward is None:  # attention only
            return x
        return self.sublayer(x, self.norms[1], self.feed_forward)


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
        self.hook_pattern = HookPoint()  # [B, T]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.query, std=self.query.shape[0] ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.hook_pattern(torch.softmax(x @ self.query / math.sqrt(x.shape[-1]), dim=-1))  # [B, T]
        return (weights.unsqueeze(-1) * x).sum(dim=1)


class TinyTransformer(nn.Module):
    """An encoder (or, with ``causal``, a decoder-only) Transformer.

    ``forward(input_ids)`` gives logits ``[B, T, vocab]`` (or ``[B, n_classes]`` with pooling). With ``cls``
    pooling a [CLS] token is put first, so the maps have T + 1 rows. ``attention(captured)`` reads the maps of
    a run inside ``capture(model)``.
    """

    is_encoder_decoder: ClassVar[bool] = False

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"A TinyTransformer is built from a TransformerConfig, got {shown(config)}.")
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

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Run the blocks: hidden states ``[B, T, d]`` (``T + 1`` with a [CLS] token)."""
        if self.config.pooling == "cls":
            cls = torch.full_like(input_ids[:, :1], self.cls_id)
            input_ids = torch.cat([cls, input_ids], dim=1)
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, causal=self.config.causal)
        return self.final_norm(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """One vector per sequence ``[B, d]``."""
        pooling = self.config.pooling
        if pooling == "cls":
            return x[:, 0]
        if pooling == "mean":
            return x.mean(dim=1)
        if pooling == "max":
            return x.max(dim=1).values
        return self.pool(x)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        _check_ids(input_ids, self.config.vocab_size)
        x = self.encode(input_ids)
        if self.config.pooling is not None:
            x = self.pooled(x)
        return self.head(x)

    @staticmethod
    def attention(captured: Capture) -> dict[str, torch.Tensor]:
        """``self`` ``[B, layers, heads, T, T]`` and, for attention pooling, ``pooling`` ``[B, T]``."""
        maps = {"self": captured.stack("blocks.*.self_attention.hook_pattern")}
        if captured.names("pool.hook_pattern"):
            maps["pooling"] = captured.get("pool.hook_pattern")
        return maps


class TinySeq2Seq(nn.Module):
    """Encoder-decoder Transformer: the decoder attends to itself (causally) and, by cross-attention, to the source.

    ``forward(input_ids, decoder_input_ids)`` gives logits ``[B, T, vocab]``. The decoder starts from a begin
    token (id ``vocab_size``). With ``config.pad_id`` set, no query attends to the source's padding. ``attention(captured)`` reads ``encoder`` ``[B, L, H, S, S]``, ``decoder``
    ``[B, L, H, T, T]`` and ``cross`` ``[B, L, H, T, S]``.
    """

    is_encoder_decoder: ClassVar[bool] = True

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"A TinySeq2Seq is built from a TransformerConfig, got {shown(config)}.")
        if config.pooling is not None:
            raise ValueError("The encoder-decoder model predicts a sequence; pooling is for the encoder-only classifier.")
        check_size(config.described().replace("TinyTransformer", "TinySeq2Seq"), config.size(seq2seq=True),
                   f"for one sequence of {config.max_len:,} tokens")
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

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor | None = None) -> torch.Tensor:
        _check_ids(input_ids, self.config.vocab_size)
        if decoder_input_ids is None:
            raise ValueError("The decoder needs its inputs: pass decoder_input_ids=model.decoder_inputs(labels).")
        pad_id = self.config.pad_id
        source_mask = None if pad_id is None else (input_ids != pad_id)[:, None, None, :]  # [B, 1, 1, S]
        memory = self.source_embed(input_ids)
        for block in self.encoder:
            memory = block(memory, mask=source_mask)
        memory = self.encoder_norm(memory)
        x = self.target_embed(decoder_input_ids)
        for block in self.decoder:
            x = block(x, causal=True, memory=memory, memory_mask=source_mask)
        return self.head(self.decoder_norm(x))

    @staticmethod
    def attention(captured: Capture) -> dict[str, torch.Tensor]:
        return {"encoder": captured.stack("encoder.*.self_attention.hook_pattern"),
                "decoder": captured.stack("decoder.*.self_attention.hook_pattern"),
                "cross": captured.stack("decoder.*.cross_attention.hook_pattern")}

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Greedy decoding, one token at a time, ``[B, length]`` (the source length by default)."""
        length = input_ids.shape[1] if length is None else length
        decoded = torch.full_like(input_ids[:, :1], self.bos_id)
        for _ in range(length):
            next_token = self(input_ids, decoded)[:, -1].argmax(dim=-1, keepdim=True)
            decoded = torch.cat([decoded, next_token], dim=1)
        return decoded[:, 1:]


def model_inputs(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple:
    """The arguments of a model's forward: an encoder-decoder also gets its shifted targets."""
    if getattr(model, "is_encoder_decoder", False):
        return inputs, model.decoder_inputs(labels)
    return (inputs,)


def token_probe(data, index: int = 0) -> Callable[[nn.Module], Snapshot]:
    """The default probe: the model's attention on test example ``index``, with its prediction and target.

    For an encoder-decoder the maps are the cross-attention (target positions over source tokens).
    """
    split = data["test"]
    index = whole(index, f"test example index (the test split has {len(split)})", -len(split), len(split) - 1) % len(split)
    example = split.with_format("torch")[index]
    inputs, labels = example["input_ids"][None], example["labels"][None]
    names = _names(split.features["input_ids"].feature, split.features["input_ids"].feature.num_classes)
    label_feature = split.features["labels"]
    label_names = names if labels.dim() == 2 else _names(label_feature, int(labels.max()) + 1)
    tokens = [names[i] for i in inputs[0].tolist()]

    def probe(model: nn.Module) -> Snapshot:
        with capture(model) as captured:
            logits = model(*model_inputs(model, inputs, labels))
        attention = model.attention(captured)
        seq2seq = getattr(model, "is_encoder_decoder", False)
        predicted = model.generate(inputs, labels.shape[1]) if seq2seq else logits.argmax(dim=-1)  # greedy
        target, prediction = _decode(labels[0], label_names), _decode(predicted[0], label_names)
        if seq2seq:
            targets = [label_names[i] for i in labels[0].clamp_min(0).tolist()]
            maps = AttentionMaps(tokens=targets, key_tokens=tokens, weights=attention["cross"][0],
                                 meta=MapsInfo(kind="cross-attention"))
            return Snapshot(0, maps, prediction, target)
        labels_shown = (["[CLS]"] + tokens) if model.config.pooling == "cls" else tokens
        pooling = tuple(attention["pooling"][0].tolist()) if "pooling" in attention else None
        return Snapshot(0, AttentionMaps(tokens=labels_shown, weights=attention["self"][0]), prediction, target, pooling)

    return probe


def _names(feature, n: int) -> list[str]:
    return list(feature.names) if hasattr(feature, "names") else [str(i) for i in range(n)]


def _decode(ids: torch.Tensor, names: list[str]):
    if ids.dim() == 0:
        return names[int(ids)] if int(ids) < len(names) else str(int(ids))
    return tuple(names[i] if 0 <= i < len(names) else "·" for i in ids.tolist())


def _check_ids(input_ids, vocab_size: int) -> None:
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2 or input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(f"input_ids must be a tensor of token ids [batch, tokens], got {shown(input_ids)}.")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(f"Token ids must lie in 0..{vocab_size - 1} for a vocabulary of {vocab_size}, "
                         f"got {int(input_ids.min())}..{int(input_ids.max())}.")
