"""Whisper base, converted from its packages, against CTranslate2 running the same file, and against transformers'
own ``output_attentions``: the same greedy tokens, the same word alignment, the same maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data.audio import CLIPS, clip_path, read_audio
from explorer.models import speech, whisper_file

READINGS = [(name, "transcribe") for name in CLIPS] + [("German", "translate"), ("French", "translate")]


@pytest.fixture(scope="module")
def reference():
    """CTranslate2's Whisper on the joined packaged file (held in memory), the independent reference."""
    import ctranslate2

    folders = whisper_file.package_folders()
    files = {"model.bin": whisper_file.joined_model(folders), "config.json": (folders[0] / "config.json").read_bytes(),
             "vocabulary.txt": (folders[0] / "vocabulary.txt").read_bytes()}
    return ctranslate2.models.Whisper("whisper-base", files=files, intra_threads=1)


@pytest.fixture(scope="module")
def heard(whisper, reference):
    """Per (clip, task): our reading, and CTranslate2's greedy tokens and token start frames for the same mel."""
    import ctranslate2

    out, encoded = {}, {}
    for name, task in READINGS:
        reading = whisper.run(clip_path(name), task)
        mel = whisper.features(reading.audio.samples, sampling_rate=16_000, return_tensors="np")["input_features"]
        if name not in encoded:
            encoded[name] = reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))
        v = whisper.vocabulary
        prompt = [v.start, v.languages[CLIPS[name].language], v.tasks[task], v.no_timestamps]
        tokens = reference.generate(encoded[name], [prompt], beam_size=1)[0].sequences_ids[0]
        aligned = reference.align(encoded[name], prompt[:3], [list(reading.tokens)], len(reading.audio.samples) // 160)
        rows, cols = np.array(aligned[0].alignments).T
        out[name, task] = reading, tokens, cols[np.diff(rows, prepend=-1) > 0]
    return out


@pytest.mark.parametrize("name, task", READINGS)
def test_greedy_tokens_equal_ctranslate2(heard, name, task):
    reading, tokens, _ = heard[name, task]
    assert list(reading.tokens) == list(tokens)
    assert reading.language == CLIPS[name].language


def test_the_clips_are_transcribed_word_for_word(heard):
    import re

    def words(text):
        return re.sub(r"[^\w' ]", "", text.lower()).split()

    for name in CLIPS:
        assert words(heard[name, "transcribe"][0].text) == words(CLIPS[name].text), name


@pytest.mark.parametrize("name, task", READINGS)
def test_alignment_matches_ctranslate2(heard, name, task):
    reading, _, starts = heard[name, task]
    ours = np.round(np.array(reading.token_starts) * 50).astype(int)
    assert len(ours) == len(starts) == len(reading.tokens) + 1  # the text tokens and the end token
    assert np.mean(np.abs(ours - starts) <= 2) >= 0.9


def test_words_are_laid_in_order_over_the_clip(heard):
    reading = heard["German", "transcribe"][0]
    assert [w for w, _, _ in reading.words][:2] == ["Guten", "Morgen."]
    times = [t for _, start, end in reading.words for t in (start, end)]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= reading.audio.duration + 0.1


def test_maps_equal_output_attentions(whisper, heard):
    """The record's rows are the steps that write each token; encoder blocks pool transformers' own weights."""
    reading = heard["German", "translate"][0]
    v = whisper.vocabulary
    prompt = [v.start, v.languages["de"], v.tasks["translate"], v.no_timestamps]
    features = whisper.features(reading.audio.samples, sampling_rate=16_000, return_tensors="pt")["input_features"]
    with torch.inference_mode():
        out = whisper.model(input_features=features, decoder_input_ids=torch.tensor([prompt + list(reading.tokens)]),
                            output_attentions=True)
    n, start = len(reading.tokens), len(prompt) - 1
    cross = torch.stack(out.cross_attentions)[:, 0, :, start:start + n]
    assert reading.cross.weights.shape == (6, 8, n, 1500)
    torch.testing.assert_close(reading.cross.weights, cross, atol=1e-5, rtol=1e-4)
    decoder = torch.stack(out.decoder_attentions)[:, 0, :, start:start + n, :start + n]
    torch.testing.assert_close(reading.decoder.weights, decoder, atol=1e-5, rtol=1e-4)
    assert reading.cross.keys[50] == "1.00 s" and reading.decoder.keys[:2] == ("<|startoftranscript|>", "<|de|>")
    frames = reading.n_frames
    full = torch.stack(out.encoder_attentions)[:, 0, :, :frames, :frames].numpy()
    size = -(-frames // speech.ENCODER_CELLS)
    blocks = range(0, frames, size)
    by_hand = np.array([[[[full[l, h, a:a + size, b:b + size].sum(axis=1).mean() for b in blocks] for a in blocks]
                         for h in range(8)] for l in range(6)])
    np.testing.assert_allclose(reading.encoder.weights.numpy(), by_hand, atol=1e-5)


def test_weight_on_sound_silence_and_padding_adds_up(heard):
    reading = heard["English", "transcribe"][0]
    shares = reading.weight_on()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-4)
    assert shares[:, 0].mean() > 0.5  # the alignment heads look at the sound of what is written
    assert reading.weight_on(0, 0).shape == (len(reading.tokens), 3)


def test_a_converted_48k_stereo_8_bit_file_is_heard_with_a_notice(whisper, tmp_path):
    import soundfile
    from scipy.signal import resample_poly

    samples = read_audio(clip_path("English")).samples
    loud = resample_poly(samples, 3, 1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([loud, loud * 0.8], axis=1), 48_000, subtype="PCM_U8")
    reading = whisper.run(path, "transcribe", language="en")
    assert "Converted from 48 kHz 8-bit stereo" in reading.notice
    assert "London" in reading.text


def test_bad_task_language_and_audio_are_refused_in_words(whisper, tmp_path):
    with pytest.raises(ValueError, match="does not know the language 'klingon'"):
        whisper.run(clip_path("English"), language="klingon")
    with pytest.raises(ValueError, match="'translate'"):
        whisper.run(clip_path("English"), task="summarise")
    assert whisper.check_language("German") == "de"
    with pytest.raises(ValueError, match="silent"):
        whisper.run((np.zeros(16_000 * 3, dtype=np.float32), 16_000))
    (tmp_path / "notes.wav").write_text("these are not sounds")
    with pytest.raises(ValueError, match="not an audio file"):
        whisper.run(tmp_path / "notes.wav")
    (tmp_path / "empty.flac").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        whisper.run(tmp_path / "empty.flac")
    with pytest.raises(ValueError, match="empty"):
        whisper.run(b"")


def test_conversion_maps_every_array_with_none_left_over(whisper):
    from transformers import WhisperForConditionalGeneration

    arrays, aliases = whisper_file.read_arrays(whisper_file.joined_model())
    state, _ = whisper_file.transformers_state(arrays, aliases)
    model_keys = set(WhisperForConditionalGeneration(whisper.model.config).state_dict())
    assert set(state) == model_keys - {"proj_out.weight"}  # the output layer is the embedding, tied
    _, info = WhisperForConditionalGeneration.from_pretrained(speech.converted_dir(), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    extra = dict(arrays, **{"decoder/output_bias": np.zeros(2, np.float16)})
    with pytest.raises(ValueError, match="does not place: decoder/output_bias"):
        whisper_file.transformers_state(extra, aliases)
    fewer = {k: v for k, v in arrays.items() if k != "decoder/layer_5/ffn/linear_1/bias"}
    with pytest.raises(ValueError, match="has no array decoder/layer_5/ffn/linear_1/bias"):
        whisper_file.transformers_state(fewer, aliases)


def halves(tmp_path, second: bytes | None):
    """Package-like folders: the real first half (linked) and ``second`` as the second (None: missing)."""
    real = whisper_file.package_folders()
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    (one / "model.bin.part1").symlink_to(real[0] / "model.bin.part1")
    if second is not None:
        (two / "model.bin.part2").write_bytes(second)
    return one, two


def test_a_missing_a_cut_and_a_damaged_half_are_refused(tmp_path):
    second = (whisper_file.package_folders()[1] / "model.bin.part2").read_bytes()
    with pytest.raises(ValueError, match="half 2 .* is missing"):
        whisper_file.joined_model(halves(tmp_path / "a", None))
    with pytest.raises(ValueError, match="one is damaged or cut short"):
        whisper_file.joined_model(halves(tmp_path / "b", second[:1_000_000]))
    flipped = bytearray(second)
    flipped[5_000_000] ^= 0xFF
    with pytest.raises(ValueError, match="wrong checksum"):
        whisper_file.joined_model(halves(tmp_path / "c", bytes(flipped)))


def test_a_damaged_cache_is_rebuilt_with_a_notice(whisper, tmp_path, monkeypatch):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(speech.converted_dir(), cache / speech.DEFAULT_MODEL)
    (cache / speech.DEFAULT_MODEL / "model.safetensors").write_bytes(b"not weights")
    monkeypatch.setenv("AE_CACHE", str(cache))
    model = speech.load_speech()
    assert "damaged, so it was rebuilt" in model.notice
    (cache / speech.DEFAULT_MODEL / "complete.json").write_text('{"sha256": "an older conversion"}')
    assert "another version of the explorer, so it was rebuilt" in speech.load_speech().notice
    assert speech.load_speech().notice == ""
    assert model.run(clip_path("English"), "transcribe").tokens == whisper.run(clip_path("English"), "transcribe").tokens


def test_a_local_whisper_folder_loads_and_other_tabs_point_here(tmp_path, whisper):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from explorer.models import pretrained

    torch.manual_seed(0)
    config = WhisperConfig(**{k: getattr(whisper.model.config, k) for k in ("vocab_size", "decoder_start_token_id",
                                                                           "suppress_tokens", "begin_suppress_tokens")},
                           d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_target_positions=32)
    WhisperForConditionalGeneration(config).save_pretrained(tmp_path)
    whisper.tokenizer.save_pretrained(tmp_path)
    whisper.features.save_pretrained(tmp_path)
    tiny = speech.load_speech(str(tmp_path))
    assert (tiny.n_layers, tiny.n_heads, tiny.alignment_heads) == (2, 2, ((1, 0), (1, 1)))
    reading = tiny.run(clip_path("Italian"), "transcribe", language="it")  # random weights: some tokens, labelled
    assert reading.cross.weights.shape[:2] == (2, 2) and len(reading.words) >= 1
    assert isinstance(pretrained.load(str(tmp_path)), speech.SpeechModel)
    with pytest.raises(ValueError, match="open it in the Speech tab"):
        pretrained.expect_family(tiny, "encoder", "tiny")
    with pytest.raises(ValueError, match="open it in the Pretrained tab"):
        speech.load_speech(str(pretrained.default_model_dir()))


def test_stop_keeps_what_was_written(whisper, monkeypatch):
    calls, original = [], whisper._logits

    def counting(*args):
        calls.append(1)
        if len(calls) == 4:  # the language, then three tokens
            whisper.stop()
        return original(*args)

    monkeypatch.setattr(whisper, "_logits", counting)
    reading = whisper.run(clip_path("English"), "transcribe")
    assert reading.stopped and len(reading.tokens) == 3 and reading.text == "Good morning."
    assert reading.cross.weights.shape[2] == 3 and len(reading.token_starts) == 4
