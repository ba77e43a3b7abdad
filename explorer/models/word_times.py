"""Word timestamps from cross-attention, as Whisper makes them (Radford et al., 2022; OpenAI's ``timing.py``).

A few decoder heads, Whisper's *alignment heads*, attend to the sound of the token being written. Their weights
over the audio's frames (cut to the frames that hold audio and renormalised, as a softmax over those frames only),
standardised per frame over the tokens, smoothed by a median filter along time and averaged over the heads give a
``[tokens, frames]`` score. Dynamic time warping finds the monotonic path through it with the most weight; each
token starts at the frame where the path first reaches it.

``dtw`` is written here, vectorised over anti-diagonals: transformers' ``_dynamic_time_warping`` is private and a
pure-Python double loop (about 100 times slower for 100 tokens over 30 s); it breaks ties in the same order.
"""

from __future__ import annotations

import numpy as np

FRAMES_PER_SECOND = 50  # encoder frames per second of audio (20 ms each)
MEDIAN_WIDTH = 7  # frames of the median filter, as Whisper and CTranslate2
NO_SPACE_LANGUAGES = ("zh", "ja", "th", "lo", "my", "yue")  # written without spaces: every token is a word


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path from the first to the last cell of ``cost`` ``[rows, cols]``: its row and column
    indices. Each step moves diagonally, down (next row) or right (next column); ties go diagonal, then down."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    trace = np.zeros((n + 1, m + 1), dtype=np.int8)
    for d in range(2, n + m + 1):  # cells (i, j) with i + j = d depend only on the two diagonals before
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        diagonal, down, right = total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
        step = np.where((diagonal < down) & (diagonal < right), 0, np.where((down < diagonal) & (down < right), 1, 2))
        total[i, j] = cost[i - 1, j - 1] + np.choose(step, [diagonal, down, right])
        trace[i, j] = step
    trace[0, :], trace[:, 0] = 2, 1
    rows, cols = [], []
    i, j = n, m
    while i > 0 or j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        step = trace[i, j]
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return np.array(rows[::-1]), np.array(cols[::-1])


def median_filter(weights: np.ndarray, width: int = MEDIAN_WIDTH) -> np.ndarray:
    """Each value replaced by the median of ``width`` values around it along the last axis (edges mirrored)."""
    from scipy.ndimage import median_filter as scipy_median

    if weights.shape[-1] <= width // 2:
        return weights
    return scipy_median(weights, size=(1,) * (weights.ndim - 1) + (width,), mode="mirror")


def alignment_score(weights: np.ndarray, n_frames: int) -> np.ndarray:
    """The alignment heads' weights ``[heads, rows, 1500]`` as the ``[rows, n_frames]`` score that DTW follows."""
    cut = weights[..., :n_frames].astype(np.float64)
    cut = cut / np.maximum(cut.sum(axis=-1, keepdims=True), 1e-12)  # = a softmax over these frames only
    mean, std = cut.mean(axis=-2, keepdims=True), cut.std(axis=-2, keepdims=True)
    return median_filter((cut - mean) / np.maximum(std, 1e-12)).mean(axis=0)


def token_starts(weights: np.ndarray, n_frames: int, first: int, count: int) -> np.ndarray:
    """The frame where each of ``count`` rows from ``first`` on starts (DTW over the alignment score).

    ``weights`` ``[heads, rows, 1500]`` covers every decoder position: the standardisation sees all of them, as
    in Whisper, and the path runs over the rows that write the text tokens and the end token.
    """
    score = alignment_score(weights, n_frames)[first:first + count]
    rows, cols = dtw(-score)
    jumps = np.diff(rows, prepend=-1) > 0
    return cols[jumps]


def split_words(pieces: list[str], language: str) -> list[list[int]]:
    """Token indices grouped into words: a word starts at a token that starts with a space (or at every token in
    a language written without spaces); punctuation joins the word before it."""
    words: list[list[int]] = []
    for index, piece in enumerate(pieces):
        starts = language in NO_SPACE_LANGUAGES or piece.startswith(" ") or not words
        if starts and words and piece.strip() and all(not c.isalnum() for c in piece.strip()):
            starts = False  # a comma or full stop belongs to the word before it
        if starts:
            words.append([index])
        else:
            words[-1].append(index)
    return words


def word_times(pieces: list[str], starts: np.ndarray, language: str) -> list[tuple[int, int, int]]:
    """``(first token, start frame, end frame)`` of each word: from its first token's start to the next word's
    start (the last word ends where the end token starts: ``starts`` has one entry more than ``pieces``)."""
    groups = split_words(pieces, language)
    return [(group[0], int(starts[group[0]]), int(starts[group[-1] + 1])) for group in groups]
