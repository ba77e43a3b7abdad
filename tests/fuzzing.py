"""What the fuzz tests share: Hypothesis settings, hostile values, and the rule every refusal must follow.

A drawn call either works (and its result has the documented type, shape and range) or raises ValueError/TypeError
whose message is a sentence that names the setting and holds no Python internals, with the session's settings and
model as before. Hypothesis prints the failing example; its database stays out of the repository (``database=None``).
"""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# A few seconds for every call on a busy 2-core machine; a handful of examples per case keeps the suite to minutes.
CALL_SECONDS = 8
FUZZ = settings(max_examples=12, deadline=timedelta(seconds=CALL_SECONDS), database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
# A tab's call returns at once and hands long work (a rebuild, a load) to its worker; the test then waits for the
# worker, which is not the call's time: the call itself is timed instead of the whole example.
FUZZ_TAB = settings(FUZZ, deadline=None, max_examples=8)

INTERNALS = ("could not convert", "invalid literal", "TraitError", "Traceback", "object has no attribute",
             "must be real number", "not supported between", "NoneType", "unhashable", "Exceeds the limit",
             "embedded null byte", "Errno", "long long", "object is not", "expected non-negative", "argument must",
             "positional argument", "keyword argument", "got an unexpected", "RuntimeError", "Something went wrong",
             "surrogates not allowed", "codec can't", "index out of range", "out of bounds", "cannot convert float",
             "<class", "<built-in", "<function", " at 0x", "dtype=", "tensor([", "site-packages", ".py\"")


def nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# Hostile values of every kind, drawn as arguments and settings: wrong types, bools, NaN and infinities, huge and
# negative numbers, deep and long structures, surrogates, control characters and HTML. Numbers are small or far
# beyond any limit: a valid 500,000 training examples is a slow call, not a hostile one.
NUMBERS = st.one_of(
    st.booleans(), st.integers(-50, 50), st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 1e3 < abs(x) < 1e12),
    st.sampled_from([2**31, 2**53 + 1, 10**13, -(10**13), 2**63, 2**64, 10**400, -(10**400), 1e308, 5e-324, -0.0]),
    st.builds(np.float32, st.floats(width=32)), st.builds(np.int64, st.integers(-50, 50) | st.just(2**63 - 1)),
    st.sampled_from([np.bool_(True), np.float64("nan"), np.float16("inf"), np.int8(3), np.uint64(2**64 - 1)]),
    st.builds(torch.tensor, st.floats(allow_nan=True, allow_infinity=True)), st.builds(torch.tensor, st.integers(-9, 99)),
    st.sampled_from([torch.tensor(True), torch.tensor([1, 2]), np.array([3.0])]),
)
def midsize(text: str) -> bool:
    """Text that reads as a number between a thousand and a trillion: a valid size that is slow, not hostile."""
    try:
        return 1e3 < abs(float(text)) < 1e12
    except (ValueError, OverflowError):
        return False


TEXTS = st.one_of(
    st.text(max_size=30).filter(lambda t: not midsize(t)),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12).filter(lambda t: not midsize(t)),
    st.sampled_from(["", " ", "\ud800", "ok\udfff", "a\x00b", "\x1b[31mred", "<script>alert(1)</script>", "&amp;<b>",
                     "\u202eevil", "..", "../../etc/passwd", "/", "~", "x" * 300, "12", "1e50", "nan", "-inf",
                     "r99999999c0", "r" + "9" * 5000 + "c1", "é" * 5000]),
    st.binary(max_size=12),
)
STRUCTURES = st.one_of(
    st.none(), st.lists(st.integers(-3, 20), max_size=4), st.lists(st.lists(st.integers(-2, 12), max_size=3), max_size=3),
    st.tuples(st.integers(0, 3), st.integers(0, 3)), st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.sets(st.integers(0, 3), max_size=2), st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
    st.sampled_from([nested(3), nested(600), [[0, 1]] * 20_000, list(range(10_000)), ["12"], [[True, False]],
                     [[float("inf"), 0]], [["1", "2"]], {"a": {"b": {"c": 1}}}, object(), print, Ellipsis, 1j]),
)
HOSTILE = st.one_of(NUMBERS, TEXTS, STRUCTURES)
# One value of each kind, tried on every argument of every case in turn: random draws find the odd failure, these
# make sure a check that is removed is missed at once (a planted regression fails on its first run).
KINDS = [True, math.nan, -math.inf, -1, 10**13, 2.5, "x", "\ud800", b"x", [], [[1, 2]] * 3, {"a": 1}, nested(600),
         object(), torch.tensor([1.0, 2.0])]


def words(error: BaseException, *names: str) -> str:
    """The refusal's message, checked: a sentence, no Python internals, and (when given) one of ``names`` in it."""
    message = str(error)
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {message}"
    assert message and re.match(r"^['\"A-Z0-9(/]", message), f"not a sentence: {message!r}"
    assert message.rstrip().endswith((".", ".)", ".'", '."', "?")), f"not a sentence: {message!r}"
    own = re.sub("\u201c[^\u201d]*\u201d", "", message)  # a quote of the user's own model's error is its words, not ours
    assert not [w for w in INTERNALS if w in own], f"Python internals in: {message!r}"
    assert len(message) < 700, f"{len(message)} characters: {message[:200]!r}"
    if names:
        assert any(name.lower() in message.lower() for name in names), f"names none of {names}: {message!r}"
    return message


def timed(call):
    """``call()``, which must end within ``CALL_SECONDS``; whatever it raises passes through."""
    started = time.monotonic()
    try:
        return call()
    finally:
        assert time.monotonic() - started < CALL_SECONDS, f"the call took {time.monotonic() - started:.1f} s"


def finite(value) -> bool:
    """Every number in ``value`` (a tensor, a float, nested lists) is finite."""
    if torch.is_tensor(value):
        return bool(torch.isfinite(value.float()).all()) if value.numel() else True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(finite(v) for v in value)
    return True
