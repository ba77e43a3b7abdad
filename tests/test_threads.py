"""Threads: work in a worker, results handed to the home thread, throttled calls collapsed into the newest."""

from __future__ import annotations

import threading
import time

from explorer.threads import Home, Throttle, Worker, stop_all_workers


def test_a_workers_result_is_handed_to_the_home_thread():
    home = Home()
    seen = []
    worker = Worker(home)
    worker.submit(lambda: threading.current_thread(), done=lambda made_in: seen.append((made_in, threading.current_thread())))
    assert home.wait_until(lambda: seen, 10)
    made_in, handed_to = seen[0]
    assert made_in is not threading.current_thread() and handed_to is threading.current_thread()


def test_latest_replaces_waiting_jobs_so_a_burst_gives_the_newest():
    home, results = Home(), []
    worker = Worker(home)
    gate = threading.Event()
    worker.submit(gate.wait, 10, done=lambda _: results.append("first"))
    for word in ("a", "b", "newest"):
        worker.submit(lambda word=word: word, done=results.append, latest=True)
    gate.set()
    assert home.wait_until(lambda: len(results) == 2 and not worker.running, 10)
    assert results == ["first", "newest"]


def test_a_failing_job_reports_its_error_on_the_home_thread():
    home, errors = Home(), []
    Worker(home).submit(lambda: 1 / 0, failed=errors.append)
    assert home.wait_until(lambda: errors, 10) and isinstance(errors[0], ZeroDivisionError)


def test_stop_all_workers_sets_every_running_jobs_stop_flag():
    home = Home()
    worker = Worker(home)
    worker.submit(lambda: worker.stopping.wait(30))
    time.sleep(0.05)
    assert stop_all_workers() >= 1
    worker.join(5)
    assert not worker.running


def test_throttle_collapses_a_burst_into_the_newest_call_on_the_home_thread():
    home, calls = Home(), []
    throttle = Throttle(home, lambda value: calls.append((value, threading.current_thread())), interval=0.2)
    throttle("first")  # runs at once (nothing ran for a while)
    assert calls[0][0] == "first"
    for value in ("a", "b", "newest"):
        threading.Thread(target=throttle, args=(value,)).start()  # from other threads, within the interval
    assert home.wait_until(lambda: len(calls) == 2, 5)
    assert [value for value, _ in calls] == ["first", "newest"]
    assert all(thread is threading.current_thread() for _, thread in calls)
