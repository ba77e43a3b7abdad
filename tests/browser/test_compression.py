"""The page travels compressed: the served HTML and JavaScript come back gzip-encoded when the browser asks."""

from __future__ import annotations

import gzip
import urllib.request


def fetch(url: str) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.headers.get("Content-Encoding", ""), response.read()


def test_html_and_javascript_come_back_gzip_encoded(dashboard_url):
    encoding, body = fetch(dashboard_url)
    assert encoding == "gzip"
    html = gzip.decompress(body)
    assert b"<html" in html[:2000].lower() and len(body) < len(html) / 2
    encoding, body = fetch(dashboard_url + "voila/templates/explorer/static/plotly.min.js")
    assert encoding == "gzip"
    assert len(gzip.decompress(body)) > 2 * len(body)


def test_a_client_that_does_not_ask_gets_plain_bytes(dashboard_url):
    with urllib.request.urlopen(dashboard_url + "voila/templates/explorer/static/anywidget_clock.js", timeout=60) as r:
        assert r.headers.get("Content-Encoding") is None and b"AbortSignal" in r.read()
