"""Readouts of the lab's own Transformers (``explorer.models.readout`` says what a readout is).

The output is the log-probability of what the trained model predicts for the unchanged input: its class (a
classifier), its token at ``position`` (a per-token model), or its token at target ``position`` of its own greedy
translation (the encoder-decoder, whose decoder inputs stay fixed while source tokens change). A lab model has no
token that means "nothing", so a replaced token becomes the zero vector in the embedding (its position stays).
The model is copied first, so training may go on meanwhile.
"""

from __future__ import annotations

import copy

import torch

from explorer.hooks import capture
from explorer.maps import rollout_weights
from explorer.models.readout import Mixing, Readout, _check_length, _check_position, transformed_values

ZERO = "a zero vector"


def lab_ids(ids, vocab_size: int) -> torch.Tensor:
    """A lab model's input as a 1-D tensor of token ids; a ValueError for anything else."""
    try:
        ids = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError):
        ids = None
    if ids is None or ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError("A lab model reads token ids: give a list (or 1-D tensor) of whole numbers.")
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"Token ids must lie in 0..{vocab_size - 1} for this model's vocabulary.")
    return ids.long()


def _name(names, i: int) -> str:
    return str(names[i]) if names is not None and 0 <= i < len(names) else str(i)


class LabReadout(Readout):
    """A ``TinyTransformer``: its predicted class, or its predicted token at ``position``."""

    def __init__(self, model, ids, position: int = -1, limit: int = 64, names=None, classes=None):
        model = copy.deepcopy(model).eval()
        config = model.config
        ids = lab_ids(ids, config.vocab_size)
        self.classify, self.cls = config.pooling is not None, config.pooling == "cls"
        if self.classify and position != -1:
            raise ValueError("A classifier's output is one class for the whole sequence: leave the position at -1.")
        self.p = len(ids) - 1 if self.classify else _check_position(position, len(ids))
        if config.causal:  # later tokens are not read
            ids = ids[: self.p + 1]
        _check_length(len(ids), limit)
        self.keys = slice(1, None) if self.cls else slice(None)  # the input tokens among the keys
        super().__init__(model, model.embed.tokens, ids, [_name(names, i) for i in ids.tolist()], [True] * len(ids),
                         first=1 if self.cls else 0)
        with torch.no_grad(), capture(model) as captured:
            logits = model(ids[None])[0]
        self.weights = model.attention(captured)["self"][0]  # [L, H, T, T] (T + 1 with [CLS])
        self.values = captured.stack("blocks.*.self_attention.hook_v")[0]  # [L, H, T, d_head]
        self.projections = [block.self_attention.out_proj for block in model.blocks]
        self.target = int((logits if self.classify else logits[self.p]).argmax())
        self.what = (f"log P(class {_name(classes, self.target)})" if self.classify
                     else f"log P({_name(names, self.target)!r} at position {self.p})")
        self.replace_with(torch.zeros(self.inputs.shape[-1]), ZERO)
        self.n_layers = config.n_layers

    def looked_up(self, ids):
        if not self.cls:
            return ids
        return torch.cat([torch.full_like(ids[:, :1], self.module.cls_id), ids], dim=1)

    def measure(self, ids):
        logits = self.module(ids)
        return (logits if self.classify else logits[:, self.p]).float().log_softmax(dim=-1)[:, self.target]

    def row(self, matrix: torch.Tensor) -> torch.Tensor:
        """The output's query over the input tokens: [CLS]'s row, the mean row of a pooled output, or row p."""
        if self.cls:
            return matrix[..., 0, 1:]
        return matrix.mean(dim=-2) if self.classify else matrix[..., self.p, :]

    def mixing(self, layer: int) -> Mixing:
        heads = self.weights.shape[1]
        transformed = transformed_values(self.values[layer], self.projections[layer], heads)[:, self.keys]
        return Mixing(self.row(self.weights[layer]), self.row(rollout_weights(self.weights))[layer], transformed)


class Seq2SeqReadout(Readout):
    """A ``TinySeq2Seq``: the predicted token at target ``position`` of its greedy translation, over the source."""

    def __init__(self, model, ids, position: int = -1, limit: int = 64, names=None, length: int | None = None):
        model = copy.deepcopy(model).eval()
        ids = lab_ids(ids, model.config.vocab_size)
        _check_length(len(ids), limit)
        with torch.no_grad():
            written = model.generate(ids[None], length)[0]  # [T]
        self.p = _check_position(position, len(written))
        self.decoder_inputs = torch.cat([torch.tensor([model.bos_id]), written[: self.p]])[None]  # [1, p + 1]
        super().__init__(model, model.source_embed.tokens, ids, [_name(names, i) for i in ids.tolist()],
                         [True] * len(ids))
        with torch.no_grad(), capture(model) as captured:
            model(ids[None], self.decoder_inputs)
        maps = model.attention(captured)
        self.encoder, self.cross = maps["encoder"][0], maps["cross"][0]  # [L, H, S, S], [L, H, p + 1, S]
        self.values = captured.stack("decoder.*.cross_attention.hook_v")[0]  # [L, H, S, d_head]
        self.projections = [block.cross_attention.out_proj for block in model.decoder]
        self.target = int(written[self.p])
        self.what = f"log P({_name(names, self.target)!r} written at position {self.p})"
        self.replace_with(torch.zeros(self.inputs.shape[-1]), ZERO)
        self.n_layers = model.config.n_layers

    def measure(self, ids):
        logits = self.module(ids, self.decoder_inputs.expand(len(ids), -1))[:, -1]
        return logits.float().log_softmax(dim=-1)[:, self.target]

    def mixing(self, layer: int) -> Mixing:
        """Cross-attention of decoder layer ``layer`` at the written position; its rollout reads the source tokens
        through the encoder's rollout (the memory it attends to is already a mix of them)."""
        weights = self.cross[layer][:, -1]  # [H, S]
        rolled = weights.mean(dim=0) @ rollout_weights(self.encoder)[-1]
        transformed = transformed_values(self.values[layer], self.projections[layer], weights.shape[0])
        return Mixing(weights, rolled, transformed)
