"""What ``explorer.show()`` and the bertviz drop-ins draw: one reading of attention, whatever it came from.

A ``Reading`` holds one or more *parts* (a model's self-attention; an encoder-decoder's encoder, decoder and
cross-attention; the slices of a sentence pair), each an ``AttentionMaps`` ``[layers, heads, queries, keys]``, or for
a long text a ``LazyAttentionMaps`` (``explorer.lazy_maps``) whose maps are worked out when shown. Each part's layers
carry labels (a layer number, or the path of the module that made the call), so a record cut to a few layers still
says which they are.

This module reads raw weights: an ``AttentionMaps`` record, the tuple ``output_attentions`` returns (or a model
output holding it), a ``[layers, heads, queries, keys]`` tensor, and bertviz's own arguments. Models are read by
``explorer.models.captured`` (any ``nn.Module``), ``explorer.models.hf_reader`` (transformers with a tokenizer or
processor) and ``explorer.models.lens`` (TransformerLens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from explorer.arguments import flag, index, items, plain, shown, whole
from explorer.lazy_maps import LazyAttentionMaps
from explorer.maps import AttentionMaps, MapsInfo, entropy, rollout

MAX_KEPT_BYTES = 256_000_000  # a reading's maps kept whole; past this a part is worked out layer by layer when shown
PAIR_PARTS = ("all", "A -> A", "B -> B", "A -> B", "B -> A")  # bertviz's filter for a sentence pair
SEQ2SEQ_PARTS = ("encoder", "decoder", "cross")
TOKEN_NAMES = {"self-attention": ("tokens", "key tokens"), "encoder": ("encoder tokens", "encoder tokens"),
               "decoder": ("decoder tokens", "decoder tokens"), "cross": ("decoder tokens", "encoder tokens")}


@dataclass
class Reading:
    """The attention of one input (see the module docstring); ``rollout`` and ``entropy`` are worked out once."""

    parts: dict  # part name -> AttentionMaps (or LazyAttentionMaps), in the order they are offered
    layer_names: dict  # part name -> one label per layer of that part
    head_names: tuple = ()  # labels of the heads, the same in every part (empty: 0, 1, ...)
    calls: dict = field(default_factory=dict)  # part name -> the model's attention call of each layer (for ablation)
    notice: str = ""  # what the reader should know: the text was cut, an item of a batch was picked, ...
    batch: int = 1  # items in the batch that was run
    item: int = 0  # the item shown
    text: str = ""  # the text that was read, when the reader takes text
    output: torch.Tensor | None = None  # the model's output, compared before and after an ablation
    ablated: tuple = ()  # (call, head) pairs whose output was zeroed
    change: dict = field(default_factory=dict)  # part -> [layers]: largest weight change caused by the ablation
    cosine: float | None = None  # the output before and after the ablation
    image: torch.Tensor | None = None  # [1, C, H, W]: the image of the item shown, for a ViT's maps over it
    grid: tuple = ()  # (rows, cols) of the image's patches
    _worked_out: dict = field(default_factory=dict, repr=False)

    def maps(self, part: str):
        if part not in self.parts:
            raise ValueError(f"There is no '{part}' attention here; choose one of: {', '.join(self.parts)}.")
        return self.parts[part]

    def is_whole(self, part: str) -> bool:
        """True when the part's maps are all in memory (rollout, entropy and the grids need them)."""
        return not isinstance(self.maps(part), LazyAttentionMaps)

    def rollout(self, part: str) -> torch.Tensor:
        """Attention rollout ``[layers, T, T]`` of a self-attention part."""
        return self._once(("rollout", part), lambda: rollout(self._whole(part, "Rollout")))

    def entropy(self, part: str) -> torch.Tensor:
        """Mean row entropy ``[layers, heads]`` in nats."""
        return self._once(("entropy", part), lambda: entropy(self._whole(part, "The entropy map")))

    def image_attention(self, part: str):
        """Where the CLS token looks among the patches, over the image: an ``ImageAttention`` (a ViT's reading)."""
        from explorer.models.pretrained_vision import cls_image_attention

        if self.image is None or not self.grid:
            raise ValueError("The image view draws a Vision Transformer's maps over its image; this reading has none.")
        return self._once(("image", part), lambda: cls_image_attention(self._whole(part, "The image view"), self.image,
                                                                       *self.grid))

    def _whole(self, part: str, what: str) -> AttentionMaps:
        if not self.is_whole(part):
            maps = self.maps(part)
            raise ValueError(f"{what} needs every map of every layer, and this text's {len(maps.tokens):,} tokens are "
                             "worked out one layer at a time: use the head view.")
        return self.maps(part)

    def _once(self, key, compute):
        if key not in self._worked_out:
            self._worked_out[key] = compute()
        return self._worked_out[key]


def labels(tokens, n: int, what: str = "tokens") -> tuple[str, ...]:
    """``tokens`` as ``n`` labels (positions when None); a ValueError when their count is not ``n``."""
    if tokens is None:
        return tuple(str(i) for i in range(n))
    if isinstance(tokens, str) or not hasattr(tokens, "__len__") or getattr(tokens, "shape", None) == ():
        raise TypeError(f"The {what} must be a list of labels, one per position, got {shown(tokens)}.")
    if len(tokens) != n:
        raise ValueError(f"You gave {len(tokens)} {what}, but the attention maps are over {n} positions: give one "
                         f"label per position (or none, to number them).")
    return tuple(str(t) for t in tokens)


def check_finite(weights: torch.Tensor, where: str) -> None:
    """A ValueError naming the first layer and head whose weights hold NaN or inf (``weights`` ``[L, H, Q, K]``)."""
    bad = ~torch.isfinite(weights)
    if bad.any():
        layer, head = (int(i) for i in bad.nonzero()[0][:2])
        raise ValueError(f"The attention maps{where} hold NaN or inf values (first in layer {layer}, head {head}): "
                         "they cannot be drawn. A model whose training diverged, or an input out of range, gives these.")


def pick_item(weights: torch.Tensor, item: int) -> tuple[torch.Tensor, str]:
    """``[L, B, H, Q, K]`` -> ``[L, H, Q, K]`` of batch ``item``, and the notice that says so when ``B > 1``."""
    batch = weights.shape[1]
    check_item(item, batch)
    notice = "" if batch == 1 else batch_notice(batch, item)
    return weights[:, item], notice


def check_item(item, batch: int) -> int:
    return index(item, "batch item", batch, among=f"the batch has {batch} item{'s' * (batch != 1)} (0 to {batch - 1})")


def batch_notice(batch: int, item: int) -> str:
    return f"The batch has {batch} items; item {item} is shown (choose another with item=)."


def stack_layers(attention, what: str = "attention") -> torch.Tensor:
    """Per-layer weights, as ``output_attentions`` gives them (a tuple of ``[B, H, Q, K]``, or ``[H, Q, K]``), or one
    ``[L, H, Q, K]`` tensor, as ``[L, B, H, Q, K]`` float32."""
    if isinstance(attention, torch.Tensor) and attention.dim() == 4:
        attention = attention[:, None]
    elif isinstance(attention, torch.Tensor) and attention.dim() == 5:
        pass
    elif isinstance(attention, (tuple, list)) and attention and all(isinstance(a, torch.Tensor) for a in attention):
        shapes = {tuple(a.shape[-3:]) for a in attention}
        if len(shapes) > 1 or any(a.dim() not in (3, 4) for a in attention):
            raise ValueError(f"The {what} layers must all be [batch, heads, queries, keys] of one shape, got shapes "
                             f"{sorted({tuple(a.shape) for a in attention})[:3]}.")
        attention = torch.stack([a if a.dim() == 4 else a[None] for a in attention])
    elif isinstance(attention, (tuple, list)) and not attention:
        raise ValueError(f"The {what} is empty: it holds no layers. (transformers returns weights with "
                         "output_attentions=True, and only in eager attention; explorer.show(model, inputs) reads "
                         "any attention implementation.)")
    else:
        raise TypeError(f"The {what} must be the tuple of per-layer tensors that output_attentions returns, or one "
                        f"[layers, heads, queries, keys] tensor, got {type(attention).__name__}.")
    return attention.detach().to("cpu", torch.float32)


def pick(chosen, what: str, count: int, empty: list[int] | None = None) -> list[int]:
    """``chosen`` indices of ``count`` (``empty``, all by default, when None or empty, as bertviz takes them); a
    ValueError in words for an index out of range or anything but whole numbers."""
    none = list(range(count)) if empty is None else empty
    if chosen is None:
        return none
    if isinstance(plain(chosen), int) and not isinstance(plain(chosen), bool):
        chosen = [chosen]
    return [index(number, what, count) for number in items(chosen, f"{what}s to include")] or none


def pretty(tokens) -> list[str]:
    """bertviz's ``prettify_tokens``: the word-start marks of byte-level and SentencePiece tokenizers as spaces."""
    if not isinstance(tokens, (list, tuple)):
        return tokens  # not a list of labels: labels() reads or refuses it
    return [str(t).replace("\u0120", " ").replace("\u2581", " ").replace("</w>", "") for t in tokens]


def weights_reading(obj, tokens=None, key_tokens=None, item: int = 0) -> Reading:
    """A reading of weights handed over as they are: an ``AttentionMaps``, the ``output_attentions`` tuple (with
    ``tokens``), a ``[layers, heads, queries, keys]`` tensor, or a model output with ``attentions`` (or an
    encoder-decoder's ``encoder_attentions``, ``decoder_attentions`` and ``cross_attentions``)."""
    if isinstance(obj, AttentionMaps):
        if tokens is not None or key_tokens is not None:
            obj = AttentionMaps(tokens=labels(tokens, len(obj.tokens)) if tokens is not None else obj.tokens,
                                weights=obj.weights, meta=obj.meta, key_tokens=None if obj.key_tokens is None and
                                key_tokens is None else labels(key_tokens if key_tokens is not None else obj.keys,
                                                                len(obj.keys), "key tokens"))
        check_finite(obj.weights, "")
        names = tuple(str(obj.meta.layer_offset + layer) for layer in range(obj.n_layers))
        part = obj.meta.kind or "self-attention"
        return Reading(parts={part: obj}, layer_names={part: names}, notice=obj.meta.notice)
    if getattr(obj, "cross_attentions", None):
        return bertviz_reading(encoder_attention=obj.encoder_attentions, decoder_attention=obj.decoder_attentions,
                               cross_attention=obj.cross_attentions, encoder_tokens=key_tokens, decoder_tokens=tokens,
                               prettify_tokens=False, item=item, numbered=True)
    if hasattr(obj, "attentions") and not isinstance(obj, (tuple, list, torch.Tensor)):
        obj = obj.attentions
    return bertviz_reading(obj, tokens, prettify_tokens=False, item=item, numbered=True, key_tokens=key_tokens)


def bertviz_reading(attention=None, tokens=None, sentence_b_start=None, prettify_tokens=True, encoder_attention=None,
                    decoder_attention=None, cross_attention=None, encoder_tokens=None, decoder_tokens=None,
                    include_layers=None, include_heads=None, item: int = 0, numbered: bool = False,
                    key_tokens=None) -> Reading:
    """bertviz's arguments (``head_view``/``model_view``) as a reading with bertviz's parts: one self-attention, its
    sentence-pair slices (``sentence_b_start``), or an encoder-decoder's encoder, decoder and cross-attention.
    ``numbered`` lets tokens be left out (positions then); bertviz itself requires them."""
    prettify_tokens = flag(prettify_tokens, "prettify_tokens switch")
    given = {"encoder": (encoder_attention, encoder_tokens, encoder_tokens),
             "decoder": (decoder_attention, decoder_tokens, decoder_tokens),
             "cross": (cross_attention, decoder_tokens, encoder_tokens)}
    seq2seq = any(value is not None for value in (encoder_attention, decoder_attention, cross_attention))
    if attention is not None and (seq2seq or encoder_tokens is not None or decoder_tokens is not None):
        raise ValueError("Give either attention (a self-attention model's) or the encoder, decoder and cross "
                         "attention of an encoder-decoder, not both.")
    if attention is None and not seq2seq:
        raise ValueError("There is no attention to show: give attention= (with tokens=), or encoder_attention=, "
                         "decoder_attention= or cross_attention= (with their tokens).")
    wanted = {"self-attention": (attention, tokens, tokens if key_tokens is None else key_tokens)} \
        if attention is not None else \
        {name: value for name, value in given.items() if value[0] is not None}
    parts, names, notices, heads = {}, {}, [], None
    for name, (weights, queries, keys) in wanted.items():
        what = "attention" if name == "self-attention" else f"{name} attention"
        if not numbered and (queries is None or keys is None):
            needed = "tokens" if name == "self-attention" else "encoder_tokens and decoder_tokens" \
                if name == "cross" else f"{name}_tokens"
            raise ValueError(f"The {what} needs its {needed}: the list of tokens it is over.")
        stacked = stack_layers(weights, what)
        if name == "self-attention" and key_tokens is None and stacked.shape[-1] != stacked.shape[-2]:
            keys = None  # keys that are not the queries, unnamed: numbered
        layers = pick(include_layers, "layer", stacked.shape[0])
        heads = pick(include_heads, "head", stacked.shape[2])
        chosen, notice = pick_item(stacked[layers][:, :, heads], item)
        check_finite(chosen, f" of the {what}" if name != "self-attention" else "")
        query_what, key_what = TOKEN_NAMES[name]
        queries = labels(pretty(queries) if prettify_tokens and queries is not None else queries, chosen.shape[2],
                         query_what)
        keys = labels(pretty(keys) if prettify_tokens and keys is not None else keys, chosen.shape[3], key_what)
        parts[name] = AttentionMaps(tokens=queries, key_tokens=None if keys == queries else keys, weights=chosen,
                                    meta=MapsInfo(kind="cross-attention" if name == "cross" else "self-attention",
                                                  segment_b_start=sentence_b_start))
        names[name] = tuple(str(layer) for layer in layers)
        notices.append(notice)
    reading = Reading(parts=parts, layer_names=names, head_names=tuple(str(h) for h in heads),
                      notice=next((n for n in notices if n), ""), batch=stacked.shape[1], item=item)
    return pair_parts(reading, sentence_b_start) if sentence_b_start is not None else reading


def pair_parts(reading: Reading, start) -> Reading:
    """bertviz's sentence-pair filter: all tokens, and each sentence's attention to itself and to the other."""
    maps = reading.parts["self-attention"]
    n = len(maps.tokens)
    start = whole(start, "sentence_b_start (the position of sentence B's first token)", 1, n - 1)
    a, b = slice(0, start), slice(start, n)
    slices = {"all": (slice(None), slice(None)), "A -> A": (a, a), "B -> B": (b, b), "A -> B": (a, b), "B -> A": (b, a)}
    parts = {}
    for name, (rows, cols) in slices.items():
        queries, keys = maps.tokens[rows], maps.tokens[cols]
        parts[name] = AttentionMaps(tokens=queries, key_tokens=None if rows == cols else keys,
                                    weights=maps.weights[:, :, rows, cols], meta=maps.meta)
    reading.parts = parts
    reading.layer_names = {name: reading.layer_names["self-attention"] for name in parts}
    return reading


def context_length(model) -> int | None:
    """The most tokens a model reads, from its config (transformers, nanoGPT's ``block_size``, TransformerLens's
    ``n_ctx``); None when it does not say."""
    for config in (getattr(model, "config", None), getattr(model, "cfg", None)):
        for name in ("max_position_embeddings", "n_positions", "block_size", "n_ctx", "max_seq_len"):
            value = getattr(config, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10_000_000:
                return value
    return None


def cut_notice(full: int, kept: int, limit_from: str) -> str:
    return (f"The input is {full:,} tokens long; {limit_from} reads at most {kept:,}, so it was cut to the first "
            f"{kept:,} tokens (the rest is not shown).")


def maps_bytes(shapes) -> int:
    """Bytes that float32 maps of these ``(heads, queries, keys)`` shapes take."""
    return sum(4 * math.prod(shape) for shape in shapes)


def ablation_effect(reading: Reading, base: Reading) -> Reading:
    """``reading`` (with heads ablated) with how far each layer's maps moved from ``base`` (the same input without
    the ablation), per part whose maps are whole, and the cosine of the model's output before and after."""
    for part, maps in reading.parts.items():
        before = base.parts.get(part)
        if isinstance(maps, AttentionMaps) and isinstance(before, AttentionMaps) \
                and before.weights.shape == maps.weights.shape:
            reading.change[part] = (maps.weights - before.weights).abs().amax(dim=(1, 2, 3))
    if reading.output is not None and base.output is not None and reading.output.shape == base.output.shape:
        reading.cosine = float(torch.nn.functional.cosine_similarity(reading.output.flatten()[None],
                                                                     base.output.flatten()[None]).item())
    return reading
