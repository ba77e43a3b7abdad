"""The induction task: random tokens in which a segment appears twice, for next-token prediction.

Each row is ``3 L`` random tokens. A segment of ``L`` random tokens is written at a random place and again at a
random distance later, with random tokens around the copies. The label of each position is the next token (the
last has none, ``-100``). Inside the second copy the next token was seen before: it is the token that followed
the current one in the first copy. Only an induction head (Olsson et al. 2022: look at the token after the
previous occurrence of this token, and copy it) predicts it, because the distance back changes from row to row;
a fixed positional head cannot. ``second_copy`` marks those positions, ``first_copy`` the same positions in the
first copy, whose next token nothing gives away.
"""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

INDUCTION = "induction"
DESCRIPTION = "predict the next token; inside a segment seen before, the earlier copy gives it away"
MAX_ROW = 512  # tokens of a row (3 x the segment)


def check_induction_sizes(length: int, vocab_size: int) -> None:
    """A ValueError in words for a segment or vocabulary the task cannot be made of."""
    if not 2 <= length <= MAX_ROW // 3:
        raise ValueError(f"The induction task repeats a segment of `length` tokens: it needs at least 2 (the "
                         f"token that cues the copy and the one to predict) and at most {MAX_ROW // 3} (rows are "
                         f"3 x length tokens), got {length}.")
    if not 2 <= vocab_size <= 1000:
        raise ValueError(f"The vocabulary must have between 2 and 1000 tokens, got {vocab_size}: with one token "
                         "every sequence is the same and there is nothing to predict.")


def induction_rows(n: int, length: int, vocab_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` rows of ``3 length`` tokens: ``input_ids``, ``labels``, the copies' ``starts`` ``[n, 2]`` and the
    boolean ``first_copy`` and ``second_copy`` position marks."""
    size = 3 * length
    tokens = rng.integers(0, vocab_size, size=(n, size))
    # The distance between the copies is uniform in L..2L, so no one distance is common enough for a head that
    # looks a fixed number of places back to pay; then the first copy goes anywhere both fit.
    distance = rng.integers(length, 2 * length + 1, size=n)
    first = (rng.random(n) * (2 * length - distance + 1)).astype(np.int64)
    second = first + distance
    offsets = np.arange(length)
    rows = np.arange(n)[:, None]
    tokens[rows, second[:, None] + offsets] = tokens[rows, first[:, None] + offsets]
    labels = np.full((n, size), -100, dtype=np.int64)
    labels[:, :-1] = tokens[:, 1:]
    inside = offsets[:-1]  # positions of a copy whose next token is in the copy too
    first_copy = np.zeros((n, size), dtype=bool)
    second_copy = np.zeros((n, size), dtype=bool)
    first_copy[rows, first[:, None] + inside] = True
    second_copy[rows, second[:, None] + inside] = True
    return dict(input_ids=tokens, labels=labels, starts=np.stack([first, second], axis=1), first_copy=first_copy,
                second_copy=second_copy)


def make_induction(n_train: int, n_test: int, length: int, vocab_size: int, seed: int) -> DatasetDict:
    """Splits ``train`` and ``test`` of the induction task, the same for the same seed."""
    check_induction_sizes(length, vocab_size)
    rng = np.random.default_rng(seed)
    features = Features({"input_ids": Sequence(ClassLabel(names=[str(v) for v in range(vocab_size)])),
                         "labels": Sequence(Value("int64")), "starts": Sequence(Value("int64")),
                         "first_copy": Sequence(Value("bool")), "second_copy": Sequence(Value("bool"))})
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = induction_rows(n, length, vocab_size, rng)
        splits[split] = Dataset.from_dict({name: value.tolist() for name, value in rows.items()}, features=features)
    return DatasetDict(splits)


def is_induction(dataset) -> bool:
    """True for data with a ``second_copy`` column."""
    split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
    return "second_copy" in split.column_names
