"""Translation tasks, character by character, with the alignment each output character should find.

``dates`` turns dates as people write them ("Tuesday, 3 March 2021", "03/03/21", "march 3rd 2021") into ISO
form ("2021-03-03"); ``numbers`` turns English number words into digits ("three hundred and twelve" -> "312";
"fourteen" -> "14" reorders: the "1" comes from "teen", after "four"). Both are made locally from a seed.

Every row has ``input_ids`` (the source characters, padded with ``<pad>`` to one length), ``labels`` (the
target characters and ``<end>``, then -100), ``alignment`` (for each target position the source positions that
hold the same field: year, month or day; a digit's place in a number) and the plain ``source`` and ``target``.
A target character that no source character states (the dashes of a date, the zeros of "two thousand and
five", ``<end>``) has an empty alignment. A user's tab-separated file of pairs works too (``load_pairs_task``).
"""

from __future__ import annotations

import calendar
import datetime
import functools
import re
import string
import tempfile
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value, load_dataset

from explorer.arguments import path as user_path, real, seed as check_seed, whole
from explorer.imports import transformers_quiet
from explorer.paths import classroom, session_folder

PAD, END, UNK, SPACE = "<pad>", "<end>", "<unk>", "␣"
SPECIALS = (PAD, END, UNK)
ALPHABET = " ',-./" + string.digits + string.ascii_lowercase + string.ascii_uppercase
SOURCE_LENGTH = {"dates": 32, "numbers": 48}
TARGET_LENGTH = {"dates": 10, "numbers": 4}
MAX_PAIR_CHARS = 60  # characters of a source or a target in a user's pairs file
MAX_USER_BYTES = 10_000_000  # the largest file of text or pairs any caller may let the lab read
MAX_TEST_PAIRS = 10_000  # test pairs of a translation: "numbers" has only about 60,000 different sources
FIRST_DAY, N_DAYS = datetime.date(1950, 1, 1), 36525  # 1950..2049: a two-digit year names one century

# A date format: parts in order, each a field (day, month, year, weekday) written one way, or literal text.
DATE_FORMATS = (
    ("weekday", ", ", "d", " ", "month", " ", "yyyy"),  # Tuesday, 3 March 2021
    ("d", " ", "month", " ", "yyyy"),  # 3 March 2021
    ("month", " ", "d", ", ", "yyyy"),  # March 3, 2021
    ("month", " ", "dth", " ", "yyyy"),  # March 3rd 2021
    ("dth", " of ", "month", " ", "yyyy"),  # 3rd of March 2021
    ("wkd", " ", "d", " ", "mon", " ", "yyyy"),  # Tue 3 Mar 2021
    ("mon", " ", "d", " ", "yyyy"),  # Mar 3 2021
    ("d", " ", "mon", " ", "yy"),  # 3 Mar 21
    ("d", "-", "mon", "-", "yyyy"),  # 3-Mar-2021
    ("dd", "/", "mm", "/", "yyyy"),  # 03/03/2021
    ("dd", "/", "mm", "/", "yy"),  # 03/03/21
    ("dd", ".", "mm", ".", "yyyy"),  # 03.03.2021
    ("d", ".", "m", ".", "yy"),  # 3.3.21
    ("yyyy", "-", "mm", "-", "dd"),  # 2021-03-03
    ("weekday", " ", "month", " ", "dth", ", ", "yyyy"),  # Tuesday March 3rd, 2021
)
# The field each part holds; the target "yyyy-mm-dd" has the year at 0..3, the month at 5..6, the day at 8..9.
DATE_FIELDS = {"d": "day", "dd": "day", "dth": "day", "month": "month", "mon": "month", "m": "month",
               "mm": "month", "yyyy": "year", "yy": "year"}
TARGET_FIELDS = ("year",) * 4 + (None,) + ("month",) * 2 + (None,) + ("day",) * 2
CASES = ("as written", "lower", "upper")

UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
TEEN_STEMS = {3: "thir", 5: "fif", 8: "eigh"}  # "thirteen" is "thir" (the 3) then "teen" (the 1)


def ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def write_date(date: datetime.date, parts, case: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The date written with ``parts``, and the spans ``(start, end, field)`` of its day, month and year."""
    written = {"d": str(date.day), "dd": f"{date.day:02d}", "dth": str(date.day), "month": calendar.month_name[date.month],
               "mon": calendar.month_abbr[date.month], "m": str(date.month), "mm": f"{date.month:02d}",
               "yyyy": f"{date.year:04d}", "yy": f"{date.year % 100:02d}", "weekday": calendar.day_name[date.weekday()],
               "wkd": calendar.day_abbr[date.weekday()]}
    text, spans = "", []
    for part in parts:
        piece = written.get(part, part)
        if part in DATE_FIELDS:
            spans.append((len(text), len(text) + len(piece), DATE_FIELDS[part]))  # "3rd": the field is the "3"
        text += piece + (ordinal(date.day)[len(piece):] if part == "dth" else "")
    return {"lower": text.lower(), "upper": text.upper()}.get(case, text), spans


def date_pair(rng: np.random.Generator) -> tuple[str, str, list[list[int]]]:
    """One random date in a random format and case: source, ISO target, and each target character's alignment."""
    date = FIRST_DAY + datetime.timedelta(days=int(rng.integers(N_DAYS)))
    parts = DATE_FORMATS[int(rng.integers(len(DATE_FORMATS)))]
    source, spans = write_date(date, parts, CASES[int(rng.integers(len(CASES)))])
    where = {field: list(range(start, end)) for start, end, field in spans}
    return source, date.isoformat(), [where[field] if field else [] for field in TARGET_FIELDS]


def number_words(n: int, british: bool, hyphen: bool) -> list[tuple[str, tuple[int, ...]]]:
    """``n`` (0..9999) in English words as pieces ``(text, places)``: the digit places (0 units, 1 tens, ...) a
    piece states; ``british`` says "and" after a hundred or a thousand, ``hyphen`` writes "twenty-three"."""
    if n == 0:
        return [("zero", (0,))]
    pieces = []
    thousands, hundreds, rest = n // 1000, n // 100 % 10, n % 100
    for digit, place, word in ((thousands, 3, "thousand"), (hundreds, 2, "hundred")):
        if digit:
            pieces += [(UNITS[digit], (place,)), (" ", ()), (word, ()), (" ", ())]
    if rest and pieces and british:
        pieces += [("and", ()), (" ", ())]
    tens, units = rest // 10, rest % 10
    if tens >= 2:
        pieces.append((TENS[tens], (1,)))
        if units:
            pieces += [("-" if hyphen else " ", ()), (UNITS[units], (0,))]
    elif rest >= 13:
        pieces += [(TEEN_STEMS.get(units, UNITS[units]), (0,)), ("teen", (1,))]
    elif rest >= 10:
        pieces.append((("ten", "eleven", "twelve")[units], (1, 0)))
    elif units:
        pieces.append((UNITS[units], (0,)))
    while pieces and pieces[-1][0] == " ":
        pieces.pop()
    return pieces


def number_pair(rng: np.random.Generator) -> tuple[str, str, list[list[int]]]:
    """One random number 0..9999 (as many with one digit as with four) in words: source, digits, alignment."""
    n_digits = int(rng.integers(1, 5))
    n = int(rng.integers(0 if n_digits == 1 else 10 ** (n_digits - 1), 10 ** n_digits))
    source, where = "", {}
    for text, places in number_words(n, bool(rng.integers(2)), bool(rng.integers(2))):
        for place in places:
            where.setdefault(place, []).extend(range(len(source), len(source) + len(text)))
        source += text
    case = CASES[int(rng.integers(len(CASES)))]
    source = {"lower": source, "upper": source.upper()}.get(case, source[:1].upper() + source[1:])
    target = str(n)
    return source, target, [where.get(len(target) - 1 - i, []) for i in range(len(target))]


GENERATORS = {"dates": date_pair, "numbers": number_pair}
DATE_PATTERNS = {"d": r"(\d{1,2})", "dd": r"(\d{2})", "dth": r"(\d{1,2})(?:st|nd|rd|th)", "m": r"(\d{1,2})",
                 "mm": r"(\d{2})", "yyyy": r"(\d{4})", "yy": r"(\d{2})",
                 "month": "(" + "|".join(calendar.month_name[1:]) + ")", "mon": "(" + "|".join(calendar.month_abbr[1:]) + ")",
                 "weekday": "(" + "|".join(calendar.day_name) + ")", "wkd": "(" + "|".join(calendar.day_abbr) + ")"}


def read_date(text: str) -> str | None:
    """The ISO form of a date written in one of the generator's formats (any case), or None: "32 March",
    "yesterday" and dates outside 1950..2049 are not dates the generator writes."""
    for parts in DATE_FORMATS:
        fields = [p for p in parts if p in DATE_PATTERNS]
        pattern = "".join(DATE_PATTERNS.get(p, re.escape(p)) for p in parts)
        found = re.fullmatch(pattern, text.strip(), flags=re.IGNORECASE)
        if not found:
            continue
        value = dict(zip(fields, found.groups()))
        year = int(value.get("yyyy") or 0) or (lambda yy: 1900 + yy if yy >= 50 else 2000 + yy)(int(value["yy"]))
        month = next((int(value[k]) for k in ("m", "mm") if k in value), None) or \
            next(i for names in (calendar.month_name, calendar.month_abbr) for i, name in enumerate(names)
                 if name and name.lower() == (value.get("month") or value.get("mon", "")).lower())
        try:
            date = datetime.date(year, month, int(next(value[k] for k in ("d", "dd", "dth") if k in value)))
        except ValueError:
            continue
        weekday = value.get("weekday") or value.get("wkd")
        if weekday and weekday.lower() not in (calendar.day_name[date.weekday()].lower(),
                                               calendar.day_abbr[date.weekday()].lower()):
            continue
        if FIRST_DAY <= date < FIRST_DAY + datetime.timedelta(days=N_DAYS):
            return date.isoformat()
    return None


@functools.lru_cache(maxsize=1)
def _spelled_numbers() -> dict[str, str]:
    return {"".join(t for t, _ in number_words(n, british, hyphen)): str(n)
            for n in range(10000) for british in (False, True) for hyphen in (False, True)}


def read_number(text: str) -> str | None:
    """The digits of English number words the generator writes (0..9999, any case), or None."""
    return _spelled_numbers().get(" ".join(text.lower().split()))


READERS = {"dates": read_date, "numbers": read_number}
TRANSLATIONS = {
    "dates": "write a date as people do (Tuesday, 3 March 2021; 03/03/21) in ISO form: 2021-03-03",
    "numbers": "write English number words in digits: three hundred and twelve -> 312",
}


def char_token(char: str) -> str:
    """The vocabulary name of a character (a space is shown as ␣)."""
    return SPACE if char == " " else char


def encode(text: str, vocab: list[str], length: int) -> list[int]:
    """``text`` as ids padded with ``<pad>`` to ``length``; an unknown character becomes ``<unk>``."""
    index = {name: i for i, name in enumerate(vocab)}
    ids = [index.get(char_token(c), index[UNK]) for c in text[:length]]
    return ids + [index[PAD]] * (length - len(ids))


def _features(vocab: list[str]) -> Features:
    return Features({"input_ids": Sequence(ClassLabel(names=vocab)), "labels": Sequence(Value("int64")),
                     "alignment": Sequence(Sequence(Value("int64"))), "source": Value("string"),
                     "target": Value("string")})


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def pairs_dataset(pairs, vocab: list[str], source_length: int, target_length: int) -> Dataset:
    """Rows of ``(source, target, alignment)`` encoded: the target ends with ``<end>`` and is padded with -100."""
    end = vocab.index(END)
    rows = {"input_ids": [], "labels": [], "alignment": [], "source": [], "target": []}
    for source, target, alignment in pairs:
        labels = encode(target, vocab, len(target))[:len(target)] + [end]
        rows["input_ids"].append(encode(source, vocab, source_length))
        rows["labels"].append(labels + [-100] * (target_length + 1 - len(labels)))
        rows["alignment"].append(list(alignment) + [[]] * (target_length + 1 - len(alignment)))
        rows["source"].append(source)
        rows["target"].append(target)
    return Dataset.from_dict(rows, features=_features(vocab))


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def make_translation(name: str, n_train: int, n_test: int, seed: int) -> DatasetDict:
    """``dates`` or ``numbers``: ``n_train`` and ``n_test`` pairs from ``seed``; no test source is in training."""
    generate, rng = GENERATORS[name], np.random.default_rng(seed)
    test, seen = [], set()
    while len(test) < n_test:
        pair = generate(rng)
        if pair[0] not in seen:
            seen.add(pair[0])
            test.append(pair)
    train = []
    for _ in range(100 * n_train):
        if len(train) == n_train:
            break
        pair = generate(rng)
        if pair[0] not in seen:
            train.append(pair)
    vocab = [*SPECIALS, *(char_token(c) for c in ALPHABET)]
    lengths = SOURCE_LENGTH[name], TARGET_LENGTH[name]
    return DatasetDict({"train": pairs_dataset(train, vocab, *lengths), "test": pairs_dataset(test, vocab, *lengths)})


def first_line(error: BaseException) -> str:
    """The first line of a library's error, shortened, to say why a user's file could not be read."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line if len(line) <= 120 else line[:117] + "..."


def is_translation(dataset) -> bool:
    """True for data with an ``alignment`` column: a source and a target sequence per row."""
    split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
    return "alignment" in split.column_names


def _check_pairs_text(path: Path, text: str) -> None:
    """Empty lines and unequal quoting, with the line they are on (the csv reader would hide or merge them)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise ValueError(f"'{path.name}': line {number} is empty; every line is one pair, source<TAB>target.")
        if line.count('"') % 2:
            raise ValueError(f"'{path.name}': line {number} has unequal quoting (an odd number of \" marks); "
                             "close the quote or remove it.")
        if "\t" not in line:
            raise ValueError(f"'{path.name}': line {number} has one column; write source<TAB>target on each line.")


def user_file(path: Path, suffixes, wrong_kind: str, kind: str, max_bytes: int) -> int:
    """The size of a file a user gave the lab; a ValueError in words if its name, kind, existence or size is wrong."""
    path = user_path(path, "file's path")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"'{path.name}': {wrong_kind}.")
    if not path.is_file():
        raise ValueError(f"There is no file at {path}.")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"'{path.name}' is {size / 1e6:.1f} MB; the lab takes {kind} files up to {max_bytes / 1e6:.1f} MB.")
    return size


def read_local(builder: str, path: Path, **options) -> Dataset:
    """A user's file read by one of datasets' local loaders (``text``, ``csv``, ``json``), into memory. The loader's
    cache goes to a folder of its own (in a class, inside the student's folder) that is removed when done: the
    shared ``~/.cache/huggingface`` never holds a student's text."""
    with tempfile.TemporaryDirectory(prefix="ae-read-", dir=session_folder() if classroom() else None) as cache:
        return load_dataset(builder, data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True,
                            **options)


def check_split(test_fraction, seed) -> tuple[float, int]:
    """The share of a user's file kept for testing (above 0, below 1) and the seed of the split."""
    return real(test_fraction, "test fraction", above=0.0, below=1.0), check_seed(seed)


@transformers_quiet()  # datasets reads transformers: no import of it meanwhile
def load_pairs_task(path, test_fraction: float = 0.1, max_bytes: int = 2_000_000, seed: int = 0) -> DatasetDict:
    """A user's tab-separated file of ``source<TAB>target`` lines, read with datasets' csv loader."""
    path, (test_fraction, seed) = user_path(path, "file's path").expanduser(), check_split(test_fraction, seed)
    max_bytes = whole(max_bytes, "largest file size max_bytes", 1, 2 * MAX_USER_BYTES)
    user_file(path, (".tsv", ".txt"), "pairs are read from a .tsv (or .txt) file with source<TAB>target on each line",
              "pairs", max_bytes)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"'{path.name}' is not UTF-8 text.") from None
    if not text.strip():
        raise ValueError(f"'{path.name}' is empty: it holds no pairs.")
    _check_pairs_text(path, text.rstrip("\n"))
    try:
        loaded = read_local("csv", path, delimiter="\t", header=None, column_names=["source", "target"],
                            keep_default_na=False, features=Features({"source": Value("string"), "target": Value("string")}))
    except Exception as error:  # noqa: BLE001 - a malformed file becomes a message
        raise ValueError(f"Could not read '{path.name}' as tab-separated pairs ({first_line(error)}).") from None
    pairs = [(str(s), str(t)) for s, t in zip(loaded["source"], loaded["target"])]
    for number, (source, target) in enumerate(pairs, start=1):
        if not source or not target:
            raise ValueError(f"'{path.name}': pair {number} has an empty {'source' if not source else 'target'}.")
        if max(len(source), len(target)) > MAX_PAIR_CHARS:
            raise ValueError(f"'{path.name}': pair {number} is longer than {MAX_PAIR_CHARS} characters; "
                             "the lab's models read short pairs.")
    if len(pairs) < 2:
        raise ValueError(f"'{path.name}' has {len(pairs)} pair: the lab needs at least 2 (to train and to test).")
    chars = sorted({char_token(c) for s, t in pairs for c in s + t})
    vocab = [*SPECIALS, *chars]
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test = min(max(1, int(round(len(pairs) * test_fraction))), len(pairs) - 1)
    rows = [(pairs[i][0], pairs[i][1], []) for i in order]
    lengths = max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs)
    return DatasetDict({"train": pairs_dataset(rows[n_test:], vocab, *lengths),
                        "test": pairs_dataset(rows[:n_test], vocab, *lengths)})
