"""Sound for Whisper: a file, bytes or samples read into 16 kHz mono, at most 30 s, with a notice of each change.

``soundfile`` (libsndfile) reads WAV, FLAC, OGG (Vorbis, Opus) and MP3 from a path or from bytes, in any bit depth,
as floats; ``scipy.signal.resample_poly`` brings any sample rate to Whisper's 16 kHz; stereo is averaged to mono.
Only the first 30 s are read (Whisper hears 30 s at a time), so a long file costs no more than a short one. A file
that is empty, not audio, or silent is refused with a ``ValueError`` in words; nothing else is refused.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from explorer.arguments import path as user_path, shown, text, whole

RATE = 16_000  # Whisper's sample rate
SECONDS = 30  # what Whisper hears at once
FRAME = 320  # samples per encoder frame (20 ms): Whisper's mel hop of 10 ms, halved by its second convolution
SILENT_DB = -50.0  # a recording whose loudest 20 ms stay below this (dB of full scale) is silence
SOUND_DB = 30.0  # frames within this of the loudest frame count as sound; quieter ones as silence
FORMATS = "WAV, FLAC, OGG or MP3"
SHORTEST = 0.1  # seconds: shorter input holds no word
CLIP_FOLDER = Path(__file__).with_name("clips")


@dataclass(frozen=True)
class Clip:
    """A bundled sample: synthetic speech made with espeak-ng (``clips/make_clips.sh``)."""

    file: str
    language: str  # the code Whisper knows it by
    text: str  # what is said
    english: str  # a translation by hand, to hold Whisper's against


CLIPS = {
    "German": Clip("german.flac", "de", "Guten Morgen. Heute gehe ich mit meinem Freund in den Park.",
                   "Good morning. Today I am going to the park with my friend."),
    "French": Clip("french.flac", "fr", "Bonjour, je m'appelle Marie et j'habite à Paris.",
                   "Hello, my name is Marie and I live in Paris."),
    "Spanish": Clip("spanish.flac", "es", "Buenos días. Me llamo Carlos y vivo en Madrid.",
                    "Good morning. My name is Carlos and I live in Madrid."),
    "Italian": Clip("italian.flac", "it", "Ciao, come stai? Io sto molto bene, grazie.",
                    "Hi, how are you? I am very well, thank you."),
    "English": Clip("english.flac", "en", "Good morning. My name is Anna and I live in London.",
                    "Good morning. My name is Anna and I live in London."),
}


def clip_path(name: str) -> Path:
    """The file of the bundled clip called ``name``; a ValueError lists the clips."""
    if name not in CLIPS:
        raise ValueError(f"There is no sample clip called '{str(name)[:40]}'. Choose one of: {', '.join(CLIPS)}.")
    return CLIP_FOLDER / CLIPS[name].file


@dataclass(frozen=True, eq=False)
class Audio:
    """What Whisper hears: 16 kHz mono samples (at most 30 s), and how they were made from the input."""

    samples: np.ndarray  # float32 [n], at RATE
    seconds: float  # length of the whole input (before cutting)
    name: str = ""  # where it came from (a file's name, a clip, "microphone")
    notice: str = ""  # each conversion, in words: "converted from 48 kHz stereo 8-bit", "cut to the first 30 s"

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE


def read_audio(audio, sample_rate: int | None = None, name: str = "") -> Audio:
    """``audio`` as a path, bytes, ``(samples, rate)`` or samples with ``sample_rate``, read into an ``Audio``."""
    name = text(name, "name of the audio", max_length=200)
    if isinstance(audio, tuple) and len(audio) == 2:
        if sample_rate is not None:
            raise ValueError("The audio is a (samples, sample rate) pair and sample_rate is given as well: give the "
                             "sample rate once.")
        audio, sample_rate = audio
    if isinstance(audio, (str, Path)):
        path = user_path(audio, "audio file")
        if not path.is_file():
            raise ValueError(f"There is no audio file at {path}.")
        return _from_file(path, name or path.name)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return _from_file(io.BytesIO(bytes(audio)), name or "the file")
    if isinstance(audio, np.ndarray) or hasattr(audio, "numpy"):
        if sample_rate is None:
            raise ValueError("Give the samples' sample rate: run((samples, 44100)) or sample_rate=44100.")
        return _from_samples(np.asarray(audio), _rate(sample_rate), name or "the samples")
    raise TypeError(f"Audio must be a path, bytes, or (samples, sample_rate); got {shown(audio)}.")


def subject(name: str) -> str:
    """``name`` where it starts a sentence: the explorer's own words for nameless audio capitalised, a file's name
    quoted (a name that starts in lower case stays as it is)."""
    return name[:1].upper() + name[1:] if name in ("the file", "the samples") else f"'{name}'"


def _rate(sample_rate) -> int:
    return whole(sample_rate, "sample rate", 1000, 384_000, wanted="a whole number of samples per second from 1,000 "
                 "to 384,000")


def _from_file(source, name: str) -> Audio:
    import soundfile

    if isinstance(source, io.BytesIO) and not source.getbuffer().nbytes or isinstance(source, Path) \
            and not source.stat().st_size:
        raise ValueError(f"{subject(name)} is empty: there is no sound in it.")
    try:
        with soundfile.SoundFile(source) as sound:
            rate, channels, subtype, frames = sound.samplerate, sound.channels, sound.subtype, sound.frames
            samples = sound.read(frames=min(frames, rate * SECONDS) if frames > 0 else rate * SECONDS,
                                 dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise ValueError(f"{subject(name)} is not an audio file this page can read: use {FORMATS}.") from None
    seconds = frames / rate if frames > 0 else len(samples) / rate
    depth = {"PCM_U8": "8-bit", "PCM_S8": "8-bit"}.get(subtype, "")
    return _from_samples(samples, rate, name, seconds, depth)


def _from_samples(samples: np.ndarray, rate: int, name: str, seconds: float | None = None, depth: str = "") -> Audio:
    if samples.dtype.kind not in "fiu" or samples.ndim not in (1, 2):
        raise ValueError(f"Samples must be numbers, one column per channel; got {samples.dtype} of shape "
                         f"{samples.shape}.")
    if samples.dtype.kind in "iu":  # whole numbers: scale to [-1, 1] by their type's range
        info = np.iinfo(samples.dtype)
        depth = depth or (f"{info.bits}-bit" if info.bits < 16 else "")
        samples = (samples.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    samples = samples.reshape(len(samples), -1) if samples.ndim == 2 else samples[:, None]
    if samples.shape[1] > 64:  # (channels, n) given: channels are the short side
        samples = samples.T
    if not len(samples):
        raise ValueError(f"{subject(name)} is empty: there is no sound in it.")
    if not np.isfinite(samples).all():
        raise ValueError(f"{subject(name)} has samples that are not numbers (NaN or infinite).")
    seconds = len(samples) / rate if seconds is None else seconds
    samples = samples[: rate * SECONDS]
    changes = [depth] if depth else []
    if samples.shape[1] > 1:
        changes.append("stereo" if samples.shape[1] == 2 else f"{samples.shape[1]} channels")
        samples = samples.mean(axis=1, keepdims=True)
    mono = samples[:, 0].astype(np.float32)
    if rate != RATE:
        from scipy.signal import resample_poly

        changes.insert(0, f"{rate / 1000:g} kHz")
        ratio = Fraction(RATE, rate).limit_denominator(1000)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
    if len(mono) < SHORTEST * RATE:
        raise ValueError(f"{subject(name)} is only {1000 * len(mono) / RATE:.0f} ms long: too short to hold a word.")
    notices = [f"Converted from {' '.join(changes)} to 16 kHz mono, as Whisper hears."] if changes else []
    if seconds > SECONDS + 0.01:
        notices.append(f"{subject(name)} is {_clock(seconds)} long; Whisper hears 30 s at a time, so only the first 30 s "
                       f"were used.")
    audio = Audio(np.clip(mono, -1.0, 1.0), seconds, name, " ".join(notices))
    check_sound(audio)
    return audio


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d} min" if minutes else f"{seconds:.1f} s"


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """Loudness of each 20 ms encoder frame, in dB of full scale (RMS)."""
    n = math.ceil(len(samples) / FRAME)
    padded = np.zeros(n * FRAME, dtype=np.float32)
    padded[: len(samples)] = samples
    rms = np.sqrt((padded.reshape(n, FRAME).astype(np.float64) ** 2).mean(axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def check_sound(audio: Audio) -> None:
    """A ValueError for a recording with no sound in it (a muted microphone, a file of zeros)."""
    loudest = float(frame_levels(audio.samples).max())
    if loudest < SILENT_DB:
        raise ValueError(f"{subject(audio.name)} is silent (its loudest moment is "
                         f"{loudest:.0f} dB, below {SILENT_DB:.0f} dB): check that the microphone is on and close, "
                         "then record again.")


def sound_frames(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """Per encoder frame (``n_frames`` of them, 30 s): 0 padding after the audio, 1 silence, 2 sound."""
    levels = frame_levels(samples)
    kinds = np.zeros(n_frames, dtype=np.int8)
    kinds[: len(levels)] = np.where(levels >= levels.max() - SOUND_DB, 2, 1)[:n_frames]
    return kinds


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    """16-bit PCM WAV of ``samples`` (for the page to play a word's segment)."""
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()
