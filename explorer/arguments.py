"""The one place where values from people are checked: the Python API, the sessions' settings, links and files.

Every public function and every session setting runs its arguments through these checks before anything changes.
A value that does not fit is a ``ValueError`` (a ``TypeError`` is never needed: the message says what kind of value
is wanted) whose message names the setting, shows the value shortened, and says what is allowed:

    whole(True, "number of heads", low=1)   # ValueError: The number of heads must be a whole number of at least 1,
                                            #             got True.

Python's own messages for these ("could not convert string to float", "unhashable type", "embedded null byte")
say what failed inside, not what the student should type. Numbers accept numpy scalars and 0-d tensors (what
``x.sum()`` gives), never bools; text refuses bytes and lone surrogates; a choice is only one of its names.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from pathlib import Path

MAX_NUMBER_TEXT = 64  # characters of a number typed as text; longer is not a number anyone typed
MAX_NAME_BYTES = 255  # one file or folder name (the file systems' NAME_MAX)
MAX_PATH_BYTES = 4096  # a whole path (PATH_MAX)
MAX_ITEMS = 10_000  # items of a list setting (ablated heads, blocked cells)
SEED_MAX = 2**32 - 1  # seeds of numpy, torch and random all take 0 .. 2**32 - 1


class _Short(reprlib.Repr):
    """``reprlib`` with Python's own limits on nesting and length, and huge numbers shown by their size (their
    digits are not even printable past 4,300)."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 2, 4, 4, 3, 4
        self.maxstring, self.maxother, self.maxlong = 30, 30, 30

    def repr_int(self, x, level):
        return str(x) if abs(x) < 10**24 else f"{'-' if x < 0 else ''}<a number of {digits(x)} digits>"

    def repr_instance(self, x, level):
        """A tensor or an array inside a list or a dict by its shape, as ``shown`` shows one alone; an object with no
        repr of its own by its type."""
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return f"<a {type(x).__name__} of shape {list(x.shape)}>"
        if type(x).__repr__ is object.__repr__:  # "<object at 0x...>" means nothing to a reader
            return f"<a {type(x).__name__}>"
        return super().repr_instance(x, level)


_SHORT = _Short()


def digits(number: int) -> int:
    """About how many decimal digits ``number`` has (without printing it)."""
    return max(1, int(abs(number).bit_length() * 0.30103) + 1)


def count(number: int) -> str:
    """A count as a message shows it: 1,234,567, or a huge one by its size (about 10^159)."""
    return f"{number:,}" if abs(number) < 10**15 else f"about 10^{digits(number) - 1}"


def shown(value, length: int = 40) -> str:
    """A value as a message shows it: short, text in quotes with control characters and lone surrogates escaped,
    huge numbers by their size, a tensor or array by its shape."""
    try:
        scalar = plain(value)
        if isinstance(scalar, bool) or scalar is None:
            text = str(scalar)
        elif isinstance(scalar, int):
            text = _SHORT.repr_int(scalar, 1)
        elif isinstance(scalar, str):
            text = repr(scalar[: length + 1])
        elif hasattr(scalar, "shape") and hasattr(scalar, "dtype"):
            text = f"a {type(scalar).__name__} of shape {list(scalar.shape)}"
        elif isinstance(scalar, (float, list, tuple, dict, set, frozenset, bytes, bytearray)):
            text = _SHORT.repr(scalar)
        else:
            text = f"a {type(scalar).__name__}"
    except Exception:  # noqa: BLE001 - an object whose repr fails is still named
        text = f"a {type(value).__name__}"
    return text if len(text) <= length else text[: length - 3] + "..."


def say_name(name, length: int = 40) -> str:
    """A name from a link or a user, shortened (without quotes): a page-long name must not bury the message."""
    name = str(name)
    return name if len(name) <= length else name[: length - 3] + "..."


def plain(value):
    """numpy scalars, 0-d arrays and 0-d tensors as the Python number (or bool) they hold; anything else as it is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "item") and tuple(shape) == ():
        try:
            return value.item()
        except (TypeError, ValueError, RuntimeError):
            return value
    return value


def refuse(what: str, wanted: str, value) -> ValueError:
    """The error for ``value`` of setting ``what`` that is not ``wanted``: "The <what> must be <wanted>, got <value>."."""
    return ValueError(f"The {what} must be {wanted}, got {shown(value)}.")


def _range_words(kind: str, low, high, above=None, below=None) -> str:
    show = (lambda v: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{v:g}")
    if low is not None and high is not None:
        return f"{kind} from {show(low)} to {show(high)}"
    parts = [f"{words} {show(bound)}" for words, bound in (("at least", low), ("above", above), ("at most", high),
                                                             ("below", below)) if bound is not None]
    joined = " and ".join(parts)
    return f"{kind} {'of ' if joined.startswith('at ') else ''}{joined}" if parts else kind


def _number_text(value: str):
    """A number typed as text ("12", " 0.5 ", "1e-3"), or None when it is not one."""
    text = value.strip()
    if not text or len(text) > MAX_NUMBER_TEXT:
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return None


def real(value, what: str, low=None, high=None, *, above=None, below=None, example: str = "", wanted: str = "") -> float:
    """``value`` as a finite float in its range (``low``/``high`` included, ``above``/``below`` excluded).
    Numbers, numpy scalars, 0-d tensors and number text are read; bools, NaN and infinities are refused. ``wanted``
    says what is allowed in other words than the range's."""
    wanted = wanted or _range_words("a finite number", low, high, above, below) + (f" such as {example}" if example else "")
    number = plain(value)
    if isinstance(number, str):
        number = _number_text(number)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise refuse(what, wanted, value)
    try:
        result = float(number)
    except OverflowError:
        raise refuse(what, wanted, value) from None
    if not math.isfinite(result) or (low is not None and result < low) or (high is not None and result > high) \
            or (above is not None and result <= above) or (below is not None and result >= below):
        raise refuse(what, wanted, value)
    return result


def whole(value, what: str, low: int | None = None, high: int | None = None, *, wanted: str = "") -> int:
    """``value`` as an int in ``low .. high``: 5, 5.0, numpy and 0-d tensor integers and "5" are read; bools, 5.5,
    NaN and infinities are refused."""
    wanted = wanted or _range_words("a whole number", low, high)
    number = plain(value)
    if isinstance(number, str):
        number = _number_text(number)
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or (low is not None and number < low) \
            or (high is not None and number > high):
        raise refuse(what, wanted, value)
    return number


def index(value, what: str, count: int, *, negative: bool = False, among: str = "") -> int:
    """A position among ``count`` (a layer, a head, a batch item), read as ``whole`` reads numbers; one out of range
    "does not exist", and ``among`` (by default "there are <what>s 0 to count - 1") says which do. ``negative``
    also takes -count .. -1, counted from the end as Python does."""
    number = whole(value, what)
    if not (-count if negative else 0) <= number < count:
        raise ValueError(f"{what[:1].upper() + what[1:]} {number} does not exist: "
                         f"{among or f'there are {what}s 0 to {count - 1}'}.")
    return number


def seed(value, what: str = "seed") -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what numpy, torch and random all take)."""
    return whole(value, what, 0, SEED_MAX)


def boolean(value, what: str) -> bool:
    """True or False (also numpy bools, 0 and 1, and the text true/false/yes/no)."""
    flag = plain(value)
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, str) and flag.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return flag.strip().lower() in ("true", "1", "yes")
    if isinstance(flag, (int, float)) and flag in (0, 1):
        return bool(flag)
    raise refuse(what, "true or false", value)


def flag(value, what: str) -> bool:
    """A True/False argument of the Python API: a bool (or numpy bool) only, so "no" or 2 is never read as True."""
    if not isinstance(plain(value), bool):
        raise refuse(what, "True or False", value)
    return plain(value)


def text(value, what: str, *, empty: bool = True, max_length: int | None = None) -> str:
    """``value`` as text (a str): bytes, lists and other objects are refused, and so are lone surrogates (halves of
    a character that no file, page or tokenizer can hold)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"The {what} must be text, got bytes; decode them first, for example with .decode('utf-8').")
    if not isinstance(value, str):
        raise refuse(what, "text", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"The {what} holds a broken character (half of a surrogate pair) at position {error.start}; "
                         "remove it or type the character again.") from None
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"The {what} is {len(value):,} characters long; at most {max_length:,} are read.")
    if not empty and not value.strip():
        raise ValueError(f"The {what} is empty: type some text.")
    return str(value)


def choice(value, what: str, choices):
    """One of ``choices`` (names, numbers or None), matched with its own type: a list or a dict where a name is
    expected is refused with the names, never an ``unhashable type``."""
    picked = plain(value)
    for option in choices:
        if type(picked) is type(option) and picked == option:
            return option
    names = ", ".join("none" if option is None else str(option) for option in choices)
    raise ValueError(f"Unknown {what} {shown(value)}. Choose one of: {names}.")


def items(value, what: str, max_items: int = MAX_ITEMS) -> list:
    """A list (or tuple) setting as a list; text, dicts and other objects are refused, and so are very long lists."""
    if hasattr(value, "tolist") and hasattr(value, "shape") and getattr(value, "shape", ()) != ():
        value = value.tolist()  # a numpy array or tensor of pairs
    if not isinstance(value, (list, tuple)):
        raise refuse(what, "a list", value)
    if len(value) > max_items:
        raise ValueError(f"The {what} has {len(value):,} items; at most {max_items:,} are taken.")
    return list(value)


def whole_pair(value, what: str, names=("first", "second"), low: int | None = 0) -> tuple[int, int]:
    """A pair of whole numbers such as ``(layer, head)``, checked number by number."""
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise refuse(what, f"a ({names[0]}, {names[1]}) pair of whole numbers", value)
    return tuple(whole(number, f"{name} of the {what}", low=low) for number, name in zip(value, names))  # type: ignore


def whole_pairs(value, what: str, names=("first", "second"), low: int | None = 0) -> list[tuple[int, int]]:
    """A list of whole-number pairs such as ablated heads (``what`` is one of them), checked pair by pair: "12" is
    not the pair (1, 2)."""
    return [whole_pair(pair, what, names, low) for pair in items(value, f"list of {what}s")]


def path(value, what: str = "path") -> Path:
    """A path typed or given by a user: text (or a ``Path``) without null characters, each name at most 255 bytes and
    the whole at most 4,096, as the file systems allow; ``~`` is not expanded here."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, (bytes, bytearray)):
        raise ValueError(f"The {what} must be text such as checkpoints/reverse, got bytes.")
    name = text(value, what)
    if "\x00" in name:
        raise ValueError(f"The {what} {shown(name)} holds a null character, which no file name can hold.")
    if len(name.encode("utf-8")) > MAX_PATH_BYTES:
        raise ValueError(f"The {what} is {len(name):,} characters long; paths have at most {MAX_PATH_BYTES:,} bytes.")
    for part in Path(name).parts:
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValueError(f"The {what} holds a name of {len(part):,} characters ({shown(part, 24)}); file and folder "
                             f"names have at most {MAX_NAME_BYTES} bytes.")
    return Path(name)


# ----- JSON from users ------------------------------------------------------------------------------------------
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_depth(raw: str) -> int:
    """How deeply the arrays and objects of JSON text nest, counted on the raw text (strings skipped), so nesting is
    measured before a parser's recursion meets it."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_json(raw, what: str, max_chars: int, max_depth: int = 8):
    """JSON text from a user (a link's state, a checkpoint's metadata, an uploaded file) as values, after its size and
    nesting were checked on the raw text; NaN, infinities and numbers that overflow are refused."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"The {what} is not UTF-8 text.") from None
    if not isinstance(raw, str):
        raise refuse(what, "JSON text", raw)
    if len(raw) > max_chars:
        raise ValueError(f"The {what} is {len(raw):,} characters long; at most {max_chars:,} are read.")
    if json_depth(raw) > max_depth:
        raise ValueError(f"The {what} nests lists or objects more than {max_depth} deep, so it is not one the "
                         "explorer wrote.")

    def finite(number: str) -> float:
        result = float(number)
        if not math.isfinite(result):
            raise ValueError(number)
        return result

    def no_constant(name: str):
        raise ValueError(name)

    try:
        return json.loads(raw, parse_constant=no_constant, parse_float=finite)
    except (ValueError, RecursionError):  # JSONDecodeError, NaN or Infinity, an int of more than 4,300 digits
        raise ValueError(f"The {what} is damaged: it is not JSON with finite numbers.") from None


# ----- the earlier names, used across the package ----------------------------------------------------------------
def number(value, what: str, example: str = "") -> float:
    """A finite number (``real`` without a range)."""
    return real(value, what, example=example)


def positive_number(value, what: str, example: str = "") -> float:
    """A finite number above zero."""
    return real(value, what, above=0, example=example)


def whole_number(value, what: str, low: int | None = None) -> int:
    """A whole number, at least ``low`` when given."""
    return whole(value, what, low)


def float_tensor(value, what: str, dims=None):
    """``value`` (a tensor, a numpy array or nested lists of numbers) as a float32 tensor with one of ``dims``
    dimensions and only finite numbers; text, dicts and ragged lists are refused in words."""
    import torch

    if isinstance(value, (str, bytes, bytearray, dict, set)) or value is None:
        raise refuse(what, "a tensor (or array) of numbers", value)
    try:
        tensor = torch.as_tensor(value).detach()
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise refuse(what, "a tensor (or array) of numbers of one shape", value) from None
    if tensor.is_complex():  # casting would drop the imaginary parts without a word
        raise refuse(what, "a tensor (or array) of real numbers", value)
    tensor = tensor.to("cpu", torch.float32)
    if dims is not None and tensor.dim() not in dims:
        raise ValueError(f"The {what} must have {' or '.join(map(str, dims))} dimensions, got shape {list(tensor.shape)}.")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"The {what} hold NaN or infinite numbers; only finite numbers can be drawn or scored.")
    return tensor
