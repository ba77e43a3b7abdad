"""Threads: the home thread that owns a tab's state and widgets, workers for long work, throttled calls.

In Jupyter the home thread is the kernel's: it handles the page's messages, and every widget is created, changed
and closed there. Long work (loading a model, a forward pass, training) runs in a ``Worker`` and hands its result
back with ``Home.call``, which queues it for the home thread: through the kernel's event loop when one runs, or
until the home thread waits (``Home.wait_until``) in a plain script or a test. No widgets are imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import traceback
import weakref
from typing import Callable


class Home:
    """The thread that owns a set of sessions and their widgets, and a queue of calls handed to it."""

    def __init__(self):
        self.thread = threading.current_thread()
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a plain script or a test: the queue is drained while the home thread waits
            self.loop = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._arrived = threading.Condition()

    @property
    def here(self) -> bool:
        return threading.current_thread() is self.thread

    def call(self, function: Callable, *args) -> None:
        """Run ``function(*args)`` on the home thread: now if this is it, else as soon as it is free."""
        if self.here:
            function(*args)
            return
        self._queue.put((function, args))
        with self._arrived:
            self._arrived.notify_all()
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.drain)
            except RuntimeError:  # the loop closed meanwhile (the kernel is shutting down)
                pass

    def drain(self) -> int:
        """Run every queued call (on the home thread); returns how many ran. A failing call is reported and skipped."""
        ran = 0
        while True:
            try:
                function, args = self._queue.get_nowait()
            except queue.Empty:
                return ran
            ran += 1
            try:
                function(*args)
            except Exception:  # noqa: BLE001 - one bad call must not stop the others; sessions report their own errors
                traceback.print_exc()

    def later(self, delay: float, function: Callable, *args) -> threading.Timer:
        """Run ``function(*args)`` on the home thread after ``delay`` seconds (a timer thread only hands it over)."""
        timer = threading.Timer(delay, self.call, args=(function, *args))
        timer.daemon = True
        timer.start()
        return timer

    def wait_until(self, done: Callable[[], bool], timeout: float = 60.0) -> bool:
        """On the home thread: run handed-over calls until ``done()`` is true; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._arrived:
                if self._queue.empty():
                    self._arrived.wait(min(remaining, 0.05))


_homes: dict[int, Home] = {}
_homes_lock = threading.Lock()


def home() -> Home:
    """The ``Home`` of the calling thread (one per thread, made on first use)."""
    ident = threading.get_ident()
    with _homes_lock:
        found = _homes.get(ident)
        if found is None or not found.thread.is_alive():
            found = _homes[ident] = Home()
        return found


_workers: weakref.WeakSet = weakref.WeakSet()


class Worker:
    """Long work on a background thread, one job at a time; results and errors are handed to the home thread.

    ``submit(job, *args, done=..., failed=...)`` runs ``job(*args)``; ``done(result)`` or ``failed(error)`` then run
    on the home thread. With ``latest=True`` a job submitted while another runs replaces any job still waiting, so
    a burst of requests (typing, sliders) gives the newest one, not a queue. ``stopping`` is set by ``stop()``;
    long jobs poll it (``worker.stopping.is_set()``) to end early.
    """

    def __init__(self, owner: Home, name: str = "worker"):
        self.home, self.name = owner, name
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._waiting: tuple | None = None
        self._thread: threading.Thread | None = None
        self._active = False  # a job runs or is about to: set and cleared under the lock, with the queue
        _workers.add(self)

    @property
    def running(self) -> bool:
        return self._active

    @property
    def waiting(self) -> bool:
        """A job is waiting for the running one to end."""
        return self._waiting is not None

    def submit(self, job: Callable, *args, done: Callable | None = None, failed: Callable | None = None,
               latest: bool = False) -> bool:
        """Start ``job``; False when earlier work still runs (and ``latest`` is not set)."""
        with self._lock:
            if self.running:
                if not latest:
                    return False
                self._waiting = (job, args, done, failed)
                return True
            self.stopping.clear()
            self._waiting, self._active = None, True
            self._thread = threading.Thread(target=self._run, args=((job, args, done, failed),), daemon=True,
                                            name=self.name)
            self._thread.start()
            return True

    def _run(self, first: tuple) -> None:
        job, args, done, failed = first
        while True:
            try:
                result = job(*args)
            except Exception as error:  # noqa: BLE001 - handed to the session, which shows it in words
                if not isinstance(error, ValueError):
                    traceback.print_exc()
                if failed is not None:
                    self.home.call(failed, error)
            else:
                if done is not None:
                    self.home.call(done, result)
            with self._lock:
                if self._waiting is None:
                    self._active = False
                    return
                job, args, done, failed = self._waiting
                self._waiting = None

    def stop(self) -> None:
        """Ask the running job to end early (it must poll ``stopping``) and drop any waiting job."""
        with self._lock:
            self._waiting = None
        self.stopping.set()

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def stop_all_workers() -> int:
    """Stop every worker of this process (the page that owned them is gone); returns how many were running."""
    running = [worker for worker in list(_workers) if worker.running]
    for worker in running:
        worker.stop()
    return len(running)


class Throttle:
    """Call ``function`` on the home thread at most every ``interval`` seconds with the newest arguments.

    Calls made in between are collapsed: only the latest waiting call runs, so a burst of slider events or
    training callbacks gives a few redraws per second, never a queue. Safe to call from any thread.
    """

    def __init__(self, owner: Home, function: Callable, interval: float = 0.25):
        self.home, self.function, self.interval = owner, function, interval
        self._lock = threading.Lock()
        self._pending: tuple | None = None
        self._scheduled = False
        self._last = 0.0

    def __call__(self, *args, **kwargs) -> None:
        with self._lock:
            self._pending = (args, kwargs)
            if self._scheduled:
                return
            self._scheduled = True
            wait = max(0.0, self._last + self.interval - time.monotonic())
        if wait == 0.0:
            self.home.call(self._fire)
        else:
            self.home.later(wait, self._fire)

    def _fire(self) -> None:
        with self._lock:
            pending, self._pending, self._scheduled = self._pending, None, False
            self._last = time.monotonic()
        if pending is not None:
            args, kwargs = pending
            self.function(*args, **kwargs)

    def flush(self) -> None:
        """Run the waiting call now (on the home thread), so the last frame is drawn when this returns."""
        self.home.call(self._fire)


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 1


@contextlib.contextmanager
def one_thread(wanted: bool = True):
    """Use one CPU thread while any small model trains or decodes (tiny matrices lose more to hand-offs than they gain);
    the setting before the first trainer started comes back when the last one ends."""
    global _threads_users, _threads_before
    if not wanted:
        yield
        return
    import torch

    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)
