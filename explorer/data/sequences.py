"""Synthetic sequence tasks and a user's own text, as ``datasets.DatasetDict`` with ``train`` and ``test``.

Every data set has ``input_ids`` (a sequence of ``ClassLabel`` ids, so the vocabulary travels with the
data) and ``labels``: one target per position (``-100`` where there is nothing to predict) or one class
per sequence. Everything is made locally from a seed; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from explorer.arguments import choice, json_depth, path as user_path, seed as check_seed, whole
from explorer.data.induction import INDUCTION, check_induction_sizes, is_induction, make_induction  # noqa: F401
from explorer.data.translation import (MAX_TEST_PAIRS, MAX_USER_BYTES, TRANSLATIONS, check_split, first_line,  # noqa: F401
                                       is_translation, load_pairs_task, make_translation, read_local, user_file)
from explorer.imports import transformers_quiet
from explorer.limits import check_memory

MARKER = "#"
MAX_TEXT_BYTES = 2_000_000
MAX_EXAMPLES = 1_000_000  # examples of a split
MAX_JSON_DEPTH = 8  # a .jsonl line is an object of text: deeper nesting is refused before a parser meets it
TEXT_SUFFIXES = {".txt": "text", ".csv": "csv", ".jsonl": "json", ".json": "json"}


def _reverse(x, rng, vocab_size):
    return x[:, ::-1]


def _sort(x, rng, vocab_size):
    return np.sort(x, axis=1)


def _copy(x, rng, vocab_size):
    return x.copy()


def _shift(x, rng, vocab_size):
    return np.roll(x, 1, axis=1)  # every token moves one place to the right; the last wraps to the front


def _majority(x, rng, vocab_size):
    counts = np.stack([(x == v).sum(axis=1) for v in range(vocab_size)], axis=1)  # [N, V]
    return counts.argmax(axis=1)  # the smallest of tied tokens; make_task keeps only untied sequences


def _needle(x, rng, vocab_size):
    return x[np.arange(len(x)), (x == vocab_size).argmax(axis=1) + 1]  # the token right after the marker


# name -> (labels from inputs, is a classification task, what to learn)
TASKS = {
    "reverse": (_reverse, False, "write the sequence backwards: token i goes to position n-1-i"),
    "sort": (_sort, False, "write the tokens in increasing order"),
    "copy": (_copy, False, "write the sequence again"),
    "shift": (_shift, False, "move every token one place to the right (the last comes first)"),
    "majority": (_majority, True, "name the token that occurs most often"),
    "needle": (_needle, True, f"name the token that follows the marker {MARKER}"),
}


def is_classification(dataset) -> bool:
    """True when each example has one label instead of one per position."""
    split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
    return not isinstance(split.features["labels"], Sequence)


def vocabulary(dataset) -> list[str]:
    """The token strings of ``input_ids``, indexed by id."""
    split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
    return list(split.features["input_ids"].feature.names)


def class_names(dataset) -> list[str]:
    """The class names of a classification task."""
    split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
    return list(split.features["labels"].names)


def task_names() -> list[str]:
    """Every synthetic task ``make_task`` makes."""
    return [*TASKS, INDUCTION, *TRANSLATIONS]


def _check_task_sizes(name, n_train, n_test, length, vocab_size, seed) -> tuple:
    """The arguments of ``make_task``, checked one by one, and the data's size against the budget."""
    name = choice(name, "task", task_names())
    n_train = whole(n_train, "number of training examples n_train", 1, MAX_EXAMPLES)
    n_test = whole(n_test, "number of test examples n_test", 1, MAX_TEST_PAIRS if name in TRANSLATIONS else MAX_EXAMPLES)
    if name == INDUCTION:  # its own bounds, in its own words: rows are 3 x length tokens
        length, vocab_size = whole(length, "segment length"), whole(vocab_size, "vocabulary size")
        check_induction_sizes(length, vocab_size)
    else:
        length = whole(length, "sequence length", 2, 512)
        vocab_size = whole(vocab_size, "vocabulary size", 2, 1000)
    row = 3 * length if name == INDUCTION else length
    check_memory(f"The {name} task with {n_train + n_test:,} examples of {row} tokens",
                 (n_train + n_test) * max(row, 48) * 64)  # ids and labels as int64, in numpy, lists and arrow
    return name, n_train, n_test, length, vocab_size, check_seed(seed)


def _draw(name: str, n: int, length: int, vocab_size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random input sequences for ``name``; a marker for ``needle``; a unique winner for ``majority``."""
    if name == "majority":
        kept = np.empty((0, length), dtype=np.int64)
        while len(kept) < n:
            x = rng.integers(0, vocab_size, size=(2 * n + 16, length))
            counts = np.sort(np.stack([(x == v).sum(axis=1) for v in range(vocab_size)], axis=1), axis=1)
            kept = np.concatenate([kept, x[counts[:, -1] > counts[:, -2]]])
        return kept[:n]
    x = rng.integers(0, vocab_size, size=(n, length))
    if name == "needle":
        x[np.arange(n), rng.integers(0, length - 1, size=n)] = vocab_size
    return x


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def make_task(name: str, n_train: int = 8000, n_test: int = 500, length: int = 10, vocab_size: int = 10,
              seed: int = 0) -> DatasetDict:
    """A synthetic task (one of ``task_names()``) with splits ``train`` and ``test``; the same seed gives the same
    data. A translation (``dates``, ``numbers``) has its own lengths and characters, so it ignores ``length`` and
    ``vocab_size`` (see ``explorer.data.translation``). ``induction`` repeats a segment of ``length`` tokens in rows
    of ``3 length`` (see ``explorer.data.induction``)."""
    name, n_train, n_test, length, vocab_size, seed = _check_task_sizes(name, n_train, n_test, length, vocab_size, seed)
    if name in TRANSLATIONS:
        return make_translation(name, n_train, n_test, seed)
    if name == INDUCTION:
        return make_induction(n_train, n_test, length, vocab_size, seed)
    make_labels, classify, _ = TASKS[name]
    tokens = [str(v) for v in range(vocab_size)] + ([MARKER] if name == "needle" else [])
    labels = ClassLabel(names=[str(v) for v in range(vocab_size)]) if classify else Sequence(Value("int64"))
    features = Features({"input_ids": Sequence(ClassLabel(names=tokens)), "labels": labels})
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = _draw(name, n, length, vocab_size, rng)
        y = make_labels(x, rng, vocab_size)
        splits[split] = Dataset.from_dict({"input_ids": x.tolist(), "labels": y.tolist()}, features=features)
    return DatasetDict(splits)


def _read_text(path: Path) -> str:
    """All the text of a .txt file, or of the ``text`` column of a .csv or .jsonl, via datasets' local loaders."""
    builder = TEXT_SUFFIXES[path.suffix.lower()]
    if builder == "json" and json_depth(path.read_text(encoding="utf-8", errors="replace")) > MAX_JSON_DEPTH:
        raise ValueError(f"'{path.name}' nests lists or objects more than {MAX_JSON_DEPTH} deep; the lab reads a "
                         "'text' field on each line.")
    try:
        loaded = read_local(builder, path)
    except Exception as error:  # noqa: BLE001 - a malformed file becomes a message
        raise ValueError(f"Could not read '{path.name}' as {path.suffix} ({first_line(error)}).") from None
    if "text" not in loaded.column_names:
        raise ValueError(f"'{path.name}' has columns {', '.join(loaded.column_names)}; the lab reads a column called 'text'.")
    return "\n".join(str(t) for t in loaded["text"] if t is not None)


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def load_text_task(path, length: int = 32, test_fraction: float = 0.1, max_bytes: int = MAX_TEXT_BYTES,
                   seed: int = 0) -> DatasetDict:
    """Next-character prediction on a user's own .txt, .csv or .jsonl (a ``text`` column) file.

    The text is cut into windows of ``length`` characters; the label of each position is the next
    character, so a causal model learns to continue the text. Empty or too large files are refused.
    """
    path, (test_fraction, seed) = user_path(path, "file's path").expanduser(), check_split(test_fraction, seed)
    length = whole(length, "window length", 1, 4096)
    max_bytes = whole(max_bytes, "largest file size max_bytes", 1, MAX_USER_BYTES)
    size = user_file(path, TEXT_SUFFIXES, "the lab reads .txt, .csv or .jsonl files", "text", max_bytes)
    if size == 0:
        raise ValueError(f"'{path.name}' is empty: it holds no text.")
    text = _read_text(path)
    if len(text.strip()) == 0:
        raise ValueError(f"'{path.name}' holds no text, only spaces or empty rows.")
    n_windows = (len(text) - 1) // length
    if n_windows < 2:
        raise ValueError(f"'{path.name}' has {len(text)} characters: the lab needs at least {2 * length + 1} "
                         f"to make training and test windows of {length}.")
    chars = sorted(set(text))
    ids = np.searchsorted(np.array(chars), np.array(list(text)))
    starts = np.random.default_rng(seed).permutation(n_windows) * length
    windows = np.stack([ids[s: s + length + 1] for s in starts])
    n_test = min(max(1, int(round(n_windows * test_fraction))), n_windows - 1)
    features = Features({"input_ids": Sequence(ClassLabel(names=[repr(c)[1:-1] for c in chars])),
                         "labels": Sequence(Value("int64"))})
    make = lambda w: Dataset.from_dict({"input_ids": w[:, :-1].tolist(), "labels": w[:, 1:].tolist()},  # noqa: E731
                                       features=features)
    return DatasetDict({"train": make(windows[n_test:]), "test": make(windows[:n_test])})
