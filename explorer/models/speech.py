"""Whisper: audio in, text out (transcribed, or translated into English), and every attention of the pass.

``load_speech()`` opens Whisper base from the two packaged halves (``explorer.models.whisper_file``): the first
call joins them, checks the SHA-256, maps the arrays onto transformers' ``WhisperForConditionalGeneration`` and
writes a safetensors folder into the cache (``AE_CACHE``), atomically; later calls read that folder. A local folder
of any transformers Whisper checkpoint loads too. Never the network.

``SpeechModel.run(audio)`` hears up to 30 s: the encoder runs once (its self-attention pooled as it is computed),
the language is detected from the first decoder step, the decoder writes greedily, then one pass over what it wrote
gives the decoder's self-attention and the cross-attention of every layer and head over the 1,500 audio frames.
The alignment heads' cross-attention gives each word's time (``explorer.models.word_times``). Attention is read
with eager attention (the weights transformers computes), from ``output_attentions`` and the encoder's modules.
"""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.arguments import choice, text
from explorer.data.audio import RATE, SECONDS, Audio, read_audio, sound_frames
from explorer.maps import AttentionMaps, MapsInfo
from explorer.models import hf, whisper_file, word_times
from explorer.models.cache import DONE_MARK, cache_dir, load_cached

DEFAULT_MODEL = "whisper-base"
TASKS = ("translate", "transcribe")
ENCODER_CELLS = 250  # the encoder's self-attention is kept as at most this many blocks of frames a side
HOP = 160  # audio samples per mel frame
CACHE_MARK = {"from": list(whisper_file.HALVES), "sha256": whisper_file.SHA256, "dtype": "float32"}  # what the cache holds


def converted_dir() -> Path:
    return cache_dir() / DEFAULT_MODEL


def convert_package(target: Path, folders=None, progress=None) -> Path:
    """Join, check and convert the packaged halves into a transformers folder at ``target`` (written aside, then
    renamed, so a folder with ``complete.json`` is always whole)."""
    from safetensors.torch import save_file
    GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperTokenizer = hf.names(
        "GenerationConfig", "WhisperConfig", "WhisperFeatureExtractor", "WhisperTokenizer")

    (progress or (lambda text: None))("Converting Whisper base from its two packaged halves once (about 10 s).")
    folders = folders or whisper_file.package_folders()
    state, sizes = whisper_file.transformers_state(*whisper_file.read_arrays(whisper_file.joined_model(folders)))
    settings = whisper_file.package_settings(folders[0])
    tokenizer = WhisperTokenizer(tokenizer_file=str(Path(folders[0]) / "tokenizer.json"))
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in
           ("<|startoftranscript|>", "<|endoftext|>", "<|notimestamps|>", "<|translate|>", "<|transcribe|>")}
    tokens = dict(decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=ids["<|endoftext|>"],
                  eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                  suppress_tokens=settings["suppress_ids"], begin_suppress_tokens=settings["suppress_ids_begin"])
    config = WhisperConfig(**sizes, **tokens, architectures=["WhisperForConditionalGeneration"])
    generation = GenerationConfig(
        **tokens, max_length=config.max_target_positions, is_multilingual=True,
        alignment_heads=settings["alignment_heads"], no_timestamps_token_id=ids["<|notimestamps|>"],
        task_to_id={task: ids[f"<|{task}|>"] for task in TASKS},
        lang_to_id={tokenizer.convert_ids_to_tokens(i): i for i in settings["lang_ids"]})
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(partial / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(partial)
    generation.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(partial)
    (partial / DONE_MARK).write_text(json.dumps(CACHE_MARK))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def load_speech(name_or_path: str | Path | None = None, progress=None) -> "SpeechModel":
    """Whisper: the packaged Whisper base (``None``) or a local folder of a transformers Whisper checkpoint."""
    name = str(name_or_path).strip() if name_or_path is not None else ""
    if name in ("", DEFAULT_MODEL):
        target = converted_dir()
        return load_cached(target, "Whisper base (from its packages)", lambda: convert_package(target, progress=progress),
                           lambda: load_whisper(str(target), DEFAULT_MODEL), mark=CACHE_MARK)
    from explorer.models import pretrained

    source, config = pretrained.resolve_family(name, "speech")
    return load_whisper(source, name, config)


def load_whisper(source: str, name: str, config=None) -> "SpeechModel":
    """A Whisper checkpoint with eager attention (so the weights it computes can be read), in float32."""
    AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration = hf.names(
        "AutoTokenizer", "WhisperFeatureExtractor", "WhisperForConditionalGeneration")
    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with hf.loading():
                model = WhisperForConditionalGeneration.from_pretrained(source, attn_implementation="eager",
                                                                        dtype=torch.float32, **options)
                tokenizer = AutoTokenizer.from_pretrained(source, **options)
                features = WhisperFeatureExtractor.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        raise ValueError(f"'{name}' could not be loaded as a Whisper model ({hf.first_line(error)[:200]}).") from None
    return SpeechModel(model, tokenizer, features, name)


@dataclass(frozen=True)
class Vocabulary:
    """The special tokens a Whisper decoder is prompted and steered with."""

    start: int  # <|startoftranscript|>
    end: int  # <|endoftext|>
    no_timestamps: int
    tasks: dict  # "translate"/"transcribe" -> id
    languages: dict  # "de" -> id of <|de|>
    suppress: tuple  # never written
    suppress_first: tuple  # not written first (a blank, the end)

    @classmethod
    def of(cls, model, tokenizer) -> "Vocabulary":
        generation, config, ids = model.generation_config, model.config, tokenizer.convert_tokens_to_ids
        languages = getattr(generation, "lang_to_id", None) or {}
        if not languages:
            from transformers.models.whisper.tokenization_whisper import LANGUAGES

            languages = {f"<|{c}|>": ids(f"<|{c}|>") for c in LANGUAGES if ids(f"<|{c}|>") != tokenizer.unk_token_id}
        return cls(start=config.decoder_start_token_id, end=ids("<|endoftext|>"),
                   no_timestamps=ids("<|notimestamps|>"), tasks={t: ids(f"<|{t}|>") for t in TASKS},
                   languages={token.strip("<|>"): i for token, i in languages.items()},
                   suppress=tuple(getattr(generation, "suppress_tokens", None) or config.suppress_tokens or ()),
                   suppress_first=tuple(getattr(generation, "begin_suppress_tokens", None)
                                        or config.begin_suppress_tokens or ()))


@dataclass(frozen=True, eq=False)
class SpeechReading:
    """What Whisper heard and wrote, and its attention. Rows of ``cross`` and ``decoder`` are the decoding steps
    that write each text token; the prompt (start, language, task, no timestamps) is read but not written."""

    text: str
    tokens: tuple[int, ...]  # the ids written, after the prompt's special tokens (without the end token)
    cross: AttentionMaps  # [layers, heads, written tokens, 1500 audio frames], keys labelled with times
    encoder: AttentionMaps  # [layers, heads, blocks, blocks] of the audio's frames, pooled
    decoder: AttentionMaps  # [layers, heads, written tokens, tokens read]
    language: str  # the language Whisper detected (a code such as "de")
    language_probability: float
    words: tuple[tuple[str, float, float], ...]  # (word, start s, end s) from the alignment heads
    word_of_token: tuple[int, ...]  # per written token: the word it is part of
    token_starts: tuple[float, ...]  # per written token and the end token: where DTW places it (s)
    alignment_heads: tuple[tuple[int, int], ...]  # (layer, head)
    task: str
    audio: Audio
    mel: np.ndarray  # [mel bins, frames] log-mel spectrogram of the audio (10 ms frames)
    frame_kinds: np.ndarray  # per audio frame (1500): 0 padding after the audio, 1 silence, 2 sound
    notice: str = ""
    stopped: bool = False

    @property
    def n_frames(self) -> int:
        """Encoder frames that hold audio (20 ms each)."""
        return self.mel.shape[1] // 2

    def weight_on(self, layer: int | None = None, head: int | None = None) -> np.ndarray:
        """Per written token, the share of its cross-attention on frames of sound, of silence and of padding
        ``[tokens, 3]``: one head's, or the mean over the alignment heads (``None``)."""
        weights = self.attention_over_time(layer, head)
        return np.stack([weights[:, self.frame_kinds == kind].sum(axis=1) for kind in (2, 1, 0)], axis=1)

    def attention_over_time(self, layer: int | None = None, head: int | None = None) -> np.ndarray:
        """Cross-attention ``[tokens, 1500 frames]`` of one head, or the mean of the alignment heads (``None``)."""
        pairs = self.alignment_heads if layer is None else ((layer, head),)
        return torch.stack([self.cross.head(l, h) for l, h in pairs]).mean(0).numpy()

    def agreement(self) -> np.ndarray:
        """Per head ``[layers, heads]``: the share of written tokens whose most attended audio frame lies in the
        stretch of time the word times give that token (a frame either side allowed)."""
        frames = np.round(np.array(self.token_starts) * word_times.FRAMES_PER_SECOND).astype(int)
        peaks = self.cross.weights[..., : max(self.n_frames, 1)].argmax(-1).numpy()  # [layers, heads, tokens]
        inside = (peaks >= frames[:-1] - 1) & (peaks <= np.maximum(frames[1:], frames[:-1] + 1) + 1)
        return inside.mean(-1)


class SpeechModel:
    """A transformers Whisper in eval mode whose attention is read as ``AttentionMaps``."""

    family = "speech"

    def __init__(self, model, tokenizer, features, name: str):
        self.model, self.tokenizer, self.features, self.name = model.eval(), tokenizer, features, name
        self.notice = ""
        config = model.config
        self.n_layers, self.n_heads = config.decoder_layers, config.decoder_attention_heads
        self.n_encoder_layers = config.encoder_layers
        self.max_tokens = config.max_target_positions
        self.vocabulary = Vocabulary.of(model, tokenizer)
        if not self.vocabulary.languages:
            raise ValueError(f"'{name}' is an English-only Whisper; this explorer needs a multilingual one (it detects "
                             f"the language and translates).")
        heads = getattr(model.generation_config, "alignment_heads", None)
        self.alignment_heads = tuple((int(l), int(h)) for l, h in heads) if heads else tuple(
            (l, h) for l in range(self.n_layers // 2, self.n_layers) for h in range(self.n_heads))  # as CTranslate2
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SpeechModel({self.name!r}, layers={self.n_layers}, heads={self.n_heads})"

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.vocabulary.languages)

    def language_names(self) -> dict[str, str]:
        """Each language code Whisper knows, with its name ("de": "German")."""
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        return {code: LANGUAGES.get(code, code).title() for code in self.languages}

    def check_language(self, language) -> str | None:
        """A language code Whisper knows ("de"; a name such as "German" works too), or None to detect it."""
        if language is None or (isinstance(language, str) and not language.strip()):
            return None
        language = text(language, "language (a code such as 'de')", max_length=40)
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

        code = TO_LANGUAGE_CODE.get(language.strip().lower(), language.strip().lower())
        if code not in self.vocabulary.languages:
            raise ValueError(f"Whisper does not know the language '{language[:40]}'. Leave it empty to detect the "
                             f"language, or give one of its {len(self.languages)} codes, such as "
                             f"{', '.join(self.languages[:12])}.")
        return code

    def check_task(self, task) -> str:
        return choice(task, "task ('translate' into English, or 'transcribe': write what is said)", TASKS)

    def run(self, audio, task: str = "translate", language: str | None = None, sample_rate: int | None = None,
            name: str = "") -> SpeechReading:
        """Hear ``audio`` (a path, bytes, ``(samples, rate)``) and write it: every attention of the pass, the words'
        times. ``stop()`` ends the writing early (what was written so far is read)."""
        task, language = self.check_task(task), self.check_language(language)
        heard = read_audio(audio, sample_rate, name)
        features = self.features(heard.samples, sampling_rate=RATE, return_tensors="np")
        mel = torch.from_numpy(features["input_features"])  # [1, mel bins, 3000]
        n_frames = min(len(heard.samples) // HOP, mel.shape[-1]) // 2  # encoder frames that hold audio
        self.stop_flag.clear()
        from explorer.threads import one_thread

        with self._lock, torch.inference_mode():
            hidden, encoder = self._encode(mel, n_frames)
            with one_thread():  # a decoding step's small products lose more to a second thread's hand-offs than they gain
                detected, probability = self._detect(hidden)
                prompt = [self.vocabulary.start, self.vocabulary.languages[language or detected],
                          self.vocabulary.tasks[task], self.vocabulary.no_timestamps]
                written, stopped = self._greedy(hidden, prompt)
            # one pass over all of it, the end token too: Whisper's word times standardise over every row
            read = self.model.model.decoder(torch.tensor([prompt + written + [self.vocabulary.end]]),
                                            encoder_hidden_states=hidden, output_attentions=True, use_cache=False)
        if not written:
            raise ValueError("Stopped before Whisper wrote a word." if stopped else
                             f"Whisper wrote nothing for {heard.name}: it heard no words it could write.")
        return self._reading(heard, task, detected, probability, prompt, written, stopped, read, encoder,
                             mel[0, :, : n_frames * 2].numpy())

    def stop(self) -> None:
        """End a running decoding after its current token."""
        self.stop_flag.set()

    def _encode(self, mel: torch.Tensor, n_frames: int):
        """The encoder's output, and its self-attention over the audio's frames pooled as each layer computes it."""
        pooled, hooks = [], []
        size = -(-n_frames // ENCODER_CELLS)  # frames per block

        def keep(module, args, output) -> None:
            weights = output[1][0, :, :n_frames, :n_frames]  # [heads, frames, frames]
            pooled.append(pool_blocks(weights, size))

        for layer in self.model.model.encoder.layers:
            hooks.append(layer.self_attn.register_forward_hook(keep))
        try:
            hidden = self.model.model.encoder(mel).last_hidden_state
        finally:
            for hook in hooks:
                hook.remove()
        spans = [(start, min(start + size, n_frames)) for start in range(0, n_frames, size)]
        labels = [f"{a / 50:.2f}-{b / 50:.2f} s" for a, b in spans]
        encoder = AttentionMaps(labels, torch.stack(pooled), meta=MapsInfo(
            source=self.name, kind=f"encoder self-attention (blocks of {size * 20} ms: mean over the rows, sum over "
                                   f"the columns)", full_length=n_frames))
        return hidden, encoder

    def _logits(self, hidden, ids, cache=None):
        output = self.model.model.decoder(torch.tensor([ids]), encoder_hidden_states=hidden, cache=cache,
                                          use_cache=True)
        return self.model.proj_out(output.last_hidden_state[0, -1]).float(), output.cache

    def _detect(self, hidden) -> tuple[str, float]:
        """The likeliest language after the start token, and its probability among the languages."""
        logits, _ = self._logits(hidden, [self.vocabulary.start])
        codes = list(self.vocabulary.languages)
        probabilities = torch.softmax(logits[list(self.vocabulary.languages.values())], dim=-1)
        best = int(probabilities.argmax())
        return codes[best], float(probabilities[best])

    def _greedy(self, hidden, prompt: list[int]) -> tuple[list[int], bool]:
        """The likeliest token at each step (the suppressed tokens never; a blank or the end not first), until
        the end token, the decoder's length, or ``stop()``."""
        suppress = torch.tensor(self.vocabulary.suppress, dtype=torch.long)
        first = torch.tensor(self.vocabulary.suppress_first, dtype=torch.long)
        written, cache, step = [], None, list(prompt)
        while len(prompt) + len(written) + 1 < self.max_tokens:  # room for the end token in the reading pass
            if self.stop_flag.is_set():
                return written, True
            logits, cache = self._logits(hidden, step, cache)
            logits[suppress] = -torch.inf
            if not written:
                logits[first] = -torch.inf
            token = int(logits.argmax())
            if token == self.vocabulary.end:
                break
            written.append(token)
            step = [token]
        return written, False

    def _reading(self, heard, task, detected, probability, prompt, written, stopped, read, encoder, mel):
        """The record of one hearing: maps labelled with tokens and times, and the words' times."""
        start, n = len(prompt) - 1, len(written)  # the row of the step that writes the first text token
        cross = torch.stack(read.cross_attentions)[:, 0]  # [layers, heads, positions, 1500]
        self_attention = torch.stack(read.attentions)[:, 0]  # [layers, heads, positions, positions]
        pieces = [self.tokenizer.decode([t]) for t in written]
        labels = [piece.replace("\n", "\\n") or f"<{t}>" for piece, t in zip(pieces, written)]
        read_labels = ([self.tokenizer.convert_ids_to_tokens(t) for t in prompt] + labels)[:start + n]
        meta = dict(source=self.name, notice=heard.notice)
        frames = [f"{i / 50:.2f} s" for i in range(cross.shape[-1])]
        alignment = torch.stack([cross[l, h] for l, h in self.alignment_heads]).numpy()  # [heads, positions, 1500]
        n_frames = len(mel[0]) // 2
        starts = word_times.token_starts(alignment, n_frames, start, n + 1)
        per_second = word_times.FRAMES_PER_SECOND
        groups = word_times.split_words(pieces, detected)
        words = tuple((self.tokenizer.decode([written[i] for i in group]).strip(), a / per_second, b / per_second)
                      for group, (_, a, b) in zip(groups, word_times.word_times(pieces, starts, detected)))
        word_of_token = tuple(w for w, group in enumerate(groups) for _ in group)
        kinds = sound_frames(heard.samples, cross.shape[-1])
        kinds[n_frames:] = 0
        return SpeechReading(
            text=self.tokenizer.decode(written).strip(), tokens=tuple(written),
            cross=AttentionMaps(labels, cross[:, :, start:start + n], key_tokens=frames,
                                meta=MapsInfo(kind="cross-attention", **meta)),
            encoder=encoder,
            decoder=AttentionMaps(labels, self_attention[:, :, start:start + n, :start + n], key_tokens=read_labels,
                                  meta=MapsInfo(kind="decoder self-attention", **meta)),
            language=detected, language_probability=probability, words=words, word_of_token=word_of_token,
            token_starts=tuple(float(s) / per_second for s in starts), alignment_heads=self.alignment_heads,
            task=task, audio=heard, mel=mel, frame_kinds=kinds,
            notice=heard.notice, stopped=stopped)


def pool_blocks(weights: torch.Tensor, size: int) -> torch.Tensor:
    """``[..., n, n]`` weights in blocks of ``size`` frames a side: the mean over a block's rows (queries) of the sum
    over its columns (keys), so a row still says how much weight went to each stretch of time."""
    if size == 1:
        return weights.clone()
    n = weights.shape[-1]
    blocks = -(-n // size)
    padded = torch.nn.functional.pad(weights, (0, blocks * size - n, 0, blocks * size - n))
    summed = padded.unflatten(-1, (blocks, size)).sum(-1)  # [..., n', blocks]
    counts = torch.full((blocks,), float(size))
    counts[-1] = n - (blocks - 1) * size
    return summed.unflatten(-2, (blocks, size)).sum(-2) / counts[:, None]
