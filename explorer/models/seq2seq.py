"""Pretrained encoder-decoders (Marian, T5, BART, mBART), offline, read as three ``AttentionMaps``.

``explorer.models.pretrained.load()`` gives a ``Seq2SeqModel`` for any folder or cached hub name whose config says
``is_encoder_decoder``. ``attend(source, target)`` runs one forward pass in SDPA attention, reads every attention call
there (``explorer.capture``; eager ``output_attentions`` for a family without SDPA), and returns
the encoder's self-attention, the decoder's (causal) self-attention and the cross-attention from every target
position to the source tokens. With no target the model first translates greedily and reads its own output.

The decoder reads the target shifted right (teacher forcing, as in training: ``[start] + target[:-1]``, by each
model's own rule): the row at position ``t`` is the step that writes target token ``t``. The maps' rows are labelled by the tokens the decoder reads, as transformers
and bertviz do; ``Translation.written`` holds the token each row writes, for the alignment picture.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.arguments import items, text as check_text, whole
from explorer.maps import AttentionMaps, MapsInfo, Translation, entropy
from explorer.models import hf

PARTS = ("cross", "encoder", "decoder")
KINDS = {"encoder": "encoder self-attention", "decoder": "decoder self-attention", "cross": "cross-attention"}
CACHE_SIZE = 16
MAX_TOKENS = 512
MAX_TEXT_CHARS = 200_000  # characters of a source or target: the model reads its first 512 tokens  # models with relative positions (T5) have no limit of their own
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "source.spm", "sentencepiece.bpe.model", "sentencepiece.model", "merges.txt")


def load_seq2seq(source: str, name: str, config) -> "Seq2SeqModel":
    """An encoder-decoder in transformers' default attention (SDPA where the family has it) and its own tokenizer;
    a ValueError that says what is missing."""
    AutoModelForSeq2SeqLM, AutoTokenizer = hf.names("AutoModelForSeq2SeqLM", "AutoTokenizer")

    folder = Path(source)
    if folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ValueError(f"The folder '{name}' has the model but not its tokenizer (no tokenizer.json, vocab or "
                         f"SentencePiece file such as source.spm). Save it next to the model with "
                         f"tokenizer.save_pretrained(folder).")
    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        with hf.loading():
            tokenizer = AutoTokenizer.from_pretrained(source, **options)
            model = AutoModelForSeq2SeqLM.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as error:
        raise ValueError(f"'{name}' could not be loaded as an encoder-decoder ({hf.first_line(error)[:200]}).") from None
    check_tokenizer(tokenizer, model.config, name)
    return Seq2SeqModel(model, tokenizer, name)


def check_tokenizer(tokenizer, config, name: str) -> None:
    """A ValueError when the tokenizer cannot be this model's: ids beyond its vocabulary, or another padding id."""
    vocab = config.get_text_config(decoder=True).vocab_size if hasattr(config, "get_text_config") else config.vocab_size
    if len(tokenizer) > vocab:
        raise ValueError(f"The tokenizer in '{name}' is not this model's: it has {len(tokenizer)} tokens, the model "
                         f"only {vocab}. Save the model's own tokenizer into the folder "
                         f"(tokenizer.save_pretrained(folder) with the tokenizer it was trained with).")
    pad = getattr(config, "pad_token_id", None)
    if pad is not None and tokenizer.pad_token_id is not None and tokenizer.pad_token_id != pad:
        raise ValueError(f"The tokenizer in '{name}' is not this model's: its padding token is id "
                         f"{tokenizer.pad_token_id}, the model's is {pad}. Save the model's own tokenizer into the folder.")
    if config.decoder_start_token_id is None or not 0 <= config.decoder_start_token_id < vocab:
        raise ValueError(f"The config of '{name}' has no usable decoder_start_token_id, so the decoder cannot start.")


class Seq2SeqModel:
    """A Hugging Face encoder-decoder in eval mode whose three kinds of attention are read as ``AttentionMaps``."""

    family = "encoder-decoder"

    def __init__(self, model, tokenizer, name: str):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        config = model.config
        self.n_encoder_layers = config.num_hidden_layers
        self.n_decoder_layers = (getattr(config, "decoder_layers", None) or getattr(config, "num_decoder_layers", None)
                                 or self.n_encoder_layers)
        self.n_layers = max(self.n_encoder_layers, self.n_decoder_layers)
        self.n_heads = config.num_attention_heads
        limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length, MAX_TOKENS]
        self.max_tokens = int(min(v for v in limits if v))
        self.special_ids = frozenset(tokenizer.all_special_ids)
        self.start_id = config.decoder_start_token_id
        eos = getattr(model.generation_config, "eos_token_id", None) or config.eos_token_id
        self.end_ids = frozenset(eos if isinstance(eos, (list, tuple)) else [eos])
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"Seq2SeqModel({self.name!r}, encoder_layers={self.n_encoder_layers}, "
                f"decoder_layers={self.n_decoder_layers}, heads={self.n_heads})")

    def attend(self, source: str, target: str | None = None, max_new_tokens: int | None = None) -> dict:
        """``{"encoder", "decoder", "cross"}`` AttentionMaps ``[layers, heads, queries, keys]`` of one pass over
        ``source`` and ``target`` (the model's greedy translation when ``target`` is empty)."""
        return self.run(source, target, max_new_tokens).maps

    def translate(self, source: str, max_new_tokens: int | None = None) -> str:
        """The greedy translation of ``source``."""
        return self.run(source, None, max_new_tokens).target

    def check_ablation(self, ablate) -> tuple:
        if ablate is not None and items(ablate, "list of ablated heads"):
            raise ValueError("Head ablation works on encoders; this is an encoder-decoder.")
        return ()

    def run(self, source: str, target: str | None = None, max_new_tokens: int | None = None) -> Translation:
        """The (cached) reading of ``source`` and ``target``."""
        source = check_text(source, "source", max_length=MAX_TEXT_CHARS)
        target = None if target is None else check_text(target, "target", max_length=MAX_TEXT_CHARS)
        if not source.strip():
            raise ValueError("The source text is empty: type a sentence for the model to translate.")
        target = target.strip() if target and target.strip() else None
        new_tokens = self._check_new_tokens(max_new_tokens)
        key = (source.strip(), target, new_tokens)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._read(source.strip(), target, new_tokens)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(key)
            return self._cache[key]

    def _check_new_tokens(self, max_new_tokens) -> int:
        """``max_new_tokens`` as a number from 1 to the model's limit; 0 for None (the length of the source decides)."""
        if max_new_tokens is None:
            return 0
        return whole(max_new_tokens, "number of new tokens max_new_tokens", 1, self.max_tokens)

    def _encode(self, text: str, target: bool = False) -> tuple[list[int], int]:
        """Token ids of ``text`` cut to the model's limit, and the uncut length."""
        encode = (lambda **kw: self.tokenizer(text_target=text, **kw)) if target else (lambda **kw: self.tokenizer(text, **kw))
        full = len(encode(truncation=False, verbose=False)["input_ids"])
        ids = encode(truncation=True, max_length=self.max_tokens)["input_ids"]
        if not ids:
            raise ValueError("The text has no tokens the model can read.")
        return list(ids), full

    def _read(self, source: str, target: str | None, new_tokens: int) -> Translation:
        source_ids, source_length = self._encode(source)
        inputs = torch.tensor([source_ids])
        notices = []
        if source_length > len(source_ids):
            notices.append(f"The source is {source_length} tokens long; {self.name} reads at most {len(source_ids)}, "
                           f"so it was cut.")
        if target is None:
            limit = new_tokens or min(self.max_tokens, 2 * len(source_ids) + 10)  # a translation is rarely longer
            steps = self._greedy(inputs, limit)  # [start, y1, ..., eos]
            if steps[-1] not in self.end_ids:
                notices.append(f"The translation stopped after {len(steps) - 1} tokens without an end token.")
            reads, written = steps[:-1], steps[1:]
        else:
            written, target_length = self._encode(target, target=True)
            if target_length > len(written):
                notices.append(f"The target was cut to {len(written)} tokens.")
            reads = self._shifted(written)
        with torch.inference_mode():
            _, calls = hf.attention_calls(self.model, input_ids=inputs, decoder_input_ids=torch.tensor([reads]),
                                          use_cache=False)
        calls = hf.check_calls(calls, self.n_encoder_layers + 2 * self.n_decoder_layers, self.name)
        encoder, decoder = calls[:self.n_encoder_layers], calls[self.n_encoder_layers:]  # decoder: self, cross, ...
        source_tokens, read_tokens = self.token_labels(source_ids), self.token_labels(reads)
        meta = dict(source=self.name, notice=" ".join(notices))
        maps = {
            "encoder": AttentionMaps(source_tokens, torch.stack(encoder)[:, 0],
                                     meta=MapsInfo(kind=KINDS["encoder"], full_length=source_length,
                                                   special=[i in self.special_ids for i in source_ids], **meta)),
            "decoder": AttentionMaps(read_tokens, torch.stack(decoder[0::2])[:, 0],
                                     meta=MapsInfo(kind=KINDS["decoder"], **meta)),
            "cross": AttentionMaps(read_tokens, torch.stack(decoder[1::2])[:, 0], key_tokens=source_tokens,
                                   meta=MapsInfo(kind=KINDS["cross"], **meta)),
        }
        text = target if target is not None else self.tokenizer.decode(written, skip_special_tokens=True)
        return Translation(source, text, maps, tuple(self.token_labels(written)), translated=target is None,
                           cut=source_length > len(source_ids), ended=target is not None or steps[-1] in self.end_ids)

    def _shifted(self, written: list[int]) -> list[int]:
        """What the decoder reads while it writes ``written`` (teacher forcing), by the model's own rule: most start
        with ``decoder_start_token_id``, mBART with the target's last token (its language code)."""
        shift = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
        if shift is None:
            return [self.start_id, *written[:-1]]
        return shift(labels=torch.tensor([written]))[0].tolist()

    def _greedy(self, inputs: torch.Tensor, new_tokens: int) -> list[int]:
        """Greedy decoding with transformers' ``generate`` (the model's own rules, such as never writing padding)."""
        with torch.inference_mode():
            steps = self.model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                                        num_beams=1, max_new_tokens=new_tokens, min_new_tokens=1)
        return steps[0].tolist()

    def token_labels(self, ids) -> list[str]:
        return hf.token_labels(self.tokenizer, ids, self.special_ids)


@dataclass
class Seq2SeqReading:
    """What the Pretrained tab draws for an encoder-decoder: the three maps, their head entropy, the translation."""

    parts: dict  # "encoder", "decoder", "cross" -> AttentionMaps
    entropy: dict  # part -> [layers, heads]
    translation: Translation

    @property
    def maps(self) -> AttentionMaps:
        """The cross-attention: its rows are the target tokens a user picks."""
        return self.parts["cross"]


def read(model: Seq2SeqModel, source: str, target: str = "") -> Seq2SeqReading:
    translation = model.run(source, target or None)
    return Seq2SeqReading(translation.maps, {p: entropy(m) for p, m in translation.maps.items()}, translation)
