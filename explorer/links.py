"""Links that reproduce a view: a session's settings as a compact, versioned string, and back.

    state = encode({"score": "additive", "temperature": 0.5})      # "1.eJyrVipOzk..." (version, then the data)
    version, settings = decode(state)

The data is JSON, compressed with zlib and written in URL-safe base64, so a link stays short and survives
being pasted into chat. ``decode`` refuses garbage, truncated or oversized text and versions newer than
this one with a ValueError that a visitor can read; sessions then fall back to their defaults.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from urllib.parse import parse_qs, urlencode

from explorer.arguments import parse_json, text

VERSION = 1
MAX_STATE_CHARS = 8_000  # a link's state; anything longer is not one the explorer made
MAX_JSON_BYTES = 64_000  # what the state may unpack to (a zip bomb in a link stays small)
MAX_DEPTH = 6  # a state nests a dict of settings, lists of pairs: 3 deep; a link that nests further is forged


def encode(settings: dict, version: int = VERSION) -> str:
    """``settings`` (JSON-ready values) as ``"<version>.<base64url of zlib of JSON>"``."""
    try:
        written = json.dumps(settings, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # NaN, infinities or objects JSON cannot hold
        raise ValueError("A link holds plain settings (text, finite numbers, lists); these settings hold something "
                         "else, so no link was made.") from None
    packed = base64.urlsafe_b64encode(zlib.compress(written.encode("utf-8"), 9)).decode("ascii").rstrip("=")
    return f"{version}.{packed}"


def decode(state: str) -> tuple[int, dict]:
    """The version and settings of a state string; a ValueError saying why a string is not a state."""
    state = text("" if state is None else state, "link's state").strip()
    if len(state) > MAX_STATE_CHARS:
        raise ValueError(f"The link's state is {len(state):,} characters long; links made by the explorer are "
                         f"shorter than {MAX_STATE_CHARS:,}. The defaults are shown.")
    version_text, _, packed = state.partition(".")
    if not (version_text.isascii() and version_text.isdigit()) or len(version_text) > 4 or not packed:
        raise ValueError("The link's state is not one the explorer made (it may be cut short). The defaults are shown.")
    version = int(version_text)
    if version > VERSION:
        raise ValueError(f"The link was made by a newer version of the explorer (state version {version}; this one "
                         f"reads up to {VERSION}). The defaults are shown.")
    try:
        raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        unpacker = zlib.decompressobj()
        unpacked = unpacker.decompress(raw, MAX_JSON_BYTES)
        if unpacker.unconsumed_tail or not unpacker.eof:
            raise ValueError
    except (binascii.Error, zlib.error, ValueError):
        raise ValueError("The link's state is damaged or cut short, so it cannot be read. The defaults are shown.") from None
    try:
        settings = parse_json(unpacked, "link's state", MAX_JSON_BYTES, MAX_DEPTH)
    except ValueError as error:
        raise ValueError(f"{error} The defaults are shown.") from None
    if not isinstance(settings, dict):
        raise ValueError("The link's state is not one the explorer made. The defaults are shown.")
    return version, settings


def query(tab: str, state: str | None = None, **extra) -> str:
    """``?tab=...&state=...`` for a view."""
    params = {"tab": tab}
    if state:
        params["state"] = state
    params.update({k: v for k, v in extra.items() if v})
    return "?" + urlencode(params)


def parse(query_string: str) -> dict[str, str]:
    """The first value of each parameter of a query string (with or without the leading ``?``)."""
    query_string = text("" if query_string is None else query_string, "link")
    return {key: values[0] for key, values in parse_qs(query_string.lstrip("?")).items() if values}
