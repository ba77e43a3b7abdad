"""One pass of a causal language model over a text with its attention captured lazily: progress, Stop, and the
steps of a generation joined into one attention call per layer.

``capture_attention(model, lazy=True)`` keeps each layer's queries and keys (``explorer.lazy_maps`` works maps out
of them when they are shown). ``LayerWatch`` hears each layer's call as the model makes it: it reports how many
layers are done, and when the stop flag is set it raises ``Stopped`` out of the forward pass; the capture and any
hooks are removed on the way out and nothing of the run is kept. A generation reads the prompt once and then runs
one cached step per new token; ``joined`` puts each step's query row and the cache's keys onto the layer's call,
so the maps of prompt and continuation come from the very passes that wrote the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from explorer.capture import AttentionCall

LOGIT_ROWS = 256  # positions turned into next-token logits at once: a long text's [T, vocab] would be 1.6 GB


class Stopped(ValueError):
    """Raised out of a forward pass when Stop is pressed; its message is what the status line shows."""


class LayerWatch:
    """A capture listener: counts the layers done, tells ``progress(done, total)``, raises ``Stopped`` on ``stop``."""

    def __init__(self, total: int, progress=None, stop=None):
        self.total, self.progress, self.stop, self.done = total, progress, stop, 0

    def __call__(self, call) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        if self.stop is not None and self.stop.is_set():
            raise Stopped("Stopped: the input was not read, and the previous view is kept.")


def layer_calls(captured, n_layers: int, name: str) -> list[AttentionCall]:
    """The captured calls of one pass, one per layer; a ValueError when the model made another number."""
    if len(captured) != n_layers:
        raise ValueError(f"{name} made {len(captured)} attention calls in a pass over its {n_layers} layers; the "
                         "explorer reads models with one self-attention call per layer.")
    return list(captured.calls)


def joined(prompt: AttentionCall, steps: list[AttentionCall]) -> AttentionCall:
    """The call of a prompt's rows followed by the rows of cached steps: each step's queries see the cache's keys
    (every key so far), so the last step's keys are the keys of all rows."""
    if not steps:
        return prompt
    last = steps[-1]
    query = torch.cat([prompt.query, *(step.query for step in steps)], dim=2)  # [B, H, T, d]
    shape = (prompt.shape[0], prompt.shape[1], query.shape[2], last.key.shape[2])
    if shape[2] != shape[3]:
        raise ValueError(f"The cached steps of {prompt.name or 'the model'} do not line up: {shape[2]} query rows "
                         f"over {shape[3]} keys.")
    plain = prompt.mask is None and prompt.causal and all(s.mask is None and s.shape[2] == 1 for s in steps)
    if plain:  # a causal prompt and one-token steps that see every cached key: causal over the whole text
        return AttentionCall(prompt.name, shape, query=query, key=last.key, causal=True, scale=prompt.scale)
    masks = [_additive_mask(call, shape[3]) for call in (prompt, *steps)]
    mask = torch.cat([m.expand(-1, max(x.shape[1] for x in masks), -1, -1) for m in masks], dim=2)
    return AttentionCall(prompt.name, shape, query=query, key=last.key, mask=mask, scale=prompt.scale)


def _additive_mask(call: AttentionCall, n_keys: int) -> torch.Tensor:
    """A call's mask and causal rule as one float mask ``[B, H or 1, Q, n_keys]`` (-inf: not seen), keys past its
    own unseen."""
    batch, _, n_queries, own = call.shape
    mask = torch.zeros(1, 1, n_queries, own)
    if call.causal:
        mask = mask.masked_fill(torch.ones(n_queries, own, dtype=torch.bool).triu(1), -torch.inf)
    if call.mask is not None:
        given = call.mask
        while given.dim() < 4:
            given = given[None]
        given = torch.zeros(given.shape).masked_fill(~given, -torch.inf) if given.dtype == torch.bool else given.float()
        mask = mask + given
    return F.pad(mask.expand(batch, -1, -1, -1), (0, n_keys - own), value=-torch.inf)


def next_tokens(model, hidden: torch.Tensor) -> tuple[list, torch.Tensor]:
    """The top next tokens at every position of final hidden states ``[T, width]`` of ``model`` (a
    ``LanguageModel``), and the last position's logits ``[vocab]``."""
    tops = []
    for rows in hidden.split(LOGIT_ROWS):
        logits = logits_of(model.model, rows)
        tops.extend(model.top_tokens(logits))
    return tops, logits[-1]


def logits_of(model, hidden: torch.Tensor) -> torch.Tensor:
    """The next-token logits of final hidden states, as the model's own head makes them (its output embedding, and
    the soft-capping or scale some families add)."""
    logits = model.get_output_embeddings()(hidden).float()
    config = model.config
    if getattr(config, "logit_scale", None):
        logits = logits * config.logit_scale
    if getattr(config, "final_logit_softcapping", None):
        logits = torch.tanh(logits / config.final_logit_softcapping) * config.final_logit_softcapping
    return logits


@dataclass
class Pass:
    """What one pass over some tokens leaves: each layer's attention call (none for an eager model), the top next
    tokens at every position, the last position's logits ``[vocab]``, and the cache for a next step."""

    calls: list
    next_tokens: list
    logits: torch.Tensor
    cache: object = None


def token_chooser(temperature: float, seed: int):
    """The next token from logits ``[vocab]``: the likeliest at temperature 0, else a seeded sample."""
    generator = torch.Generator().manual_seed(int(seed))
    if temperature == 0:
        return lambda logits: int(logits.argmax())
    # in float64 (a tiny temperature is 0 in float32) and shifted so the top logit is 0: a tiny temperature then
    # gives the likeliest token, not inf - inf = NaN
    return lambda logits: int(torch.multinomial(torch.softmax((logits.double() - logits.max()) / temperature, dim=-1),
                                                1, generator=generator))


def steps(model, ids: list, read: Pass, budget: int, choose, on_token=None) -> tuple[list, bool]:
    """Append up to ``budget`` tokens to ``ids``, each fed back to ``model`` (a ``LanguageModel``) as one cached step
    whose attention joins ``read``'s calls, and whose next tokens join ``read``'s; the candidates of each new
    token, and whether the model's stop flag ended the run (the flag is then cleared: what was written is read)."""
    candidates, eos, kept, stopped = [], model.tokenizer.eos_token_id, [], False
    for _ in range(budget):
        if model.stop_flag.is_set():
            stopped = True
            break
        token, top = choose(read.logits), read.next_tokens[-1]
        ids.append(token)
        candidates.append(top)
        if on_token is not None:
            on_token(model.token_labels([token])[0], top)
        step = model.read_tokens(torch.tensor([[token]]), cache=read.cache, keep_cache=True)
        for call in kept[-1] if kept else ():
            call.key = None  # the newest step's keys hold every key so far: older copies can go
        kept.append(step.calls)
        read.next_tokens.extend(step.next_tokens)
        read.logits, read.cache = step.logits, step.cache
        if token == eos:
            break
    model.stop_flag.clear()
    read.calls = [joined(call, [step[layer] for step in kept]) for layer, call in enumerate(read.calls)]
    read.cache = None
    return candidates, stopped
