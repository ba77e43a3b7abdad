"""A transformers model object from the user's notebook, with its tokenizer or image processor, in any attention
implementation: encoders, decoders, encoder-decoders and vision transformers.

A model in eager attention is read with ``output_attentions`` (the weights it computes). Any other model (SDPA, the
default; or flash and flex attention, switched to SDPA for the one pass and back) is read at its attention calls by
``explorer.capture``. A head ablation, and a text too long for all its maps, take that path for eager models too.
The user's model is left as it was: its attention implementation and its train or eval mode are put back.

Text beyond the model's context is cut, with a notice. An encoder-decoder reads ``target`` (its decoder input), or,
without one, the text it writes itself greedily. A decoder-only model with a tokenizer can continue the text.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Mapping
from dataclasses import replace

import torch

from explorer.models import hf
from explorer.models.captured import ModuleReader, kept_output, patch_labels, run_forward
from explorer.models.pretrained_vision import as_rgb, patch_token_labels
from explorer.models.shown import MAX_KEPT_BYTES, Reading, context_length, cut_notice, weights_reading

MAX_TARGET_TOKENS = 64  # the greedy output of an encoder-decoder read when no target is given
MAX_NEW_TOKENS = 200


def is_transformers_model(obj) -> bool:
    return type(obj).__module__.startswith("transformers.") and hasattr(obj, "config")


class TransformersReader(ModuleReader):
    """Reads a transformers model (see the module docstring); ``inputs`` are text, a ``(text, text)`` pair, an image,
    token ids, or the dict of tensors its tokenizer or processor made."""

    def __init__(self, model, tokenizer=None, processor=None, tokens=None, key_tokens=None, target: str | None = None):
        super().__init__(model, tokens, key_tokens)
        self.tokenizer = tokenizer if tokenizer is not None else getattr(processor, "tokenizer", None)
        self.processor = processor
        self.config = model.config
        self.seq2seq = bool(getattr(self.config, "is_encoder_decoder", False))
        if target is not None and not isinstance(target, str):
            raise TypeError(f"The target must be text (a str), got {type(target).__name__}.")
        if target is not None and not self.seq2seq:
            raise ValueError("A target text is read by an encoder-decoder's decoder; this model is not an "
                             "encoder-decoder.")
        self.target = target
        self.name = getattr(self.config, "name_or_path", "") or type(model).__name__
        self.accepts_text = self.tokenizer is not None
        self.can_generate = self.accepts_text and not self.seq2seq and bool(getattr(model, "can_generate", bool)())
        limits = [context_length(model), getattr(self.tokenizer, "model_max_length", None)]
        self.limit = min((v for v in limits if isinstance(v, int) and 0 < v < 1_000_000), default=None)
        self._lock = threading.Lock()
        self.accepted = frozenset(inspect.signature(model.forward).parameters)  # token_type_ids only where taken

    # ----- inputs -----------------------------------------------------------------------------------------------
    def encode(self, inputs) -> tuple[dict, dict, str]:
        """The model's keyword arguments for ``inputs``, the labels of each kind of token, and a notice."""
        if isinstance(inputs, str) or (isinstance(inputs, tuple) and len(inputs) == 2
                                       and all(isinstance(t, str) for t in inputs)):
            return self.encode_text(inputs)
        if isinstance(inputs, Mapping):
            return self.encode_dict(dict(inputs))
        if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point():
            return self.encode_dict({"input_ids": inputs if inputs.dim() == 2 else inputs[None]})
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            return self.encode_dict({"pixel_values": inputs})
        if inputs is not None and self.processor is not None:
            return self.encode_image(inputs)
        raise TypeError(f"{self.name} reads text (with its tokenizer), an image (with its image processor), token ids "
                        f"or the dict its tokenizer makes; got {type(inputs).__name__}.")

    def encode_text(self, text) -> tuple[dict, dict, str]:
        if self.tokenizer is None:
            raise ValueError(f"To read text, {self.name} needs its tokenizer: show(model, text, tokenizer=tokenizer).")
        pair = text if isinstance(text, tuple) else (text, None)
        if not pair[0].strip():
            raise ValueError("The text is empty: type a sentence to see its attention.")
        full = len(self.tokenizer(*pair, truncation=False, verbose=False)["input_ids"])
        encoded = self.tokenizer(*pair, truncation=bool(self.limit), max_length=self.limit, return_tensors="pt")
        encoded = {k: v for k, v in encoded.items() if k in self.accepted or k in ("input_ids", "attention_mask")}
        notice = cut_notice(full, encoded["input_ids"].shape[1], self.name) if full > encoded["input_ids"].shape[1] else ""
        return self.encode_dict(dict(encoded), notice)

    def encode_image(self, image) -> tuple[dict, dict, str]:
        picture, notice = as_rgb(image)
        return self.encode_dict({"pixel_values": self.processor(images=picture, return_tensors="pt")["pixel_values"]},
                                notice)

    def encode_dict(self, kwargs: dict, notice: str = "") -> tuple[dict, dict, str]:
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor) and mask.dim() == 2 \
                and mask.shape != ids.shape:
            raise ValueError(f"The attention mask has shape {list(mask.shape)}, but the token ids {list(ids.shape)}: "
                             "they need one entry per token (the tokenizer makes both).")
        if isinstance(ids, torch.Tensor) and self.limit and ids.shape[-1] > self.limit:
            notice = cut_notice(ids.shape[-1], self.limit, self.name)
            kwargs = {k: v[..., :self.limit] if k in ("input_ids", "attention_mask", "token_type_ids") else v
                      for k, v in kwargs.items()}
        names = {}
        if "input_ids" in kwargs:
            names["source" if self.seq2seq else "tokens"] = self.token_labels(kwargs["input_ids"])
        if self.seq2seq and "decoder_input_ids" not in kwargs:
            kwargs["decoder_input_ids"], written = self.decoder_inputs(kwargs)
            notice = " ".join(n for n in (notice, written) if n)
        if self.seq2seq:
            names["target"] = self.token_labels(kwargs["decoder_input_ids"])
        if "pixel_values" in kwargs:
            names["tokens"] = self.patch_names(kwargs["pixel_values"])
        return kwargs, names, notice

    def token_labels(self, ids: torch.Tensor):
        if self.tokenizer is None:
            return None
        special = frozenset(self.tokenizer.all_special_ids)
        return tuple(hf.token_labels(self.tokenizer, ids[0].tolist(), special))

    def patch_names(self, pixel_values: torch.Tensor):
        """"CLS", then "r0c0", ... for a model with a ``patch_size``; None lets the square grid be guessed."""
        size = getattr(self.config, "patch_size", None)
        if not isinstance(size, int):
            return None
        rows, cols = (int(s) // size for s in pixel_values.shape[-2:])
        special = getattr(self.config, "num_register_tokens", 0) + 1 + (self.config.model_type == "deit")
        return tuple(patch_token_labels(rows, cols, rows * cols + special, self.config.model_type, self.name))

    def decoder_inputs(self, kwargs: dict) -> tuple[torch.Tensor, str]:
        """An encoder-decoder's decoder input: ``target`` (shifted right, as in training), or its own greedy output."""
        if self.target is not None:
            if self.tokenizer is None:
                raise ValueError(f"To read a target text, {self.name} needs its tokenizer.")
            labels = self.tokenizer(text_target=self.target, return_tensors="pt")["input_ids"]
            shift = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
            start = self.config.decoder_start_token_id
            return (shift(labels=labels) if shift else torch.cat([torch.tensor([[start]]), labels[:, :-1]], 1)), ""
        written = self.run_generate(kwargs, max_new_tokens=MAX_TARGET_TOKENS)
        return written, f"The decoder reads what {self.name} wrote itself (greedy); give target= to read your own."

    # ----- reading ----------------------------------------------------------------------------------------------
    def read_once(self, inputs, item: int, watch=None) -> Reading:
        kwargs, names, notice = self.encode(inputs)
        if self.config._attn_implementation == "eager" and self.fits(kwargs):
            with self.eval_mode(), torch.no_grad():
                try:
                    output = self.model(**kwargs, output_attentions=True)
                except Exception as error:  # noqa: BLE001 - the user's model: its error becomes a sentence
                    raise ValueError(f"The model's forward raised {type(error).__name__}: {hf.first_line(error)} "
                                     "Nothing was read, and the previous view stays.") from None
            reading = weights_reading(output, names.get("target", names.get("tokens")), names.get("source"), item)
            reading.output, reading.notice = kept_output(output), " ".join(n for n in (notice, reading.notice) if n)
            reading.parts = {part: replace(maps, meta=replace(maps.meta, source=self.name, notice=reading.notice))
                             for part, maps in reading.parts.items()}
            return self.finish(reading, inputs, kwargs, item)
        return self.read_captured(inputs, item, (), watch)

    def read_captured(self, inputs, item: int, ablate, watch=None) -> Reading:
        kwargs, names, notice = self.encode(inputs)
        with self.in_sdpa():
            captured, output = run_forward(self.model, lambda: self.model(**kwargs), ablate, watch)
        reading = self.reading(captured, output, item, notice, lambda part, q, k: self.labels_of(names, part, q, k))
        reading.output = kept_output(output)
        return self.finish(reading, inputs, kwargs, item)

    def labels_of(self, names: dict, part: str, n_queries: int, n_keys: int):
        """Labels of a part: an encoder-decoder's source and target tokens by part, else the text's tokens."""
        if self.seq2seq:
            queries = names.get("source") if part == "encoder" else names.get("target")
            keys = names.get("target") if part == "decoder" else names.get("source")
        else:
            queries = keys = names.get("tokens")
        fit = lambda found, n: tuple(found) if found is not None and len(found) == n else None  # noqa: E731
        queries, keys = fit(queries, n_queries), fit(keys, n_keys)
        queries = queries or patch_labels(n_queries) or tuple(map(str, range(n_queries)))
        keys = keys or (queries if n_keys == n_queries else tuple(map(str, range(n_keys))))
        return queries, None if keys == queries else keys

    def finish(self, reading: Reading, inputs, kwargs: dict, item: int) -> Reading:
        """The text that was read, and a ViT's image with its grid of patches (for the image view)."""
        reading.text = inputs if isinstance(inputs, str) else ""
        pixels, size = kwargs.get("pixel_values"), getattr(self.config, "patch_size", None)
        if isinstance(pixels, torch.Tensor) and pixels.dim() == 4 and isinstance(size, int):
            reading.image = pixels[item:item + 1].detach().float()
            reading.grid = tuple(int(side) // size for side in pixels.shape[-2:])
        return reading

    def fits(self, kwargs: dict) -> bool:
        """Would every eager map of this input fit in ``MAX_KEPT_BYTES``? (Else the lazy capture reads it.)"""
        ids = kwargs.get("input_ids")
        if not isinstance(ids, torch.Tensor):
            return True
        layers = getattr(self.config, "num_hidden_layers", 1) + getattr(self.config, "decoder_layers", 0)
        heads = getattr(self.config, "num_attention_heads", 1)
        return layers * heads * ids.shape[0] * ids.shape[-1] ** 2 * 4 <= MAX_KEPT_BYTES

    @contextlib.contextmanager
    def in_sdpa(self):
        """The model in SDPA attention for one pass (its own implementation is put back), so the capture sees it."""
        current = self.config._attn_implementation
        if current == "sdpa":
            yield
            return
        with self._lock:
            try:
                self.model.set_attn_implementation("sdpa")
            except (ValueError, ImportError, AttributeError, NotImplementedError) as error:
                raise ValueError(f"{self.name} runs {current} attention and cannot switch to SDPA "
                                 f"({hf.first_line(error)}), which head ablation and long texts need.") from None
            try:
                yield
            finally:
                self.model.set_attn_implementation(current)

    @contextlib.contextmanager
    def eval_mode(self):
        training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(training)

    # ----- generation -------------------------------------------------------------------------------------------
    def generate(self, text: str, max_new_tokens: int = 20, stop: threading.Event | None = None) -> str:
        """``text`` continued greedily by up to ``max_new_tokens`` tokens (``stop`` ends it after the current one)."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        if not self.can_generate:
            raise ValueError(f"{self.name} does not write text here: continuing a text needs a decoder-only language "
                             "model and its tokenizer.")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
                or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"The new tokens must be a whole number from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens}.")
        kwargs, _, _ = self.encode_text(text)
        room = (self.limit or 10**9) - kwargs["input_ids"].shape[1]
        if room < 1:
            raise ValueError(f"The text already fills {self.name}'s context of {self.limit} tokens.")

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **_):
                return stop is not None and stop.is_set()

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        written = self.run_generate(kwargs, max_new_tokens=min(max_new_tokens, room), pad_token_id=pad,
                                    stopping_criteria=StoppingCriteriaList([Stop()]))
        return text + self.tokenizer.decode(written[0, kwargs["input_ids"].shape[1]:], skip_special_tokens=True)


    def run_generate(self, kwargs: dict, **options) -> torch.Tensor:
        """transformers' own greedy ``generate`` (the model's rules, such as never writing padding), in eval mode."""
        try:
            with self.eval_mode(), torch.no_grad():
                return self.model.generate(**{k: v for k, v in kwargs.items() if k != "decoder_input_ids"},
                                           do_sample=False, num_beams=1, **options)
        except Exception as error:  # noqa: BLE001 - the user's model: its error becomes a sentence
            raise ValueError(f"{self.name} could not write text: {type(error).__name__}: {hf.first_line(error)}") from None
