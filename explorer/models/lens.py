"""TransformerLens models and caches: the attention patterns at their ``hook_pattern`` points.

TransformerLens computes each head's pattern itself and exposes it at ``blocks.{layer}.attn.hook_pattern``
(``[batch, head, query, key]``), so the explorer reads it there: from an ``ActivationCache`` already made, or by
running the model with ``run_with_cache``. In TransformerLens 4, ``HookedTransformer`` became ``TransformerBridge``
(``TransformerBridge.boot_native(config)`` builds one from a small config); both have ``run_with_cache``, ``hooks``
and ``to_str_tokens``, which is all this reader uses. A head is ablated by zeroing its ``hook_z`` (its output before
the output projection). transformer-lens is an optional extra; nothing here imports it.
"""

from __future__ import annotations

import re

import torch

from explorer.models.hf import first_line
from explorer.models.shown import Reading, ablation_effect, bertviz_reading, context_length, cut_notice

PATTERN = re.compile(r"^blocks\.(\d+)\.attn\.hook_pattern$")


def is_lens(obj) -> bool:
    """A TransformerLens model or cache (checked by its module, so transformer-lens need not be imported)."""
    return type(obj).__module__.startswith("transformer_lens")


def cache_reading(cache, tokens=None, item: int = 0) -> Reading:
    """The patterns of an ``ActivationCache`` (every ``blocks.{layer}.attn.hook_pattern`` in it)."""
    names = sorted(((int(m.group(1)), name) for name in cache.keys() if (m := PATTERN.match(name))))
    if not names:
        raise ValueError("This ActivationCache holds no attention patterns (blocks.{layer}.attn.hook_pattern): run "
                         "the model with run_with_cache and no names_filter, or one that keeps the patterns.")
    patterns = [cache[name] for _, name in names]
    if patterns[0].dim() == 3:  # run_with_cache(remove_batch_dim=True)
        patterns = [p[None] for p in patterns]
    reading = bertviz_reading([p.detach() for p in patterns], tokens, prettify_tokens=False, item=item, numbered=True)
    reading.layer_names = {part: tuple(name for _, name in names) for part in reading.parts}
    return reading


class LensReader:
    """Runs a TransformerLens model on text (with its tokenizer) or token ids and reads its cached patterns."""

    can_ablate = True
    can_generate = False

    def __init__(self, model, tokens=None):
        if not hasattr(model, "run_with_cache"):
            raise TypeError(f"This reads TransformerLens models (with run_with_cache), got {type(model).__name__}.")
        self.model, self.tokens = model, tokens
        self.name = type(model).__name__
        self.accepts_text = getattr(model, "tokenizer", None) is not None
        self._base: tuple | None = None

    def read(self, inputs, item: int = 0, ablate=(), watch=None) -> Reading:
        """The patterns of one run over ``inputs``; ``(part, layer, head)`` heads zeroed at ``hook_z`` (a
        HookedTransformer computes its patterns itself, with no SDPA call for ``watch`` to hear)."""
        ablate = tuple((str(part), int(layer), int(head)) for part, layer, head in ablate)
        reading = self.read_once(inputs, item, ablate)
        if not ablate:
            self._base = ((inputs if isinstance(inputs, str) else id(inputs), item), reading)
            return reading
        key = (inputs if isinstance(inputs, str) else id(inputs), item)
        if self._base is None or self._base[0] != key:
            self._base = (key, self.read_once(inputs, item, ()))
        return ablation_effect(reading, self._base[1])

    def read_once(self, inputs, item: int, ablate) -> Reading:
        ids, tokens, notice = self.encode(inputs)
        hooks = [(f"blocks.{layer}.attn.hook_z", zero(head)) for _, layer, head in ablate]
        try:
            with torch.no_grad(), self.model.hooks(fwd_hooks=hooks):
                output, cache = self.model.run_with_cache(ids, names_filter=lambda name: bool(PATTERN.match(name)))
        except Exception as error:  # noqa: BLE001 - the user's model: its error becomes a sentence
            raise ValueError(f"The model's forward raised {type(error).__name__}: {first_line(error)} Nothing was "
                             "read, and the previous view stays.") from None
        reading = cache_reading(cache, tokens, item)
        reading.notice = " ".join(n for n in (notice, reading.notice) if n)
        reading.calls = {part: tuple(range(maps.n_layers)) for part, maps in reading.parts.items()}
        reading.output = output.detach().float() if isinstance(output, torch.Tensor) else None
        reading.ablated, reading.text = ablate, inputs if isinstance(inputs, str) else ""
        return reading

    def encode(self, inputs) -> tuple[torch.Tensor, tuple | None, str]:
        """Token ids ``[batch, tokens]`` cut to the model's context, their labels, and the notice of a cut."""
        if isinstance(inputs, str):
            if not self.accepts_text:
                raise ValueError("This TransformerLens model has no tokenizer: give token ids (a tensor) and tokens=.")
            if not inputs.strip():
                raise ValueError("The text is empty: type a sentence to see its attention.")
            ids = self.model.to_tokens(inputs)
        elif isinstance(inputs, torch.Tensor) and not inputs.is_floating_point():
            ids = inputs if inputs.dim() == 2 else inputs[None]
        else:
            raise TypeError(f"A TransformerLens model reads text or token ids (an integer tensor), got "
                            f"{type(inputs).__name__}.")
        limit, notice = context_length(self.model), ""
        if limit and ids.shape[-1] > limit:
            ids, notice = ids[:, :limit], cut_notice(ids.shape[-1], limit, self.name)
        tokens = self.tokens
        if tokens is None and self.accepts_text:
            tokens = tuple(self.model.to_str_tokens(ids[0]))
        return ids, tokens, notice


def zero(head: int):
    def hook(z, hook=None):  # [batch, position, head, d_head]
        z[:, :, head] = 0.0
        return z

    return hook
