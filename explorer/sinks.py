"""Attention sinks (Xiao et al. 2023): what a sliding window does to a language model, and what four tokens fix.

Many heads park their weight on the first tokens. A sliding window of ``W`` tokens drops them once the text is
longer than ``W``, and perplexity climbs; keeping the first ``k`` tokens in view beside the window brings it back.

``sliding_window(window, sinks)`` is a ``TorchFunctionMode``: inside it, every call to torch's
``scaled_dot_product_attention`` made on this thread attends through ``window_mask`` instead of its causal mask
(the call's own mask, such as padding, still holds). So any model whose attention runs in SDPA can be windowed
without touching its code: the explorer's Transformers, and Hugging Face models in SDPA mode
(``sdpa_attention(model)`` switches one there for a block). ``LanguageModel.token_losses`` runs one pass with it.

The mask is built here rather than through a model's own arguments because the same few lines serve every model
and every attention call; a test checks it against transformers' own path with a hand-built 4-D mask.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field, replace
from importlib import resources

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from explorer.arguments import float_tensor, whole
from explorer.limits import check_memory

SDPA = F.scaled_dot_product_attention
TEXT_FILE = "ruth_kjv.txt"
TEXT_SOURCE = ("The Book of Ruth, King James Version (1611), public domain; taken from Debian's bible-kjv-text "
               "4.38 (verse numbers removed)")


class Stopped(Exception):
    """Raised inside a pass when its ``each_call`` asks to stop (the caller keeps what it had)."""


def check_window(window, sinks) -> tuple[int | None, int]:
    """``window`` (None for full attention, or 2 or more tokens) and ``sinks`` (0 up to window - 1), checked."""
    sinks = whole(sinks, "number of sink tokens", 0)
    if window is None:
        if sinks:
            raise ValueError("Sink tokens only matter beside a sliding window: set a window, or sinks to 0.")
        return None, 0
    window = whole(window, "window", 2, wanted="at least 2 tokens (the token itself and one before it)")
    if sinks >= window:
        raise ValueError(f"Keep fewer sink tokens than the window holds: {sinks} sinks with a window of {window}. "
                         "The sinks are the first tokens kept in view beside the window.")
    return window, sinks


def window_mask(n_queries: int, n_keys: int | None = None, window: int | None = None, sinks: int = 0,
                device=None) -> torch.Tensor:
    """Boolean ``[Q, K]``, True where a query may attend: itself and the ``window - 1`` keys before it, and the first
    ``sinks`` keys always; never a later key. Queries are the last ``Q`` positions of the ``K`` keys (as with a cache);
    ``window`` None is plain causal attention."""
    n_queries = whole(n_queries, "number of queries", 1)
    n_keys = n_queries if n_keys is None else whole(n_keys, "number of keys", n_queries)
    window, sinks = check_window(window, sinks)
    # a window or sink count past the keys cuts nothing; capped, it also fits the tensors' int64
    window, sinks = (None if window is None else min(window, n_keys)), min(sinks, n_keys)
    check_memory(f"A window mask of {n_queries:,} queries x {n_keys:,} keys", n_queries * n_keys * 3)  # the mask and its comparisons
    position = torch.arange(n_keys - n_queries, n_keys, device=device)[:, None]  # [Q, 1] each query's place
    key = torch.arange(n_keys, device=device)[None, :]  # [1, K]
    allowed = key <= position
    if window is not None:
        allowed &= (position - key < window) | (key < sinks)
    return allowed


def _sdpa_arguments(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return dict(query=query, key=key, value=value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                scale=scale, enable_gqa=enable_gqa)


class _WindowMode(TorchFunctionMode):
    """Every SDPA call of this thread attends through the window mask; ``each_call()`` runs before each."""

    def __init__(self, window: int | None, sinks: int, each_call=None, change: bool = True):
        super().__init__()
        self.window, self.sinks, self.each_call, self.change = window, sinks, each_call, change
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not SDPA:
            return func(*args, **kwargs)
        self.calls += 1
        if self.each_call is not None:
            self.each_call()
        if not self.change:
            return func(*args, **kwargs)
        call = _sdpa_arguments(*args, **kwargs)
        query, key, mask = call["query"], call["key"], call["attn_mask"]
        window = window_mask(query.shape[-2], key.shape[-2], self.window, self.sinks, device=query.device)
        if mask is None:
            mask = window
        elif mask.dtype == torch.bool:
            mask = mask & window
        else:  # an additive mask: add -inf where the window hides a key
            mask = mask.masked_fill(~window, -math.inf)
        return func(**{**call, "attn_mask": mask, "is_causal": False})


@contextlib.contextmanager
def sliding_window(window: int | None = None, sinks: int = 0, each_call=None):
    """Inside the block, every SDPA call on this thread uses ``window_mask(..., window, sinks)`` (see the module
    docstring); ``each_call()`` runs before each call and may raise ``Stopped``. Yields the mode, whose ``calls``
    counts the calls it saw."""
    window, sinks = check_window(window, sinks)
    mode = _WindowMode(window, sinks, each_call, change=window is not None)
    with mode:
        yield mode


@contextlib.contextmanager
def sdpa_attention(model):
    """A Hugging Face model computes attention in SDPA inside the block (and goes back to its own choice after)."""
    before = getattr(model.config, "_attn_implementation", None)
    if before == "sdpa":
        yield model
        return
    try:
        model.set_attn_implementation("sdpa")
    except (ValueError, ImportError, AttributeError) as error:
        raise ValueError(f"This model cannot compute its attention with torch's SDPA ({error}), so no window can be "
                         "put on it.") from None
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


def next_token_losses(model, ids, window: int | None = None, sinks: int = 0, each_call=None) -> torch.Tensor:
    """The loss of every token after the first ``[T - 1]``, in one pass of a Hugging Face causal LM over ``ids``,
    with full attention (``window`` None) or a sliding ``window`` that keeps the first ``sinks`` tokens in view."""
    window, sinks = check_window(window, sinks)
    ids = torch.as_tensor(list(ids))
    if len(ids) < 2:
        raise ValueError(f"The text has {len(ids)} token: a loss needs a token and one after it to predict.")
    with torch.inference_mode(), sdpa_attention(model), sliding_window(window, sinks, each_call) as mode:
        logits = model(ids[None], use_cache=False).logits[0]  # [T, vocab]
    if window is not None and mode.calls == 0:
        raise ValueError("The model made no call to torch's scaled_dot_product_attention, so the window could not "
                         "be put on its attention.")
    return F.cross_entropy(logits[:-1].float(), ids[1:], reduction="none")


def perplexity(losses: torch.Tensor, start: int = 0) -> float:
    """exp of the mean loss of the tokens from ``start`` on (inf past a mean of 709 nats, where exp overflows)."""
    kept = float_tensor(losses, "token losses", dims=(1,)).double()[whole(start, "start position", 0):]
    if kept.numel() == 0:
        raise ValueError(f"There are no token losses from position {start} on.")
    return float(kept.mean().exp())


def bundled_text() -> str:
    """The bundled public-domain text (``TEXT_SOURCE``), a few thousand tokens long."""
    return resources.files("explorer.data").joinpath("texts", TEXT_FILE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class SinkRun:
    """The sink experiment on one text: the token losses of each setting run so far, in order."""

    window: int
    sinks: int
    tokens: int  # tokens of the text read
    losses: dict = field(default_factory=dict)  # setting name -> [tokens - 1] loss of every token after the first
    seconds: dict = field(default_factory=dict)  # setting name -> seconds its pass took
    stopped: bool = False  # Stop ended it before every setting ran

    @property
    def settings(self) -> list[tuple[str, int | None, int]]:
        """(name, window, sinks) of the three passes: full attention, the window, the window with the sinks."""
        return [("full attention", None, 0), (f"window {self.window}", self.window, 0),
                (f"window {self.window} + first {self.sinks}", self.window, self.sinks)]

    def perplexities(self) -> dict[str, float]:
        """Each setting's perplexity over the tokens the window changes (from position ``window`` on)."""
        return {name: perplexity(losses, start=min(self.window, len(losses) - 1))
                for name, losses in self.losses.items()}


def sink_experiment(model, text: str, window: int = 256, sinks: int = 4, max_tokens: int = 2000, on_pass=None,
                    on_progress=None, stop: threading.Event | None = None) -> SinkRun:
    """Per-token losses of ``text`` (cut to ``max_tokens``) under full attention, a sliding ``window``, and the window
    that keeps the first ``sinks`` tokens: one ``LanguageModel.token_losses`` pass each. ``on_pass(run)`` hears each
    finished pass, ``on_progress(fraction)`` each layer; when ``stop`` is set the run ends within a layer and
    returns the passes it finished (``stopped``)."""
    window, sinks = check_window(window, sinks)
    if window is None:
        raise ValueError("The sink experiment compares a sliding window with full attention: set a window.")
    ids, _ = model.encode(text, max_tokens)
    if len(ids) < 2:
        raise ValueError(f"The text has {len(ids)} token: a loss needs a token and one after it to predict.")
    cut = model.tokenizer.decode(ids)
    run = SinkRun(window, sinks, len(ids))
    calls = [0]

    def each_call() -> None:
        if stop is not None and stop.is_set():
            raise Stopped
        calls[0] += 1
        if on_progress is not None:
            on_progress(min(1.0, calls[0] / (3 * model.n_layers)))

    for name, setting_window, setting_sinks in run.settings:
        started = time.perf_counter()
        try:
            with sliding_window(None, 0, each_call):  # watches the calls the window (if any) hands on
                losses = model.token_losses(cut, setting_window, setting_sinks)
        except Stopped:
            return replace(run, stopped=True)
        run = replace(run, tokens=len(losses) + 1, losses={**run.losses, name: losses},
                      seconds={**run.seconds, name: time.perf_counter() - started})
        if on_pass is not None:
            on_pass(run)
    return run
