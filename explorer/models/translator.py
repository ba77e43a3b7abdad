"""The encoder-decoder as a translator: a probe that scores its cross-attention while it trains, and greedy
decoding of any text with the cross-attention of every character it writes.

Both read the very weights of the pass (``explorer.hooks.capture``); the probe's exact match is measured with
teacher forcing, which equals greedy decoding's: greedy writes the target exactly when every next character,
given the right ones before it, is the most likely.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from explorer.alignment import alignment_masks, alignment_score
from explorer.data.translation import END, PAD, encode
from explorer.hooks import capture
from explorer.maps import AttentionMaps, MapsInfo, Snapshot, Translation

CROSS = "decoder.*.cross_attention.hook_pattern"


def _vocabulary(split) -> list[str]:
    return list(split.features["input_ids"].feature.names)


def cross_attention(model: nn.Module, inputs: torch.Tensor, decoder_inputs: torch.Tensor) -> tuple:
    """Logits ``[B, T, vocab]`` and the cross-attention of the pass ``[B, layers, heads, T, S]``."""
    with capture(model, CROSS) as captured:
        logits = model(inputs, decoder_inputs)
    return logits, captured.stack(CROSS)


def translation_probe(data, index: int = 0, n_examples: int = 64) -> Callable[[nn.Module], Snapshot]:
    """The cross-attention on test example ``index`` (target characters x source characters, padding cut off),
    its greedy translation, and over the first ``n_examples`` test examples the exact match and every head's
    alignment score (None when the data has no known alignment, as for a user's pairs)."""
    split = data["test"]
    vocab = _vocabulary(split)
    rows = split.select(range(min(n_examples, len(split))))
    batch = rows.with_format("torch", columns=["input_ids", "labels"])[:]
    inputs, labels = batch["input_ids"], batch["labels"]
    masks = alignment_masks(rows["alignment"], labels.shape[1], inputs.shape[1])
    scored = bool(masks.any())
    n_source = int((inputs[index] != vocab.index(PAD)).sum())
    n_target = int((labels[index] != -100).sum())
    source = [vocab[i] for i in inputs[index, :n_source].tolist()]
    target = tuple(vocab[i] for i in labels[index, :n_target].tolist())

    def probe(model: nn.Module) -> Snapshot:
        logits, cross = cross_attention(model, inputs, model.decoder_inputs(labels))
        counted = labels != -100
        exact = float(((logits.argmax(dim=-1) == labels) | ~counted).all(dim=1).float().mean())
        scores = tuple(tuple(row) for row in alignment_score(cross, masks).tolist()) if scored else None
        written = model.generate(inputs[index: index + 1], n_target)[0]
        maps = AttentionMaps(tokens=target, key_tokens=source, weights=cross[index, :, :, :n_target, :n_source],
                             meta=MapsInfo(kind="cross-attention"))
        return Snapshot(0, maps, tuple(vocab[i] for i in written.tolist()), target, exact_match=exact, alignment=scores)

    return probe


@torch.no_grad()
def translate(model: nn.Module, vocab: list[str], text: str, source_length: int, target_length: int) -> Translation:
    """Greedy decoding of ``text``: at most ``target_length`` characters and ``<end>``."""
    source = str(text)[:source_length]
    inputs = torch.tensor([encode(source, vocab, source_length)])
    written = model.generate(inputs, target_length + 1)[0].tolist()
    end = vocab.index(END)
    ended = end in written
    written = written[: written.index(end) + 1] if ended else written
    decoder_inputs = torch.tensor([[model.bos_id, *written[:-1]]])
    _, cross = cross_attention(model, inputs, decoder_inputs)
    names = [vocab[i] for i in written]
    keys = [vocab[i] for i in inputs[0, :len(source)].tolist()]
    maps = {"cross": AttentionMaps(tokens=names, key_tokens=keys, weights=cross[0, :, :, :, :len(source)],
                                   meta=MapsInfo(kind="cross-attention"))} if source else {}
    output = "".join(" " if n == "␣" else n for n in names if n != END)
    unknown = tuple(sorted({c for c, k in zip(source, keys) if k == "<unk>"}))
    return Translation(source, output, maps, tuple(names), cut=len(str(text)) > source_length, unknown=unknown,
                       ended=ended)
