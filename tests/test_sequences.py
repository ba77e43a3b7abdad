"""Synthetic sequence tasks and user text files, as DatasetDicts."""

from __future__ import annotations

import json

import pytest

from explorer.data.sequences import TASKS, class_names, is_classification, load_text_task, make_task, vocabulary


def test_every_task_has_train_and_test_splits_with_the_right_columns():
    for name in TASKS:
        data = make_task(name, n_train=50, n_test=20, length=6, vocab_size=5, seed=1)
        assert set(data) == {"train", "test"}
        assert len(data["train"]) == 50 and len(data["test"]) == 20
        assert data["train"].column_names == ["input_ids", "labels"]
        assert all(len(x) == 6 for x in data["train"]["input_ids"])


def test_labels_follow_each_rule_by_hand():
    rows = {name: make_task(name, n_train=30, n_test=5, seed=2)["train"] for name in TASKS}
    for x, y in zip(rows["reverse"]["input_ids"], rows["reverse"]["labels"]):
        assert y == x[::-1]
    for x, y in zip(rows["sort"]["input_ids"], rows["sort"]["labels"]):
        assert y == sorted(x)
    for x, y in zip(rows["copy"]["input_ids"], rows["copy"]["labels"]):
        assert y == x
    for x, y in zip(rows["shift"]["input_ids"], rows["shift"]["labels"]):
        assert y == [x[-1]] + x[:-1]
    for x, y in zip(rows["majority"]["input_ids"], rows["majority"]["labels"]):
        counts = sorted(((x.count(v), v) for v in set(x)), reverse=True)
        assert counts[0][0] > counts[1][0] and y == counts[0][1]
    for x, y in zip(rows["needle"]["input_ids"], rows["needle"]["labels"]):
        marker = x.index(10)
        assert marker < len(x) - 1 and y == x[marker + 1]


def test_vocabulary_and_kind_travel_with_the_data():
    needle = make_task("needle", n_train=10, n_test=5)
    assert vocabulary(needle) == [str(i) for i in range(10)] + ["#"]
    assert is_classification(needle) and class_names(needle) == [str(i) for i in range(10)]
    assert not is_classification(make_task("reverse", n_train=10, n_test=5))


def test_same_seed_same_data_and_other_seed_other_data():
    a, b, c = (make_task("reverse", n_train=20, n_test=5, seed=s) for s in (0, 0, 1))
    assert a["train"]["input_ids"] == b["train"]["input_ids"]
    assert a["train"]["input_ids"] != c["train"]["input_ids"]
    assert a["train"]["input_ids"][:5] != a["test"]["input_ids"]


@pytest.mark.parametrize("options, match", [
    (dict(name="palindrome"), "Unknown task"), (dict(name="copy", n_train=0), "examples"),
    (dict(name="copy", length=1), "length"), (dict(name="copy", vocab_size=1), "vocabulary"),
])
def test_bad_task_requests_are_clear(options, match):
    with pytest.raises(ValueError, match=match):
        make_task(**options)


def test_text_file_becomes_next_character_windows(tmp_path):
    text = "the cat sat on the mat. " * 20
    path = tmp_path / "story.txt"
    path.write_text(text)
    data = load_text_task(path, length=8)
    chars = vocabulary(data)
    assert chars == sorted(set(text))
    row = data["train"][0]
    decoded = "".join(chars[i] for i in row["input_ids"])
    assert decoded in text and len(decoded) == 8
    assert [chars[i] for i in row["labels"]] == list(text[text.index(decoded) + 1: text.index(decoded) + 9])
    assert len(data["train"]) + len(data["test"]) == (len(text) - 1) // 8


def test_csv_and_jsonl_text_columns_are_read(tmp_path):
    (tmp_path / "a.csv").write_text("text,other\nhello world,1\nanother line here,2\n")
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ["hello world", "another line"]))
    assert len(load_text_task(tmp_path / "a.csv", length=4)["train"]) > 0
    assert "h" in vocabulary(load_text_task(tmp_path / "a.jsonl", length=4))


def test_bad_text_files_are_refused_clearly(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("   \n  ")
    (tmp_path / "big.txt").write_text("x" * 5000)
    (tmp_path / "short.txt").write_text("abc")
    (tmp_path / "notext.csv").write_text("a,b\n1,2\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    cases = [("empty.txt", "no text"), ("blank.txt", "no text"), ("short.txt", "at least"),
             ("notext.csv", "'text'"), ("image.png", ".txt"), ("missing.txt", "no file")]
    for name, match in cases:
        with pytest.raises(ValueError, match=match):
            load_text_task(tmp_path / name, length=8)
    with pytest.raises(ValueError, match="MB"):
        load_text_task(tmp_path / "big.txt", max_bytes=1000)
