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

VERSION = 1
MAX_STATE_CHARS = 8_000  # a link's state; anything longer is not one the explorer made
MAX_JSON_BYTES = 64_000  # what the state may unpack to (a zip bomb in a link stays small)


def encode(settings: dict, version: int = VERSION) -> str:
    """``settings`` (JSON-ready values) as ``"<version>.<base64url of zlib of JSON>"``."""
    text = json.dumps(settings, separators=(",", ":"), sort_keys=True, allow_nan=False)
    packed = base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii").rstrip("=")
    return f"{version}.{packed}"


def decode(state: str) -> tuple[int, dict]:
    """The version and settings of a state string; a ValueError saying why a string is not a state."""
    state = (state or "").strip()
    if len(state) > MAX_STATE_CHARS:
        raise ValueError(f"The link's state is {len(state):,} characters long; links made by the explorer are "
                         f"shorter than {MAX_STATE_CHARS:,}. The defaults are shown.")
    version_text, _, packed = state.partition(".")
    if not version_text.isdigit() or not packed:
        raise ValueError("The link's state is not one the explorer made (it may be cut short). The defaults are shown.")
    version = int(version_text)
    if version > VERSION:
        raise ValueError(f"The link was made by a newer version of the explorer (state version {version}; this one "
                         f"reads up to {VERSION}). The defaults are shown.")
    try:
        raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        unpacker = zlib.decompressobj()
        text = unpacker.decompress(raw, MAX_JSON_BYTES)
        if unpacker.unconsumed_tail or not unpacker.eof:
            raise ValueError
        settings = json.loads(text.decode("utf-8"))
    except (binascii.Error, zlib.error, ValueError, UnicodeDecodeError):
        raise ValueError("The link's state is damaged or cut short, so it cannot be read. The defaults are shown.") from None
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
    return {key: values[0] for key, values in parse_qs((query_string or "").lstrip("?")).items() if values}
