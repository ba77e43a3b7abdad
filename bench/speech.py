"""Speech tab: Whisper base converted from its packages, against CTranslate2 running the same file.

Run: ``python bench/speech.py``. CTranslate2 (the ``test`` extra) is the reference, measured in the same run:

- ``conversion_s``: joining the two halves, checking them and writing the transformers folder into an empty
  cache; ``ct2_load_s``: CTranslate2 loading the same joined file (the least any use of the file costs).
- ``warm_load_s``: ``load_speech()`` from that cache in a fresh process, after its imports (``import_s``, the
  same for any tab, is given apart); ``ct2_fresh_load_s``: CTranslate2 loading the file in a fresh process too.
  Goal: ``warm_load_s`` at most 3 s.
- ``translate_10s_s``: ``SpeechModel.run`` translating a 10 s German clip (the bundled one, repeated and cut):
  reading the audio, the encoder with its pooled self-attention, language detection, greedy decoding, one pass for
  every attention, the word times; ``ct2_translate_10s_s``: CTranslate2 detecting the language, translating
  greedily and aligning the same mel (its encoder runs for each of the three, as faster-whisper's word
  timestamps do). Goal: ``translate_10s_s`` at most 5 s on 2 cores.
- ``word_start_ms_median`` / ``_max`` and ``words_within_40ms``: how far our words' start times are from those
  built the same way from CTranslate2's ``Whisper.align`` (same text tokens), over every bundled clip transcribed
  and translated; one encoder frame is 20 ms.
Medians of ``--repeats`` runs (3); ratios come from the medians of this run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FRESH_LOAD = """
import json, sys, time
start = time.perf_counter()
import ctranslate2, torch
from explorer.models import speech
from explorer.models.hf import names
names("WhisperForConditionalGeneration", "AutoTokenizer", "WhisperFeatureExtractor")
imported = time.perf_counter()
model = speech.load_speech()
loaded = time.perf_counter()
ctranslate2.models.Whisper(sys.argv[1], intra_threads=torch.get_num_threads())
print(json.dumps(dict(import_s=imported - start, warm_load_s=loaded - imported,
                      ct2_fresh_load_s=time.perf_counter() - loaded)))
"""


def child_env() -> dict:
    """This environment, with this checkout first on the path of a fresh process."""
    root = str(Path(__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))


def median_s(times) -> float:
    return round(statistics.median(times), 3)


def reference_folder(target: Path) -> Path:
    """The joined packaged file as a CTranslate2 model folder (model.bin, config.json, vocabulary.txt)."""
    from explorer.models import whisper_file

    folders = whisper_file.package_folders()
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.bin").write_bytes(whisper_file.joined_model(folders))
    for name in ("config.json", "vocabulary.txt"):
        (target / name).write_bytes((folders[0] / name).read_bytes())
    return target


def ten_seconds():
    from explorer.data.audio import RATE, clip_path, read_audio

    german = read_audio(clip_path("German")).samples
    return np.concatenate([german, np.zeros(RATE // 4, np.float32), german])[: 10 * RATE], RATE


def ct2_translate(reference, model, samples) -> None:
    """What faster-whisper does for one 30 s window with word timestamps: detect, generate, align."""
    import ctranslate2

    mel = model.features(samples, sampling_rate=16_000, return_tensors="np")["input_features"]
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))
    language = reference.detect_language(features)[0][0][0]
    v = model.vocabulary
    prompt = [v.start, v.languages[language.strip("<|>")], v.tasks["translate"], v.no_timestamps]
    tokens = reference.generate(features, [prompt], beam_size=1)[0].sequences_ids[0]
    reference.align(features, prompt[:3], [tokens], len(samples) // 160)


def word_starts(reference, model, reading) -> tuple[np.ndarray, np.ndarray]:
    """Our words' start times and CTranslate2's, for the same tokens, in seconds."""
    import ctranslate2

    from explorer.models import word_times

    mel = model.features(reading.audio.samples, sampling_rate=16_000, return_tensors="np")["input_features"]
    v = model.vocabulary
    prompt = [v.start, v.languages[reading.language], v.tasks[reading.task]]
    aligned = reference.align(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), prompt,
                              [list(reading.tokens)], len(reading.audio.samples) // 160)[0]
    rows, cols = np.array(aligned.alignments).T
    starts = cols[np.diff(rows, prepend=-1) > 0]
    pieces = [model.tokenizer.decode([t]) for t in reading.tokens]
    theirs = np.array([a for _, a, _ in word_times.word_times(pieces, starts, reading.language)]) / 50
    return np.array([start for _, start, _ in reading.words]), theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import ctranslate2
    import torch

    from explorer.data.audio import CLIPS, clip_path
    from explorer.models import speech

    threads = torch.get_num_threads()
    print(f"torch_threads: {threads}")
    print(f"load_average_1min: {os.getloadavg()[0]:.1f}")  # other work on the machine slows both sides, unevenly
    with tempfile.TemporaryDirectory() as folder:
        os.environ["AE_CACHE"] = str(Path(folder) / "cache")
        start = time.perf_counter()
        speech.convert_package(speech.converted_dir())
        conversion = time.perf_counter() - start
        files = reference_folder(Path(folder) / "ct2")
        start = time.perf_counter()
        reference = ctranslate2.models.Whisper(str(files), intra_threads=threads)
        ct2_load = time.perf_counter() - start
        print(f"conversion_s: {conversion:.2f}")
        print(f"ct2_load_s: {ct2_load:.2f}")
        print(f"conversion_over_ct2_load: {conversion / ct2_load:.1f}")
        fresh = [json.loads(subprocess.run([sys.executable, "-c", FRESH_LOAD, str(files)], capture_output=True,
                                           text=True, check=True, env=child_env()).stdout.splitlines()[-1])
                 for _ in range(args.repeats)]
        for name in ("import_s", "warm_load_s", "ct2_fresh_load_s"):
            print(f"{name}: {median_s([f[name] for f in fresh])}")
        warm = median_s([f["warm_load_s"] for f in fresh])
        print(f"warm_load_over_ct2_load: {warm / median_s([f['ct2_fresh_load_s'] for f in fresh]):.1f}")
        print(f"warm_load_goal_3s_met: {warm <= 3.0}")

        model = speech.load_speech()
        samples = ten_seconds()
        ours, theirs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.run(samples, "translate")
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            ct2_translate(reference, model, samples[0])
            theirs.append(time.perf_counter() - start)
        print(f"translate_10s_s: {median_s(ours)}")
        print(f"ct2_translate_10s_s: {median_s(theirs)}")
        print(f"translate_over_ct2: {median_s(ours) / median_s(theirs):.1f}")
        print(f"translate_goal_5s_met: {median_s(ours) <= 5.0}")

        gaps = []
        for name in CLIPS:
            for task in ("transcribe", "translate"):
                mine, reference_starts = word_starts(reference, model, model.run(clip_path(name), task))
                gaps.extend(np.abs(mine - reference_starts) * 1000)
        print(f"words_compared: {len(gaps)}")
        print(f"word_start_ms_median: {statistics.median(gaps):.0f}")
        print(f"word_start_ms_max: {max(gaps):.0f}")
        print(f"words_within_40ms: {np.mean(np.array(gaps) <= 40):.3f}")


if __name__ == "__main__":
    main()
