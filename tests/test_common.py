"""The panels' shared helpers."""

import threading
import time

from explorer.widgets.common import Throttle


def test_throttle_collapses_a_burst_into_the_newest_call():
    calls, done = [], threading.Event()
    throttle = Throttle(lambda value: (calls.append(value), done.set()), interval=0.2)
    throttle("first")  # runs at once (nothing ran for a while)
    done.wait(2)
    for value in ("a", "b", "newest"):
        throttle(value)  # within the interval: collapsed into one call with the newest value
    throttle.flush()
    assert calls == ["first", "newest"]


def test_flush_waits_for_a_call_already_running():
    started, results = threading.Event(), []

    def slow(value):
        started.set()
        time.sleep(0.3)
        results.append(value)

    throttle = Throttle(slow, interval=0.1)
    throttle("drawn")  # the timer thread starts it at once
    assert started.wait(2)
    throttle.flush()  # nothing is waiting, but a call is in flight: its result must be there on return
    assert results == ["drawn"]
