"""One model, one input, one output: what a faithfulness check changes and what it measures.

A ``Readout`` holds the input's word embeddings (the output of the model's token-embedding layer), the embedding
each token is replaced by (the baseline), and ``output(embeddings)``: the model run on a batch of changed inputs,
``[B, T, d] -> [B]``. The embeddings enter through a forward hook on the embedding layer, so every model (a
Hugging Face encoder or decoder, a lab Transformer that puts a [CLS] token first) is changed the same way, and
Captum's gradients are taken in the same space. ``mixing(layer)`` reads the attention of the one unchanged pass
(``explorer.capture``, or ``output_attentions`` for a model loaded in eager mode) and the values at the value
projection, and gives per token: raw attention, rollout and value-weighted attention (Kobayashi et al. 2020).

    readout = readout_for(language_model, "The cat sat on the", position=-1)
    readout.output(readout.inputs[None])      # [1]: log P(next token) of the unchanged text
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from explorer.capture import capture_attention
from explorer.maps import rollout_weights

# (value projection, output projection) module suffixes of the architectures value-weighted attention reads.
VALUE_PROJECTIONS = (
    ("attention.self.value", "attention.output.dense"),  # BERT, MiniLM, RoBERTa
    ("self_attn.v_proj", "self_attn.o_proj"),  # Llama, SmolLM2, Qwen, Mistral
    ("attention.v_lin", "attention.out_lin"),  # DistilBERT
    ("attn.c_attn", "attn.c_proj"),  # GPT-2: queries, keys and values in one Conv1D
)


@dataclass(frozen=True)
class Mixing:
    """One layer's attention as it reaches the output's query: per head ``weights`` ``[H, n]`` over the tokens, the
    rollout row ``[n]``, and each token's transformed value ``[H, n, d]`` (its contribution before weighting)."""

    weights: torch.Tensor
    rollout: torch.Tensor
    transformed: torch.Tensor | None

    def importances(self) -> dict[str, torch.Tensor]:
        found = {"attention": self.weights.mean(dim=0), "rollout": self.rollout}
        if self.transformed is not None:  # || sum_h a_h f_h(x_j) ||, the norm of what token j adds (Kobayashi)
            found["value_norm"] = (self.weights[..., None] * self.transformed).sum(dim=0).norm(dim=-1)
        return found


class Readout:
    """The shared half: changed inputs in, one number per input out (see the module docstring)."""

    what = ""  # the output in words, e.g. "log P(' mat')"

    def __init__(self, module: nn.Module, embedding: nn.Module, ids: torch.Tensor, tokens, movable, first: int = 0):
        self.module, self.embedding = module, embedding
        self.ids = ids  # [T] the model's input ids
        self.tokens = tuple(tokens)
        self.movable = torch.as_tensor(movable, dtype=torch.bool)  # tokens a check may replace (not [CLS], [SEP])
        self.first = first  # the embedding position of token 0 (1 when the model puts its own [CLS] first)
        with torch.no_grad():
            self.inputs = self.embedding(self.looked_up(ids[None]))[0, first:].detach()  # [T, d]
        self.baseline = self.inputs.clone()
        self.baseline_name = ""

    def looked_up(self, ids: torch.Tensor) -> torch.Tensor:
        """What the model calls its embedding layer with (a lab classifier puts its [CLS] token in front)."""
        return ids

    def replace_with(self, vector: torch.Tensor, name: str) -> None:
        """Replaced tokens become ``vector`` (``[d]``); fixed tokens keep their own embedding."""
        self.baseline = torch.where(self.movable[:, None], vector.to(self.inputs.dtype), self.inputs)
        self.baseline_name = name

    def changed(self, replaced: torch.Tensor) -> torch.Tensor:
        """Inputs ``[B, T, d]`` with the tokens of each row of ``replaced`` ``[B, T]`` (bool) set to the baseline."""
        return torch.where(replaced[..., None], self.baseline, self.inputs)

    def output(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The measured output of each input ``[B, T, d]`` -> ``[B]`` (gradients flow when enabled)."""
        with self.substituted(embeddings):
            return self.measure(self.ids.expand(len(embeddings), -1))

    def substituted(self, embeddings: torch.Tensor):
        """For one call on this thread, the embedding layer's output at the tokens' positions is ``embeddings``."""
        thread, first = threading.get_ident(), self.first

        def hook(module, args, output):
            if threading.get_ident() != thread:
                return output
            return torch.cat([output[:, :first], embeddings.to(output.dtype)], dim=1) if first else embeddings.to(output.dtype)

        return _Hooked(self.embedding, hook)

    def measure(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mixing(self, layer: int) -> Mixing:
        raise NotImplementedError


class _Hooked:
    """A forward hook on ``module`` for the ``with`` block, always removed."""

    def __init__(self, module: nn.Module, hook):
        self.module, self.hook = module, hook

    def __enter__(self):
        self.handle = self.module.register_forward_hook(self.hook)

    def __exit__(self, *exc):
        self.handle.remove()


def transformed_values(values: torch.Tensor, projection: nn.Module, n_heads: int) -> torch.Tensor:
    """Each head's values ``[H_kv, K, d_head]`` through its slice of the output projection: ``[H, K, d_model]``.

    A head's output is ``a_h V_h W_O^h``, so ``f_h(x_j) = v_j^h W_O^h`` is what token j adds before it is weighted.
    Grouped-query heads share their key/value head's values. A Conv1D (GPT-2) keeps its weight as ``[in, out]``.
    """
    weight = projection.weight() if callable(projection.weight) else projection.weight  # a quantized Linear's is a method
    weight = (weight.dequantize() if weight.is_quantized else weight).detach().float()
    per_head = weight.T if type(projection).__name__ == "Conv1D" else weight  # [d_model, H * d_head]
    d_head = per_head.shape[1] // n_heads
    group = n_heads // values.shape[0]
    slices = per_head.reshape(per_head.shape[0], n_heads, d_head).permute(1, 2, 0)  # [H, d_head, d_model]
    return torch.stack([values[h // group].float() @ slices[h] for h in range(n_heads)])


class ValueTap:
    """Forward hooks on every layer's value projection for one pass, on the calling thread: the values where they
    are computed, ``[H_kv, T, d_head]`` per layer (batch item 0)."""

    def __init__(self, model: nn.Module, n_heads: int, n_kv_heads: int):
        self.pairs = _value_modules(model)
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.values: list[torch.Tensor] = []
        self.thread = threading.get_ident()

    def __enter__(self):
        self.handles = [value.register_forward_hook(self._keep) for value, _ in self.pairs]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()

    def _keep(self, module, args, output):
        if threading.get_ident() != self.thread:
            return
        out = output[0].detach()  # [T, width]
        if type(module).__name__ == "Conv1D":  # GPT-2's fused projection: queries, keys, values
            out = out[:, 2 * out.shape[-1] // 3:]
        self.values.append(out.reshape(out.shape[0], self.n_kv_heads, -1).transpose(0, 1))  # [H_kv, T, d_head]

    def transformed(self, layer: int) -> torch.Tensor | None:
        if len(self.values) != len(self.pairs) or not self.pairs:
            return None
        return transformed_values(self.values[layer], self.pairs[layer][1], self.n_heads)


def _value_modules(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    modules = dict(model.named_modules())
    for value_suffix, output_suffix in VALUE_PROJECTIONS:
        values = [name for name in modules if name.endswith(value_suffix)]
        if values:
            return [(modules[name], modules[name[: -len(value_suffix)] + output_suffix]) for name in values]
    return []


def hf_weights(model: nn.Module, ids: torch.Tensor) -> tuple[object, torch.Tensor]:
    """One pass over ``ids`` ``[1, T]``: the model's output and its attention ``[L, H, T, T]``, read at the SDPA call,
    or from ``output_attentions`` when the model computes attention by hand (eager mode)."""
    eager = getattr(model.config, "_attn_implementation", "eager") == "eager"
    with torch.no_grad(), capture_attention(model) as captured:
        output = model(ids, output_attentions=eager, **({"use_cache": False} if hasattr(model, "generate") else {}))
    if eager:
        return output, torch.stack(output.attentions)[:, 0].float()
    return output, captured.stack()[0]


def rolled_rows(weights: torch.Tensor, row) -> torch.Tensor:
    """The output query's rollout row ``[layers, n]`` from ``weights`` ``[L, H, T, T]``."""
    return row(rollout_weights(weights))


def _check_position(position, n: int) -> int:
    if isinstance(position, bool) or not isinstance(position, int):
        raise ValueError(f"The position is a token number, got {position!r}.")
    if not -n <= position < n:
        raise ValueError(f"Position {position} does not exist: the text has {n} tokens (positions 0 to {n - 1}).")
    return position % n


def _check_length(n: int, limit: int) -> None:
    if n < 2:
        raise ValueError("The output reads only one token, so there is nothing to compare: use a text of at least "
                         "two tokens (or a later position).")
    if n > limit:
        raise ValueError(f"The faithfulness check reads at most {limit} tokens (leave-one-out and the deletion curves "
                         f"run the model once per token); this output reads {n}. Use a shorter text or an earlier "
                         "position.")


class EncoderReadout(Readout):
    """A pretrained encoder's sentence embedding (the mean of its last token states), measured by its cosine
    similarity to the unchanged text's embedding. [CLS] and [SEP] stay in place; the others become [MASK]."""

    what = "cosine similarity of the sentence embedding to the unchanged text's"

    def __init__(self, encoder, text: str, position: int = -1, limit: int = 64):
        if position != -1:
            raise ValueError("An encoder's output here is the embedding of the whole sentence, which no one token "
                             "owns: leave the position at -1.")
        tokenizer = encoder.tokenizer
        ids = tokenizer(str(text).strip(), truncation=True, max_length=encoder.max_tokens)["input_ids"]  # as attend()
        _check_length(len(ids), limit)
        ids = torch.tensor(ids)
        special = encoder.special_ids
        super().__init__(encoder.model, encoder.model.get_input_embeddings(), ids, encoder.token_labels(ids.tolist()),
                         [i not in special for i in ids.tolist()])
        config = encoder.model.config
        with ValueTap(encoder.model, config.num_attention_heads, config.num_attention_heads) as self.tap:
            output, self.weights = hf_weights(encoder.model, ids[None])
        self.reference = output.last_hidden_state[0].mean(dim=0).detach()  # as PretrainedEncoder embeds a text
        mask = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.pad_token_id
        self.replace_with(self.embedding.weight[mask].detach(), tokenizer.convert_ids_to_tokens(mask))
        self.n_layers = len(self.weights)

    def measure(self, ids):
        states = self.module(ids).last_hidden_state.mean(dim=1)  # [B, hidden]
        return torch.nn.functional.cosine_similarity(states.float(), self.reference[None].float(), dim=-1)

    @staticmethod
    def row(matrix: torch.Tensor) -> torch.Tensor:
        return matrix.mean(dim=-2)  # the embedding is the mean of all tokens, so it reads the mean of their rows

    def mixing(self, layer: int) -> Mixing:
        return Mixing(self.row(self.weights[layer]), rolled_rows(self.weights, self.row)[layer],
                      self.tap.transformed(layer))


class DecoderReadout(Readout):
    """A language model's log-probability of the next token at ``position``: the text's own next token, or at the
    text's end the model's likeliest one. Tokens after the position are not read; replaced tokens become the
    tokenizer's unknown (or end-of-text) token, and the first token (the attention sink) stays."""

    def __init__(self, language_model, text, position: int = -1, limit: int = 64):
        all_ids = language_model.encode(text)[0] if isinstance(text, str) else _token_ids(text, language_model)
        p = _check_position(position, len(all_ids))
        _check_length(p + 1, limit)
        ids = torch.tensor(all_ids[: p + 1])
        model, special = language_model.model, set(language_model.tokenizer.all_special_ids)
        # The first token stays: a decoder parks its attention sink on it (lesson 05), so replacing it changes every
        # query's attention at once, and the straight path to the baseline then jumps where the sink moves (Captum's
        # delta on SmolLM2 was 0.07-20x the output's change at 64 steps with it, 0.007-2.2x without).
        super().__init__(model, model.get_input_embeddings(), ids, language_model.token_labels(ids.tolist()),
                         [k > 0 and i not in special for k, i in enumerate(ids.tolist())])
        config = model.config
        n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        with ValueTap(model, config.num_attention_heads, n_kv) as self.tap:
            output, self.weights = hf_weights(model, ids[None])
        logits = output.logits[0, -1].float()
        self.target = all_ids[p + 1] if p + 1 < len(all_ids) else int(logits.argmax())
        label = language_model.token_labels([self.target])[0]
        self.what = f"log P({label!r} next, after token {p})" + ("" if p + 1 < len(all_ids) else ": the model's own pick")
        self.keep_one = "logits_to_keep" in _parameters(model)
        tokenizer = language_model.tokenizer
        blank = next(i for i in (tokenizer.unk_token_id, tokenizer.eos_token_id, 0) if i is not None)
        self.replace_with(self.embedding.weight[blank].detach(), tokenizer.convert_ids_to_tokens(blank))
        self.n_layers = len(self.weights)

    def measure(self, ids):
        options = {"logits_to_keep": 1} if self.keep_one else {}
        logits = self.module(ids, use_cache=False, **options).logits[:, -1].float()  # [B, vocab]
        return logits.log_softmax(dim=-1)[:, self.target]

    @staticmethod
    def row(matrix: torch.Tensor) -> torch.Tensor:
        return matrix[..., -1, :]  # the query of the position whose next token is predicted

    def mixing(self, layer: int) -> Mixing:
        return Mixing(self.row(self.weights[layer]), rolled_rows(self.weights, self.row)[layer],
                      self.tap.transformed(layer))


def _token_ids(ids, language_model) -> list[int]:
    """A text given as its token ids (a generation's), checked against the vocabulary."""
    try:
        ids = [int(i) for i in ids]
    except (TypeError, ValueError):
        raise ValueError("Give the text as a string, or as a list of token ids.") from None
    size = len(language_model.tokenizer)
    if not ids or min(ids) < 0 or max(ids) >= max(size, language_model.model.config.vocab_size):
        raise ValueError(f"The token ids must be whole numbers from 0 to {size - 1}, and at least one.")
    return ids


def _parameters(model) -> set:
    import inspect

    return set(inspect.signature(model.forward).parameters)
