"""Export: maps as JSON or ``.npz`` bytes with a download link, and figures as PNG/SVG in the browser.

Images are made by plotly.js itself, in the visitor's browser (no kaleido, no Chrome on the server):
a tiny iframe script sets the format of the figure's own "download plot" modebar button and presses it.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

IMAGE_FORMATS = ("png", "svg")
DATA_FORMATS = ("json", "npz")
MIME = {"json": "application/json", "npz": "application/octet-stream", "gif": "image/gif", "html": "text/html"}

DOWNLOAD_LIMIT = 8_000_000  # weights in one download; beyond it only the layer on screen is saved


def export_scope(maps, layer: int, limit: int = DOWNLOAD_LIMIT):
    """The record to save and its description: every layer, or only ``layer`` when all would be too large."""
    if maps.weights.numel() <= limit:
        return maps, f"all {maps.n_layers} layers"
    one = replace(maps, weights=maps.weights[layer:layer + 1], meta=replace(maps.meta, layer_offset=layer))
    return one, (f"layer {layer} only (all {maps.n_layers} layers would be {maps.weights.numel() / 1e6:.0f} million "
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


def download_link(data: bytes, filename: str, fmt: str, nonce: int = 0) -> str:
    """An HTML link that saves ``data`` as ``filename``, clicked at once by a small iframe script."""
    href = f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
    link_id = f"ae-download-{nonce}"
    script = (f"<script>var a=parent.document.getElementById('{link_id}');if(a){{a.click();}}</script>")
    return (f'<a id="{link_id}" class="ae-download" download="{html.escape(filename)}" href="{href}">'
            f"download {html.escape(filename)} ({len(data) / 1e6:.2f} MB)</a>"
            f'<iframe style="display:none" srcdoc="{html.escape(script, quote=True)}"></iframe>')


def image_script(container_class: str, fmt: str, filename: str, nonce: int = 0) -> str:
    """An invisible iframe whose script downloads the plot inside ``.container_class`` as PNG or SVG.

    A plotly figure is saved by its own modebar button (plotly.js ``downloadImage``), a canvas map by its own
    ``aeDownload``, so the image is exactly what is shown.
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"Figures export as {' or '.join(IMAGE_FORMATS)}, not '{fmt}'.")
    script = (
        "<script>"
        f"var box=parent.document.querySelector('.{container_class}');"
        "var map=box&&box.querySelector('.ae-heatmap');"
        f"if(map&&map.aeDownload){{map.aeDownload('{fmt}',{json.dumps(filename)});}}"
        "var gd=!map&&box&&box.querySelector('.js-plotly-plot');"
        "if(gd){"
        f"gd._context.toImageButtonOptions={{format:'{fmt}',filename:{json.dumps(filename)}}};"
        "var b=gd.querySelector('.modebar-btn[data-val=\"toImage\"],.modebar-btn[data-title^=\"Download\"]');"
        "if(b){b.click();}}"
        f"</script><!-- {nonce} -->"
    )
    return f'<iframe style="display:none" srcdoc="{html.escape(script, quote=True)}"></iframe>'
