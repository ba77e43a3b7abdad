"""Export: maps as JSON or ``.npz`` bytes; figures are saved as PNG/SVG by the browser (widgets/export.py).

Images are made in the visitor's browser (no kaleido, no Chrome on the server): plotly.js draws its own
figures, and the canvas map draws a vector SVG of exactly what is shown.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

IMAGE_FORMATS = ("png", "svg")
DATA_FORMATS = ("json", "npz")
MIME = {"json": "application/json", "npz": "application/octet-stream", "gif": "image/gif", "html": "text/html"}

DOWNLOAD_LIMIT = 8_000_000  # weights in one download; beyond it only the layer on screen is saved
LAYER_LIMIT = 64_000_000  # weights of the one layer saved instead (2,048 tokens of SmolLM2: 38 million); beyond it none


def export_scope(maps, layer: int, limit: int = DOWNLOAD_LIMIT):
    """The record to save and its description: every layer, or only ``layer`` when all would be too large."""
    numbers = maps.n_layers * maps.n_heads * len(maps.tokens) * len(maps.keys)
    if numbers <= limit:
        return maps, f"all {maps.n_layers} layers"
    if numbers // maps.n_layers > LAYER_LIMIT:
        raise ValueError(f"One layer of these maps is {numbers // maps.n_layers / 1e6:.0f} million numbers, too many to "
                         f"download; save it from Python with maps.layer_maps({layer}).save_npz(path), or export the "
                         "map on screen as PNG or SVG.")
    return maps.layer_maps(layer), (f"layer {layer} only (all {maps.n_layers} layers would be {numbers / 1e6:.0f} million "
                 "numbers; save them from Python with AttentionMaps.save_npz)")


def maps_json(maps, decimals: int = 5) -> bytes:
    """The record as JSON (``AttentionMaps.to_dict`` layout), weights rounded to ``decimals``."""
    data = maps.to_dict()
    data["weights"] = np.round(maps.weights.double().numpy(), decimals).tolist()
    return json.dumps(data).encode("utf-8")


def maps_npz(maps) -> bytes:
    """The record as a compressed NumPy ``.npz`` (``AttentionMaps.save_npz`` layout, no pickles)."""
    with tempfile.TemporaryDirectory() as folder:
        return maps.save_npz(Path(folder) / "maps.npz").read_bytes()


def maps_bytes(maps, fmt: str) -> bytes:
    if fmt not in DATA_FORMATS:
        raise ValueError(f"Maps export as {' or '.join(DATA_FORMATS)}, not '{fmt}'.")
    return maps_json(maps) if fmt == "json" else maps_npz(maps)
