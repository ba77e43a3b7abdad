"""One door for building Hugging Face models in this process (``with hf.loading(): ...from_pretrained(...)``), and
the labels of their tokens.

While transformers builds a model it patches process-wide functions (``torch.nn.init``'s initialisers,
``PreTrainedModel.init_weights`` and ``PreTrainedModel.tie_weights``) and on exit puts back what it found. Two
loads in two threads (two tabs of one kernel loading at once) interleave: the second load finds the first one's
patch and restores it. From then on no tied weight is tied and no new layer is initialised, in the whole
process. That is how SmolLM2, whose output layer is tied to its embedding, once came back with an output layer
of zeros: every next token equally likely. ``tests/test_upstream.py`` shows the interleaving still leaks.

So every load in the explorer goes through ``loading()``: one at a time, and before and after each load the
originals are put back if anything (user code in the same kernel, too) left transformers' patches behind.
"""

from __future__ import annotations

import contextlib
import sys
import threading

from explorer.arguments import say_name, whole, whole_pairs
from explorer.imports import transformers_names as names  # noqa: F401 - the models take transformers' names here
from explorer.limits import check_layers, check_memory

_LOCK = threading.RLock()
_METHODS = ("init_weights", "tie_weights")
_REAL: dict[str, object] = {}


def _leaked(function) -> bool:
    """transformers' patches are local functions called ``empty_func``; nothing else has that name."""
    return getattr(function, "__qualname__", "").endswith("<locals>.empty_func")


def restore() -> list[str]:
    """Put back every transformers patch left in place; returns the names it repaired (empty when all is well)."""
    from transformers import initialization
    from transformers.modeling_utils import PreTrainedModel

    repaired = []
    for name in _METHODS:
        current = PreTrainedModel.__dict__.get(name)
        if not _leaked(current):
            _REAL.setdefault(name, current)
        elif name in _REAL:
            setattr(PreTrainedModel, name, _REAL[name])
            repaired.append(f"PreTrainedModel.{name}")
    for module_name in initialization.TORCH_MODULES_TO_PATCH:
        module = sys.modules.get(module_name)
        for func_name, real in initialization.TORCH_INIT_FUNCTIONS.items():
            if module is not None and _leaked(getattr(module, func_name, None)):
                setattr(module, func_name, real)
                repaired.append(f"{module_name}.{func_name}")
    return repaired


@contextlib.contextmanager
def loading():
    """Hold the process's one model-building lock, with transformers' global functions intact before and after."""
    with _LOCK:
        restore()
        try:
            yield
        finally:
            restore()


def token_labels(tokenizer, ids, special_ids) -> list[str]:
    """Word pieces as the tokenizer writes them (``##ing``), without the ``Ġ``/``▁`` word-start marks of
    byte-level and SentencePiece tokenizers; special tokens keep their brackets (``[CLS]``, ``<s>``)."""
    labels = []
    for token_id, piece in zip(ids, tokenizer.convert_ids_to_tokens(ids)):
        if token_id in special_ids:
            labels.append(piece if piece.startswith(("[", "<")) else f"[{piece}]")
        else:
            labels.append(piece.replace("\u0120", "").replace("\u2581", "") or piece)
    return labels


def check_config_size(config, name: str) -> None:
    """A model's config.json read before the model is built: its layers and its weights, worked out from the sizes
    it states, must fit the budget (a forged config asks for 100,000 layers or a width of 10**9)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config

    def size(*keys) -> int:
        for part in (text, config):
            for key in keys:
                if getattr(part, key, None) is not None:
                    return whole(getattr(part, key), f"{key} in the config of '{say_name(name)}'", 0, 10**9)
        return 0

    hidden, layers = size("hidden_size", "d_model", "n_embd"), size("num_hidden_layers", "n_layer", "num_layers")
    layers += size("decoder_layers", "num_decoder_layers")
    inner = size("intermediate_size", "d_ff", "encoder_ffn_dim", "n_inner") or 4 * hidden
    weights = layers * (4 * hidden * hidden + 2 * hidden * inner) + (size("vocab_size") + size(
        "max_position_embeddings", "n_positions")) * hidden
    check_layers(f"'{say_name(name)}'", layers)
    check_memory(f"'{say_name(name)}' with {weights:,} weights", 4 * weights)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (transformers' run to pages), or the error's kind when it has none."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def ablation_pairs(ablate, n_layers: int, n_heads: int) -> tuple[tuple[int, int], ...]:
    """``ablate`` as sorted unique ``(layer, head)`` pairs of a model with ``n_layers`` x ``n_heads``; a ValueError
    names a pair that is not two whole numbers or is out of range."""
    pairs = set()
    for layer, head in whole_pairs([] if ablate is None else ablate, "ablated head", ("layer", "head"), low=None):
        if not 0 <= layer < n_layers:
            raise ValueError(f"Layer {layer} does not exist: this model has layers 0 to {n_layers - 1}.")
        if not 0 <= head < n_heads:
            raise ValueError(f"Head {head} does not exist: each layer has heads 0 to {n_heads - 1}.")
        pairs.add((layer, head))
    return tuple(sorted(pairs))


def ablation_hooks(projections, ablate, head_size: int, name: str) -> list:
    """Forward pre-hooks that zero the ``ablate`` heads' slices of their layer's attention output projection's
    input (the heads' outputs side by side); ``projections(layer)`` finds that module, or None. A ValueError, with
    no hook left behind, when one is missing."""
    hooks = []
    for layer in sorted({layer for layer, _ in ablate}):
        projection = projections(layer)
        if projection is None:
            for hook in hooks:
                hook.remove()
            raise ValueError(f"Head ablation is not supported for {name}: no attention output projection found.")
        heads = [head for l, head in ablate if l == layer]
        hooks.append(projection.register_forward_pre_hook(_zero_heads(heads, head_size)))
    return hooks


def _zero_heads(heads, head_size: int):
    def hook(module, args):
        context = args[0].clone()  # [B, T, H * head_size]: the heads' outputs side by side
        for head in heads:
            context[..., head * head_size:(head + 1) * head_size] = 0.0
        return (context, *args[1:])

    return hook


def reads_eagerly(model) -> bool:
    """transformers runs SDPA where a family has it and eager attention where not (DeBERTa-v2, MPNet, GPT-Neo,
    ...); an eager model's weights come through ``output_attentions``, an SDPA one's through the capture."""
    return model.config._attn_implementation == "eager"


def attention_calls(model, **inputs) -> tuple[object, list]:
    """One forward pass of ``model`` on ``inputs`` and the weights ``[B, heads, queries, keys]`` of each attention
    call, in the order the model makes them: an encoder-decoder's encoder layers, then each decoder layer's
    self-attention and cross-attention. They are read at the SDPA calls themselves (``explorer.capture``), or from
    ``output_attentions`` for a model in eager attention (``reads_eagerly``). Run it under ``torch.inference_mode``."""
    from explorer.capture import capture_attention

    if reads_eagerly(model):
        output = model(**inputs, output_attentions=True)
        if getattr(output, "encoder_attentions", None) is not None:
            pairs = zip(output.decoder_attentions, output.cross_attentions)
            return output, [*output.encoder_attentions, *(weights for pair in pairs for weights in pair)]
        return output, list(output.attentions)
    with capture_attention(None) as captured:  # the calls' order names them; module paths would cost hooks
        output = model(**inputs)
    return output, [captured.weights(i) for i in range(len(captured))]


def check_calls(calls: list, expected: int, name: str) -> list:
    """``calls`` when there are ``expected`` of them; otherwise a ValueError in words."""
    if len(calls) != expected:
        raise ValueError(f"{name} made {len(calls)} attention calls where {expected} were expected (one per layer and "
                         "kind); the explorer cannot tell its layers apart.")
    return calls
