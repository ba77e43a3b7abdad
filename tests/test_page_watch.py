"""The page watch: a page that says bye, goes quiet, or that the Voila server no longer has, stops the kernel's work;
a warm kernel whose visitor has not come yet, or a page that reconnects, does not."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from explorer.threads import home
from explorer.widgets.page_watch import PageWatch, page_connections


class Server:
    """Answers ``GET /api/kernels/<id>`` as jupyter_server's KernelHandler does, with ``connections`` pages."""

    def __init__(self):
        self.connections, self.asked = 0, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.asked.append(self.path)
                body = json.dumps({"id": "k", "name": "python3", "execution_state": "idle",
                                   "connections": server.connections}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.port = self.http.server_address[1]


@pytest.fixture
def server(monkeypatch):
    found = Server()
    monkeypatch.setenv("VOILA_KERNEL_ID", "8f0c7a4e-1b2c-4d3e-9f00-123456789abc")
    monkeypatch.setenv("VOILA_APP_PORT", str(found.port))
    monkeypatch.setenv("VOILA_SERVER_URL", "/voila-base/")
    yield found
    found.http.shutdown()


def test_page_connections_reads_the_kernels_model_from_the_voila_server(server):
    server.connections = 1
    assert page_connections() == 1
    assert server.asked == ["/voila-base/api/kernels/8f0c7a4e-1b2c-4d3e-9f00-123456789abc"]


def test_page_connections_outside_voila_is_none(monkeypatch):
    monkeypatch.delenv("VOILA_KERNEL_ID", raising=False)
    assert page_connections() is None


def beat(watch: PageWatch, event: str = "beat") -> None:
    watch._on_page_message(watch, {"event": event, "view": "v1"}, [])


def test_a_page_the_server_no_longer_has_stops_the_work(server):
    gone = []
    watch = PageWatch(on_gone=lambda: gone.append(True), check_every=0.05)
    server.connections = 1
    beat(watch)
    assert watch.home.wait_until(lambda: len(server.asked) >= 3, 10)
    assert not gone
    server.connections = 0  # the browser was killed: no bye, and its beats would go on counting for minutes
    assert watch.home.wait_until(lambda: gone, 10)
    assert gone == [True]


def test_a_page_killed_before_the_first_question_stops_the_work(server):
    gone = []
    watch = PageWatch(on_gone=lambda: gone.append(True), check_every=0.05)
    server.connections = 0  # its beat came, then the browser died before the kernel first asked
    beat(watch)
    assert watch.home.wait_until(lambda: gone, 10)


def test_a_warm_kernel_waiting_for_its_visitor_keeps_its_work(server):
    gone = []
    PageWatch(on_gone=lambda: gone.append(True), check_every=0.05)  # no page has beaten: nobody has come yet
    server.connections = 0
    home().wait_until(lambda: bool(gone), 0.5)
    assert not gone and not server.asked


def test_one_quiet_answer_is_not_enough(server):
    gone, answers = [], iter([1, 0, 1, 0, 1] + [1] * 1000)
    watch = PageWatch(on_gone=lambda: gone.append(True), connections=lambda: next(answers), check_every=0.02)
    beat(watch)
    watch.home.wait_until(lambda: bool(gone), 0.5)
    assert not gone


def test_bye_stops_the_work_at_once():
    gone = []
    watch = PageWatch(on_gone=lambda: gone.append(True), connections=lambda: None)
    beat(watch)
    beat(watch, "bye")
    assert gone == [True]
