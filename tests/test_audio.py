"""Reading sound for Whisper: every kind of input becomes 16 kHz mono, at most 30 s, and each change is said."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from explorer.data.audio import CLIP_FOLDER, CLIPS, RATE, clip_path, read_audio, sound_frames, wav_bytes


def tone(seconds: float, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def test_the_clips_are_small_files_that_read_as_they_are():
    sizes = [clip_path(name).stat().st_size for name in CLIPS]
    assert len(CLIPS) >= 4 and sum(sizes) < 1_000_000
    assert len({clip.language for clip in CLIPS.values()}) == len(CLIPS)
    for name in CLIPS:
        audio = read_audio(clip_path(name))
        assert audio.notice == "" and 3 < audio.duration < 10 and audio.samples.dtype == np.float32
    assert {path.name for path in CLIP_FOLDER.glob("*.flac")} == {clip.file for clip in CLIPS.values()}
    with pytest.raises(ValueError, match="Choose one of: German"):
        clip_path("Klingon")


def test_ten_minutes_are_cut_to_the_first_thirty_seconds_with_a_notice():
    audio = read_audio((tone(600), RATE), name="the lecture")
    assert audio.duration == 30 and audio.seconds == 600
    assert "'the lecture' is 10:00 min long" in audio.notice and "first 30 s" in audio.notice


def test_a_long_file_is_read_only_as_far_as_whisper_hears():
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(600, 8000), 8000, format="FLAC")
    audio = read_audio(buffer.getvalue(), name="long.flac")
    assert audio.duration == 30 and "10:00 min" in audio.notice and "8 kHz" in audio.notice


@pytest.mark.parametrize("rate, channels, subtype, said", [
    (48_000, 1, "PCM_16", "48 kHz"), (16_000, 2, "PCM_16", "stereo"), (16_000, 1, "PCM_U8", "8-bit"),
    (44_100, 2, "PCM_U8", "44.1 kHz 8-bit stereo")])
def test_other_rates_depths_and_channels_are_converted_with_a_notice(rate, channels, subtype, said):
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(2, rate, channels), rate, format="WAV", subtype=subtype)
    audio = read_audio(buffer.getvalue(), name="mine.wav")
    assert f"Converted from {said} to 16 kHz mono" in audio.notice
    assert abs(audio.duration - 2) < 0.01
    # the tone survives: its loudest frequency is still 440 Hz
    spectrum = np.abs(np.fft.rfft(audio.samples))
    assert abs(np.argmax(spectrum) * RATE / len(audio.samples) - 440) < 2


def test_samples_in_any_layout_and_type():
    wave = tone(1)
    assert read_audio(wave, sample_rate=RATE).notice == ""
    as_int = (wave * 32767).astype(np.int16)
    np.testing.assert_allclose(read_audio((as_int, RATE)).samples, wave, atol=1e-4)
    channels_first = np.stack([wave, wave])  # [2, n]
    assert "stereo" in read_audio((channels_first, RATE)).notice
    with pytest.raises(ValueError, match="sample rate"):
        read_audio(wave)
    with pytest.raises(ValueError, match="sample rate"):
        read_audio((wave, 0))
    with pytest.raises(TypeError, match="path, bytes"):
        read_audio(["not", "audio"])


@pytest.mark.parametrize("audio, words", [
    (b"", "empty"), (b"RIFF and then some words", "not an audio file"), (np.zeros(RATE, np.float32), "silent"),
    (np.full(RATE, np.nan, np.float32), "not numbers"), (tone(0.05), "too short"),
    (1e-4 * tone(2), "silent")])
def test_what_holds_no_speech_is_refused_in_words(audio, words):
    with pytest.raises(ValueError, match=words):
        read_audio(audio, sample_rate=None if isinstance(audio, bytes) else RATE)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(ValueError, match="no audio file at"):
        read_audio(tmp_path / "gone.wav")


def test_frames_are_sound_silence_or_padding():
    samples = np.concatenate([tone(1), np.zeros(RATE, np.float32)])
    kinds = sound_frames(samples, 1500)
    assert (kinds[:50] == 2).all() and (kinds[50:100] == 1).all() and (kinds[100:] == 0).all()


def test_wav_bytes_round_trip():
    samples, rate = soundfile.read(io.BytesIO(wav_bytes(tone(1))), dtype="float32")
    assert rate == RATE and np.abs(samples - tone(1)).max() < 1e-4
