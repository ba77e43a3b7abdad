"""Any ``nn.Module``'s attention, read at its attention calls (``explorer.capture``): a nanoGPT-style GPT, a ViT in
timm's style, ``nn.TransformerEncoder``, a transformers model in SDPA mode, or a model of one's own.

The model runs once, in eval mode (its own mode is put back after), inside ``capture_attention(model, lazy=True)``:
each call keeps its queries and keys, and its maps are worked out when asked for. Calls are grouped into *parts* by
the path of the module that made them with layer numbers taken out (``encoder.layer.*.attention.self``) and by
their shape, so an encoder-decoder's encoder, decoder and cross-attention come apart by themselves. A part whose
maps fit in ``MAX_KEPT_BYTES`` is worked out whole; a longer one stays a ``LazyAttentionMaps``
(``explorer.lazy_maps``) that works out what is on screen: a pooled head, a zoomed region, a head or a layer.

Head ablation zeroes a head's output at its SDPA call (``zero_heads``), where the heads are still apart:
``nn.MultiheadAttention`` merges them inside, so its heads cannot be ablated from outside.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from explorer.capture import LOOKED_FOR, MHA, SDPA, capture_attention
from explorer.arguments import items
from explorer.lazy_maps import LazyAttentionMaps
from explorer.maps import MAX_TOKENS, MapsInfo
from explorer.models.hf import first_line
from explorer.models.reading import Stopped
from explorer.models.shown import (MAX_KEPT_BYTES, Reading, ablation_effect, batch_notice, check_finite, check_item,
                                     context_length, cut_notice, labels, maps_bytes)

OUTPUT_BYTES = 64_000_000  # a model output larger than this is not kept for the ablation's comparison
CROSS_NAMES = ("encoder_attn", "crossattention", "cross_attn", "cross_attention", "encdecattention")


class zero_heads(TorchFunctionMode):
    """Zero the output of some heads at their attention call: ``{call index: [heads]}``, calls counted as
    ``capture_attention`` counts them (SDPA and ``nn.MultiheadAttention``, in order). Enter it inside the capture."""

    def __init__(self, heads: dict):
        super().__init__()
        self.heads, self.count = {int(c): sorted(set(h)) for c, h in heads.items()}, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not SDPA and func is not MHA:
            return func(*args, **kwargs)
        index, self.count = self.count, self.count + 1
        if index in self.heads and func is MHA:
            raise ValueError(f"Attention call {index} is an nn.MultiheadAttention, which merges its heads inside: its "
                             "heads cannot be ablated one by one (calls to scaled_dot_product_attention can).")
        output = func(*args, **kwargs)
        if index in self.heads:
            output = output.clone()
            output[..., self.heads[index], :, :] = 0.0  # [..., heads, queries, d]: the heads are still apart
        return output


def quoted(error: BaseException, kind: str = "") -> str:
    """The first line of an error raised inside the user's own model (after its ``kind``), in quotation marks: it is
    their code's words, shown as they are so they can find it, and marked as a quote so it is not read as ours."""
    return f"\u201c{kind + ': ' if kind else ''}{first_line(error).rstrip('.')}\u201d"


def run_forward(model: nn.Module, forward, ablate=(), watch=None):
    """``forward()`` inside a lazy capture, in eval mode and without gradients: ``(captured, output)``.
    ``ablate`` lists ``(call, head)`` pairs to zero; ``watch(call)`` hears each attention call as it is made (a
    ``LayerWatch``: progress, and Stop by raising ``Stopped``). A forward that raises leaves nothing behind and says
    why."""
    heads: dict = {}
    for call, head in ablate:
        heads.setdefault(call, []).append(head)
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture_attention(model, lazy=True) as captured, zero_heads(heads):
            if watch is not None:
                captured.listeners.append(watch)
            output = forward()
    except Stopped:
        raise
    except ValueError as error:
        raise ValueError(f"The model's forward stopped: {quoted(error)}. Nothing was captured, and the previous view "
                         "stays.") from None
    except Exception as error:  # noqa: BLE001 - any error of the user's model becomes a sentence, and nothing is kept
        raise ValueError(f"The model's forward raised an error, {quoted(error, type(error).__name__)}. Nothing was "
                         "captured, and the previous view stays.") from None
    finally:
        model.train(training)
    if not len(captured):
        raise ValueError(f"The model made no call to {LOOKED_FOR} while it ran, and that is where the explorer reads "
                         "attention. A model that multiplies queries and keys itself is not seen: pass its weights "
                         "instead, show(weights, tokens=...).")
    return captured, output


def part_name(pattern: str, alone: bool) -> str:
    """A part's name: "self-attention" when it is the only one, else encoder, decoder, cross or its module path."""
    lowered = pattern.lower()
    if alone:
        return "self-attention"
    if any(name in lowered for name in CROSS_NAMES):
        return "cross"
    if lowered.startswith("encoder") or ".encoder." in lowered:
        return "encoder"
    if "decoder" in lowered:
        return "decoder"
    return pattern or "calls"


def group_calls(captured) -> dict[str, list[int]]:
    """Calls grouped by their module path with layer numbers taken out, and by shape: ``{part: [call indices]}``."""
    groups: dict = {}
    for index, call in enumerate(captured.calls):
        pattern = re.sub(r"(^|\.)\d+(?=\.|$)", r"\1*", call.name)
        groups.setdefault((pattern, call.shape[1:]), []).append(index)
    parts: dict = {}
    for (pattern, shape), calls in groups.items():
        name = part_name(pattern, len(groups) == 1)
        if name in parts:
            name = f"{name} ({shape[1]} x {shape[2]})"
        parts[name] = calls
    return parts


def patch_labels(n: int) -> tuple[str, ...] | None:
    """"CLS", "r0c0", "r0c1", ... for ``n`` tokens over a square grid of patches (with or without a CLS token)."""
    for special in (0, 1):
        side = math.isqrt(n - special)
        if n - special > 1 and side * side == n - special:
            return ("CLS",) * special + tuple(f"r{r}c{c}" for r in range(side) for c in range(side))
    return None


def call_pairs(base: Reading, ablate) -> tuple:
    """``(part, layer, head)`` heads as the ``(call, head)`` pairs ``zero_heads`` takes, from a reading's calls."""
    pairs = []
    for part, layer, head in ablate:
        if part not in base.calls:
            raise ValueError(f"There is no '{part}' attention to ablate in; choose one of: {', '.join(base.calls)}.")
        calls, n_heads = base.calls[part], base.parts[part].n_heads
        if not 0 <= layer < len(calls) or not 0 <= head < n_heads:
            raise ValueError(f"Layer {layer}, head {head} does not exist: the {part} has layers 0 to {len(calls) - 1} "
                             f"and heads 0 to {n_heads - 1}.")
        pairs.append((calls[layer], head))
    return tuple(pairs)


class ModuleReader:
    """Reads any ``nn.Module`` called on ``inputs`` (a tensor, a tuple of arguments or a dict of keyword arguments)."""

    accepts_text = False
    can_generate = False
    can_ablate = True

    def __init__(self, model: nn.Module, tokens=None, key_tokens=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"This reader needs a torch nn.Module, got {type(model).__name__}.")
        if any(p.is_meta for p in model.parameters()):
            raise ValueError("The model is on the meta device: its weights are not loaded, so it computes no attention. "
                             "Load its weights first (from_pretrained, or to_empty() then load_state_dict()).")
        # labels are checked before the model runs: a list of anything, never text read as one label per character
        tokens, key_tokens = (None if t is None else tuple(map(str, items(t, what, MAX_TOKENS)))
                              for t, what in ((tokens, "tokens"), (key_tokens, "key tokens")))
        self.model, self.tokens, self.key_tokens = model, tokens, key_tokens
        self.name = type(model).__name__
        self._base: tuple | None = None  # (key, reading) of the last reading without ablation

    def read(self, inputs, item: int = 0, ablate=(), watch=None) -> Reading:
        """The attention of one forward pass over ``inputs`` (batch ``item`` shown). ``ablate`` lists
        ``(part, layer, head)`` heads to zero; the reading then says how far each layer's maps and the output moved.
        ``watch`` hears each attention call of the pass (``run_forward``)."""
        if not ablate:
            return self.read_once(inputs, item, watch)
        base = self.captured_base(inputs, item)
        reading = self.read_captured(inputs, item, call_pairs(base, ablate), watch)
        reading.ablated = tuple((str(part), int(layer), int(head)) for part, layer, head in ablate)
        return ablation_effect(reading, base)

    def read_once(self, inputs, item: int, watch=None) -> Reading:
        return self.read_captured(inputs, item, (), watch)

    def captured_base(self, inputs, item: int) -> Reading:
        """The capture of ``inputs`` without ablation (it numbers the calls), kept while the inputs stay the same."""
        key = (inputs if isinstance(inputs, str) else id(inputs), item)
        if self._base is None or self._base[0] != key:
            self._base = (key, self.read_captured(inputs, item, ()))
        return self._base[1]

    def read_captured(self, inputs, item: int, ablate, watch=None) -> Reading:
        """One forward pass inside the capture, ``(call, head)`` pairs zeroed."""
        inputs, notice = self.cut(inputs)
        image = isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and inputs.dim() == 4
        captured, output = run_forward(self.model, lambda: self.call(inputs), ablate, watch)
        reading = self.reading(captured, output, item, notice, lambda part, q, k: self.part_labels(part, q, k, image))
        side = math.isqrt(sum(t.startswith("r") for t in next(iter(reading.parts.values())).tokens)) if image else 0
        if side and inputs.shape[-1] % side == 0 and inputs.shape[-2] == inputs.shape[-1]:  # a square grid of patches
            reading.image, reading.grid = inputs[item:item + 1].detach().float(), (side, side)
        return reading

    def call(self, inputs):
        if isinstance(inputs, dict):
            return self.model(**inputs)
        if isinstance(inputs, tuple):
            return self.model(*inputs)
        return self.model(inputs)

    def cut(self, inputs) -> tuple[object, str]:
        """Token ids longer than the model's context cut to it, with the notice that says so."""
        limit = context_length(self.model)
        if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point() and limit and inputs.shape[-1] > limit:
            return inputs[..., :limit], cut_notice(inputs.shape[-1], limit, self.name)
        return inputs, ""

    def reading(self, captured, output, item: int, notice: str, part_labels) -> Reading:
        """The captured calls as parts, labelled by ``part_labels(part, queries, keys)``."""
        parts = group_calls(captured)
        self.can_ablate = any(call.query is not None for call in captured.calls)  # SDPA calls keep their heads apart
        batch = max(captured.calls[i].shape[0] for i in range(len(captured)))
        check_item(item, batch)
        notices = [notice, batch_notice(batch, item) if batch > 1 else ""]
        shapes = [captured.calls[i].shape[1:] for i in range(len(captured))]
        whole = maps_bytes(shapes) <= MAX_KEPT_BYTES
        maps, names = {}, {}
        for name, calls in parts.items():
            for index in calls:
                self.check_call(captured.calls[index], index)
            _, _, n_queries, n_keys = captured.calls[calls[0]].shape
            queries, keys = part_labels(name, n_queries, n_keys)
            meta = MapsInfo(source=self.name, kind="cross-attention" if name == "cross" else "self-attention",
                            notice=" ".join(n for n in notices if n))
            kept = [captured.calls[i] for i in calls]
            if whole or any(call.query is None for call in kept):  # nn.MultiheadAttention's weights are already made
                maps[name] = replace(captured.maps(calls, queries, keys, item), meta=meta)
            else:
                maps[name] = LazyAttentionMaps(queries, kept, keys, meta, item)
            names[name] = tuple(captured.calls[i].name or str(i) for i in calls)
        self.check_tokens(maps)
        return Reading(parts=maps, layer_names=names, calls=parts, notice=" ".join(n for n in notices if n),
                       batch=batch, item=item, output=kept_output(output))

    def part_labels(self, part: str, n_queries: int, n_keys: int, image: bool) -> tuple[tuple, tuple | None]:
        """Labels of a part's queries and keys: the tokens given where their count fits, patches for an image's
        square grid, else positions."""
        given = [t for t in (self.tokens, self.key_tokens) if t is not None]
        queries = next((tuple(map(str, t)) for t in given if len(t) == n_queries), None)
        keys = next((tuple(map(str, t)) for t in given[::-1] if len(t) == n_keys), None)
        if image and not given:
            queries, keys = patch_labels(n_queries), patch_labels(n_keys)
        queries = queries or labels(None, n_queries)
        keys = keys or labels(None, n_keys)
        return queries, None if keys == queries else keys

    def check_tokens(self, maps: dict) -> None:
        """Tokens given by the user must fit some part's queries."""
        if self.tokens is not None and not any(len(m.tokens) == len(self.tokens) for m in maps.values()):
            counts = sorted({len(m.tokens) for m in maps.values()})
            raise ValueError(f"You gave {len(self.tokens)} tokens, but the attention maps are over "
                             f"{' or '.join(map(str, counts))} positions: give one label per position (or none, to "
                             "number them).")

    @staticmethod
    def check_call(call, index: int) -> None:
        """NaN or inf in a call's weights (or in the queries and keys they are worked out from) is refused."""
        if call.weights is not None:
            return check_finite(call.weights, f" of call {index} ({call.name or 'the model'})")
        if not (bool(torch.isfinite(call.query).all()) and bool(torch.isfinite(call.key).all())):
            raise ValueError(f"The attention maps of call {index} ({call.name or 'the model'}) would hold NaN or inf "
                             "values (its queries or keys do): they cannot be drawn. A model whose training diverged, "
                             "or an input out of range, gives these.")


def kept_output(output) -> torch.Tensor | None:
    """The model's main output (logits, last hidden state, or the first tensor it returns), when small enough."""
    for name in ("logits", "last_hidden_state", "sample"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            output = value
            break
    if isinstance(output, (tuple, list)):
        output = next((value for value in output if isinstance(value, torch.Tensor)), None)
    if not isinstance(output, torch.Tensor) or output.numel() * 4 > OUTPUT_BYTES:
        return None
    return output.detach().to("cpu", torch.float32)
