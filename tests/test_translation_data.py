"""The translation tasks: seeded, ISO targets, and alignments that point at the characters of their field."""

from __future__ import annotations

import calendar
import datetime

import pytest

from explorer.data.sequences import make_task, vocabulary
from explorer.data.translation import DATE_FORMATS, END, PAD, SPACE, load_pairs_task

MONTHS = {name.lower(): i for names in (calendar.month_name, calendar.month_abbr) for i, name in enumerate(names) if name}
WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
         "thir": 3, "fif": 5, "eigh": 8, "teen": 1, "ten": 1, "eleven": 1, "twelve": 1, "twenty": 2, "thirty": 3,
         "forty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8, "ninety": 9}


def decoded(row, vocab):
    source = "".join(" " if vocab[i] == SPACE else vocab[i] for i in row["input_ids"] if vocab[i] != PAD)
    target = [vocab[i] for i in row["labels"] if i != -100]
    return source, target


def test_same_seed_same_dates_other_seed_other_dates():
    a, b, c = (make_task("dates", n_train=200, n_test=20, seed=s) for s in (3, 3, 4))
    assert a["train"]["source"] == b["train"]["source"] and a["train"]["input_ids"] == b["train"]["input_ids"]
    assert a["train"]["source"] != c["train"]["source"]
    assert not set(a["test"]["source"]) & set(a["train"]["source"])


def test_dates_are_written_many_ways_and_translate_to_iso():
    data = make_task("dates", n_train=3000, n_test=50, seed=0)
    vocab = vocabulary(data)
    sources = data["train"]["source"]
    assert len(DATE_FORMATS) >= 12
    assert any("/" in s for s in sources) and any("." in s for s in sources) and any(s.count("-") == 2 for s in sources)
    assert any(s.isupper() and "DAY" in s for s in sources) and any(s.islower() and "day" in s for s in sources)
    assert any("September" in s for s in sources) and any("Sep " in s for s in sources)
    for row in data["train"].select(range(200)):
        source, target = decoded(row, vocab)
        assert source == row["source"] and target == [*row["target"], END]
        datetime.date.fromisoformat(row["target"])


def field_value(text: str, field: str, target_year: int) -> int:
    if field == "month" and text.lower() in MONTHS:
        return MONTHS[text.lower()]
    value = int(text)
    if field == "year" and len(text) == 2:
        return 1900 + value if value >= 50 else 2000 + value
    assert field != "year" or target_year >= 1000
    return value


def test_every_date_alignment_points_at_its_field():
    data = make_task("dates", n_train=1500, n_test=10, seed=5)
    for row in data["train"]:
        date = datetime.date.fromisoformat(row["target"])
        wanted = {"year": date.year, "month": date.month, "day": date.day}
        fields = ["year"] * 4 + [None] + ["month"] * 2 + [None] + ["day"] * 2 + [None]
        assert len(row["alignment"]) == len(fields)
        for field, positions in zip(fields, row["alignment"]):
            if field is None:
                assert positions == []
                continue
            assert positions == list(range(positions[0], positions[-1] + 1))  # one run of characters
            text = row["source"][positions[0]: positions[-1] + 1]
            assert field_value(text, field, date.year) == wanted[field], (row["source"], field, text)


def test_every_number_alignment_points_at_its_digit():
    data = make_task("numbers", n_train=1500, n_test=10, seed=2)
    reordered = 0
    for row in data["train"]:
        digits = row["target"]
        for i, positions in enumerate(row["alignment"][:len(digits)]):
            if not positions:
                assert digits[i] == "0" and row["source"].lower() != "zero"
                continue
            words = "".join(row["source"][p] for p in positions).lower()
            if words == "zero":
                assert digits == "0"
                continue
            if words in ("ten", "eleven", "twelve") and i == len(digits) - 1:
                assert int(digits[i]) == ("ten", "eleven", "twelve").index(words)
                continue
            assert WORDS[words] == int(digits[i]), (row["source"], digits, i, words)
        if len(digits) >= 2 and row["alignment"][-3] and row["alignment"][-2] and \
                row["alignment"][-3][0] > row["alignment"][-2][0]:
            reordered += 1  # "fourteen": the tens digit comes from the later "teen"
        assert row["alignment"][len(digits)] == []  # <end>
    assert reordered > 10


def test_tab_separated_pairs_become_a_translation_task(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"word {i}\t{i}\n" for i in range(30)))
    data = load_pairs_task(path)
    vocab = vocabulary(data)
    assert len(data["train"]) + len(data["test"]) == 30
    row = data["train"][0]
    source, target = decoded(row, vocab)
    assert source == row["source"] and "".join(target[:-1]) == row["target"] and target[-1] == END
    assert all(a == [] for a in row["alignment"])


@pytest.mark.parametrize("text, match", [
    ("one column only\nanother\n", "line 1 has one column"),
    ("a\tb\n\nc\td\n", "line 2 is empty"),
    ('a\tb\n"c\td\n', "line 2 has unequal quoting"),
    ("", "empty"),
    ("a\tb\n", "at least 2"),
    ("a\t\nb\tc\n", "empty target"),
    ("a\t" + "x" * 80 + "\nb\tc\n", "longer than"),
])
def test_bad_pairs_files_are_refused_clearly(tmp_path, text, match):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_pairs_task(path)


def test_large_or_missing_pairs_files_are_refused(tmp_path):
    big = tmp_path / "big.tsv"
    with open(big, "w") as file:
        file.write("a\tb\n" * (10_000_000 // 4))
    with pytest.raises(ValueError, match="10.0 MB; the lab takes pairs files up to 2.0 MB"):
        load_pairs_task(big)
    with pytest.raises(ValueError, match="no file"):
        load_pairs_task(tmp_path / "missing.tsv")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match=".tsv"):
        load_pairs_task(tmp_path / "image.png")
