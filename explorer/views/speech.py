"""Figures for the Speech tab: a ``SpeechReading`` in, records for the canvas views out.

- ``spectrogram``: the log-mel spectrogram of what Whisper heard (pooled to the canvas's width), the picked token's
  cross-attention over time to draw over it, and the words laid along the time axis (for ``SpeechView``).
- ``cross_map``, ``encoder_map``, ``decoder_map``: one head of each attention for a ``HeatmapView``; time is pooled
  into blocks a canvas can show (each cell sums the weight of its frames, so a row still sums to its share).
- ``heads_grid``: every decoder head's agreement with the word times, the alignment heads outlined.
- ``summary_html``: the text, the language, how it compares with the clip's own words, and where the weight went.
Colour scales are fixed per view so frames compare.
"""

from __future__ import annotations

import html
from dataclasses import replace

import numpy as np

from explorer.views.heatmaps import CanvasMap, outline
from explorer.views.pretrained import HIGHLIGHT, matrix_update

MAX_COLUMNS = 600  # spectrogram columns sent (10 ms each; longer audio is averaged into wider columns)
TIME_CELLS = 150  # time blocks of a map over the audio
PER_SECOND = 50  # encoder frames per second
ENCODER_TOP = 0.25  # colour scale top of the encoder's pooled map: its weight is spread thin over many frames


def pool_columns(matrix: np.ndarray, columns: int, reduce=np.mean) -> np.ndarray:
    """``matrix`` ``[rows, n]`` with its columns grouped into at most ``columns`` blocks (``reduce`` over each)."""
    n = matrix.shape[1]
    size = -(-n // columns)
    return np.stack([reduce(matrix[:, a:a + size], axis=1) for a in range(0, n, size)], axis=1), size


def spectrogram(reading, token: int, layer: int, head: int | None) -> dict:
    """What ``SpeechView`` draws: mel ``[bins, columns]`` (low bins at the bottom), the attention per frame of the
    step writing ``token`` (``head`` None: the alignment heads' mean), the words with their times."""
    mel, _ = pool_columns(np.asarray(reading.mel, dtype=np.float32), MAX_COLUMNS)
    frames = reading.n_frames
    weights = reading.attention_over_time(None if head is None else layer, head)[token]  # [1500]
    on_sound = float(weights[reading.frame_kinds == 2].sum())
    label = reading.cross.tokens[token]
    who = "the alignment heads (mean)" if head is None else f"layer {layer}, head {head}"
    title = (f"cross-attention of {who} while writing '{label.strip()}': {on_sound:.0%} of it on sound, "
             f"{float(weights[frames:].sum()):.0%} on the silence after the audio")
    words = [dict(text=w, start=round(a, 3), end=round(b, 3)) for w, a, b in reading.words]
    return dict(mel=mel, mel_range=[-1.0, 1.5], attention=weights[:frames].astype(np.float32), seconds=frames / PER_SECOND,
                words=words, picked=reading.word_of_token[token], title=title)


def _time_labels(n_frames: int, size: int) -> list[str]:
    return [f"{a / PER_SECOND:.2f} s" for a in range(0, n_frames, size)]


def cross_map(reading, layer: int, head: int, token: int) -> CanvasMap:
    """One head's cross-attention: written tokens down, the audio's time across (pooled to blocks of frames)."""
    weights = reading.cross.head(layer, head).numpy()  # [tokens, 1500]
    frames = reading.n_frames
    matrix, size = pool_columns(weights[:, :frames], TIME_CELLS, np.sum)
    padding = float(weights[:, frames:].sum(axis=1).mean())
    title = (f"cross-attention, layer {layer}, head {head} (blocks of {size * 20} ms; "
             f"{padding:.0%} of the weight on the silence after the audio)")
    update = matrix_update(matrix, _time_labels(frames, size), reading.cross.tokens, title)
    return replace(update, outlines=(outline(-0.5, matrix.shape[1] - 0.5, token - 0.5, token + 0.5, color=HIGHLIGHT),),
                   zmax=1.0, x_title="time in the audio", y_title="written token", x_angle=-90)


def encoder_map(reading, layer: int, head: int) -> CanvasMap:
    """One encoder head over the audio's frames (pooled when the record was made): time down and across."""
    maps = reading.encoder
    block = round(1000 * float(maps.tokens[0].split("-")[1].split()[0]))  # labels are "0.00-0.04 s"
    title = (f"encoder self-attention, layer {layer}, head {head} (blocks of {block} ms: mean of the rows, sum of "
             f"the columns; colour to {ENCODER_TOP})")
    update = matrix_update(maps.head(layer, head).numpy(), maps.keys, maps.tokens, title)
    return replace(update, zmax=ENCODER_TOP, x_title="time attended to", y_title="time attending", x_angle=-90)


def decoder_map(reading, layer: int, head: int, token: int) -> CanvasMap:
    """One decoder head: the step writing each token down, the tokens it has read across (the prompt first)."""
    maps = reading.decoder
    update = matrix_update(maps.head(layer, head).numpy(), maps.keys, maps.tokens,
                           f"decoder self-attention, layer {layer}, head {head}")
    return replace(update, outlines=(outline(-0.5, len(maps.keys) - 0.5, token - 0.5, token + 0.5, color=HIGHLIGHT),),
                   zmax=1.0, x_title="token read", y_title="written token", x_angle=-45)


def heads_grid(reading, layer: int, head: int) -> CanvasMap:
    """Every decoder head's agreement with the word times; Whisper's alignment heads outlined in black."""
    scores = np.round(reading.agreement(), 3)
    n_layers, n_heads = scores.shape
    marks = [outline(h - 0.5, h + 0.5, l - 0.5, l + 0.5, width=2, color="#111111", dash=True)
             for l, h in reading.alignment_heads]
    marks.append(outline(head - 0.5, head + 0.5, layer - 0.5, layer + 0.5, width=3, color=HIGHLIGHT))
    return CanvasMap(scores, [f"H{h}" for h in range(n_heads)], [f"L{l}" for l in range(n_layers)], tuple(marks),
                     "heads that follow the sound (dotted: alignment heads)", zmin=0.0, zmax=1.0)


def summary_html(reading, language_name: str = "", clip=None) -> str:
    """What Whisper wrote, the language it heard, a sample clip's own words (and a translation by hand) to hold it
    against, and where the written tokens' cross-attention went."""
    e = html.escape
    doing = "translated it into English" if reading.task == "translate" else "transcribed it"
    lines = [f"Whisper heard {e(reading.audio.name)} as <b>{e(language_name or reading.language)}</b> "
             f"({reading.language_probability:.0%} sure) and {doing}."]
    if clip is not None:
        lines.append(f"Said: <i>{e(clip.text)}</i> In English: <i>{e(clip.english)}</i>")
        warning = ("Whisper base transcribes these clips word for word, but its translations of synthetic voices are "
                   "often wrong: hold them against the English above. A human voice does much better."
                   if reading.task == "translate" else "Whisper base transcribes these clips word for word.")
        lines.append(f"<span style='color:#9a6700'>This clip is synthetic speech (espeak-ng). {warning}</span>")
    shares = reading.weight_on()
    astray = [reading.cross.tokens[i].strip() for i in np.nonzero(shares[:, 0] < 0.5)[0]]
    lines.append(f"The alignment heads put {shares[:, 0].mean():.0%} of their weight on frames with sound (sound is "
                 f"{np.mean(reading.frame_kinds[:reading.n_frames] == 2):.0%} of the audio), {shares[:, 1].mean():.0%}"
                 f" on quiet frames and {shares[:, 2].mean():.0%} on the silence after it."
                 + (f" Tokens with under half of it on sound: {e(', '.join(repr(t) for t in astray[:10]))}."
                    if astray else ""))
    if reading.notice:
        lines.append(e(reading.notice))
    # sizes in em of the page's text, so present mode's larger font reaches them
    return (f"<div class='ae-speech-text' style='font-size:1.23em;font-weight:600;line-height:1.3'>{e(reading.text)}"
            f"</div><div style='font-size:0.92em;line-height:1.45;margin-top:2px'>{'<br>'.join(lines)}</div>")


CANVAS_STYLES = {
    "map": dict(colors="Blues", colorbar_title="weight", height=420,
                hover="{y}<br>{x}<br>weight {z}"),
    "heads": dict(colors="Viridis", x_title="head", y_title="decoder layer", colorbar_title="share", height=300,
                  width=520, x_angle=0, hover_decimals=2,
                  hover="layer {y}, head {x}<br>{z} of the tokens: its strongest frame is<br>where the word times put the "
                        "token<br>click to open"),
}
