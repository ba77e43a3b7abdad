"""bertviz's head_view and model_view as self-contained HTML that works with no network.

bertviz writes ``<script src=...cdnjs...require.min.js>`` and asks require.js to fetch d3 and jQuery from
cdnjs. Here the same three libraries are inlined from ``explorer/static/bertviz`` (see its README for
versions and licences): d3 and jQuery load first as plain scripts, require.js after them, and the two are
registered under the names bertviz asks for, so nothing is fetched. The page goes into an iframe's
``srcdoc`` (an HTML widget does not run scripts; an iframe does).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np

STATIC = Path(__file__).resolve().parent.parent / "static" / "bertviz"
MAX_TOKENS = 64  # beyond this bertviz's page grows to many megabytes and its drawing slows down
DECIMALS = 4
KINDS = ("head", "model")
_CDN_REQUIRE = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/[^"]*require[^"]*"></script>')
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);", re.S)
_DEFINE_LOCAL = "define('d3', [], function () { return window.d3; });\n" \
                "define('jquery', [], function () { return window.jQuery; });"


def offline_scripts() -> str:
    """d3, jQuery and require.js inlined, with d3 and jQuery registered as require.js modules."""
    parts = [(STATIC / name).read_text(encoding="utf-8") for name in ("d3.min.js", "jquery.min.js", "require.js")]
    return "".join(f"<script>{part}</script>\n" for part in parts) + f"<script>{_DEFINE_LOCAL}</script>\n"


def make_offline(bertviz_html: str) -> str:
    """bertviz's HTML with the CDN script replaced by the local libraries and its CDN paths removed."""
    page, found = _CDN_REQUIRE.subn(lambda _: offline_scripts(), bertviz_html)
    if not found:
        raise ValueError("This bertviz version writes its HTML differently; the offline view cannot be built.")
    return _REQUIRE_CONFIG.sub("", page)


def bertviz_page(maps, kind: str = "head", layer: int = 0, max_tokens: int = MAX_TOKENS) -> tuple[str, str]:
    """A whole offline HTML page of bertviz's ``head`` or ``model`` view for ``maps``, and a notice if cut.

    Only the first ``max_tokens`` tokens are passed to bertviz (their rows are not renormalised).
    Weights are rounded to 4 decimals, which bertviz's drawing cannot show anyway.
    """
    from bertviz import head_view, model_view

    if kind not in KINDS:
        raise ValueError(f"Unknown bertviz view '{kind}': choose one of {', '.join(KINDS)}.")
    n = min(len(maps.tokens), max_tokens)
    notice = ""
    if len(maps.tokens) > n:
        notice = (f"bertviz shows the first {n} of {len(maps.tokens)} tokens: beyond that its page grows to "
                  "many megabytes and slows down. The heatmaps above show every token.")
    weights = np.round(first_tokens(maps, n).double().numpy(), DECIMALS)
    attention = [_batch(layer_weights) for layer_weights in weights]
    tokens = [f"AE-TOKEN-{i}-AE" for i in range(n)]  # the real tokens are written in below, escaped for <script>
    start = maps.meta.segment_b_start
    start = start if start is not None and start < n else None
    if kind == "head":
        page = head_view(attention, tokens, sentence_b_start=start, layer=layer, html_action="return").data
    else:
        page = model_view(attention, tokens, sentence_b_start=start, html_action="return").data
    body = embed_tokens(make_offline(page), list(maps.tokens[:n]))
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>', notice


def bertviz_seq2seq_page(parts: dict, kind: str = "head", layer: int = 0,
                         max_tokens: int = MAX_TOKENS) -> tuple[str, str]:
    """bertviz's encoder-decoder ``head`` or ``model`` view of the ``encoder``, ``decoder`` and ``cross`` maps of
    one reading (its Encoder, Decoder and Cross menu), offline; the first ``max_tokens`` source and target tokens."""
    from bertviz import head_view, model_view

    if kind not in KINDS:
        raise ValueError(f"Unknown bertviz view '{kind}': choose one of {', '.join(KINDS)}.")
    cross = parts["cross"]
    n_source, n_target = min(len(cross.keys), max_tokens), min(len(cross.tokens), max_tokens)
    notice = ""
    if (n_source, n_target) != (len(cross.keys), len(cross.tokens)):
        notice = (f"bertviz shows the first {max_tokens} tokens of the source and of the target: beyond that its "
                  "page grows to many megabytes. The maps above show every token.")
    cut = {"encoder": (n_source, n_source), "decoder": (n_target, n_target), "cross": (n_target, n_source)}
    attention = {f"{part}_attention": [_batch(w) for w in np.round(
        parts[part].weights[:, :, :rows, :cols].double().numpy(), DECIMALS)] for part, (rows, cols) in cut.items()}
    labels = dict(encoder_tokens=[f"AE-SRC-{i}-AE" for i in range(n_source)],
                  decoder_tokens=[f"AE-TGT-{i}-AE" for i in range(n_target)])
    if kind == "head":
        page = head_view(**attention, **labels, layer=min(layer, cross.n_layers - 1), html_action="return").data
    else:
        page = model_view(**attention, **labels, html_action="return").data
    page = embed_tokens(make_offline(page), list(cross.keys[:n_source]), "SRC")
    body = embed_tokens(page, list(cross.tokens[:n_target]), "TGT")
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>', notice


def first_tokens(maps, n: int):
    """``[layers, heads, n, n]``: the first ``n`` queries and keys of every layer, a block of rows at a time (a long
    text's maps are worked out for those rows only; in a causal model these are exactly the weights of the first
    ``n`` tokens alone)."""
    import torch

    return torch.stack([maps.rows(layer, rows=slice(0, n))[:, :, :n] for layer in range(maps.n_layers)])


def script_json(value) -> str:
    """``value`` as JSON that cannot end the <script> it sits in: ``</`` and ``<!--`` are escaped for JavaScript."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def embed_tokens(page: str, tokens: list[str], prefix: str = "TOKEN") -> str:
    """Put the tokens where bertviz wrote their placeholders, as script-safe JSON strings."""
    for i, token in enumerate(tokens):
        page = page.replace(f'"AE-{prefix}-{i}-AE"', script_json(str(token)))
    return page


def _batch(layer_weights):
    import torch

    return torch.from_numpy(layer_weights)[None]  # [1, heads, T, T], the shape bertviz expects


def iframe(page: str, height: int) -> str:
    """``page`` in a sandboxed iframe: its scripts run there, but without the dashboard's origin (no access to the
    page, its cookies or its kernel), and no request is made."""
    return (f'<iframe class="ae-bertviz-frame" sandbox="allow-scripts" style="width:100%;height:{int(height)}px;border:0" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')


def frame_height(kind: str, n_tokens: int, n_layers: int) -> int:  # n_tokens: the longer side
    """Enough height for bertviz's drawing: a row per token (head view) or a row per layer (model view)."""
    return 140 + 23 * n_tokens if kind == "head" else 120 + 110 * n_layers
