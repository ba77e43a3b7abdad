"""What the two training tabs share: a session that holds a ``Lab`` (``explorer.lab``) and publishes its record.

The lab trains; the session turns its record into the ``lab_view`` trait (a frozen ``LabView``, a few times a
second at most) and says in the status line how a run went. Panels draw ``lab_view`` and the settings, never a
trainer or a model. Building new models is work for the session's worker; training is the lab's own worker's.
"""

from __future__ import annotations

from traitlets import Bool, Instance

from explorer.lab import Lab, LabView
from explorer.limits import check_cap
from explorer.sessions.base import Session
from explorer.training import Trainer, check_steps


class LabSession(Session):
    """A session with a ``lab``; subclasses say what a tick and the end of a run mean (``progressed``, ``ended``)."""

    lab_view = Instance(LabView, allow_none=True)  # the newest record of the lab, for the panels
    training = Bool(False)

    def __init__(self, owner=None, **settings):
        self.lab: Lab | None = None
        super().__init__(owner, **settings)

    @property
    def trainers(self) -> dict[str, Trainer]:
        """The lab's trainers by name (for Python and tests; panels draw ``lab_view``)."""
        return dict(self.lab.trainers) if self.lab is not None else {}

    def record(self) -> LabView | None:
        """The lab's record of this moment (an export wants the newest snapshot, not the last tick's)."""
        return self.lab.record() if self.lab is not None else None

    def use(self, lab: Lab) -> None:
        """Show ``lab`` (on the home thread): its records become ``lab_view`` from now on."""
        self.lab = lab
        lab.listen(self._on_view, self._on_end)
        lab.publish()

    def _on_view(self, view: LabView) -> None:
        self.lab_view = view
        if view.status == "training":
            self.progressed(view)

    def _on_end(self, view: LabView) -> None:
        self.training = False
        self.lab_view = view
        self.ended(view)

    def progressed(self, view: LabView) -> None:
        """A redraw tick while training (on the home thread)."""

    def ended(self, view: LabView) -> None:
        """The run ended: finished, stopped, paused or an error (on the home thread)."""
        self.say(view.message, "ok" if view.status in ("finished", "stopped") else "error")

    # ----- training --------------------------------------------------------------------------------------------------
    def start_training(self, steps: int) -> int:
        """Start the lab for ``steps`` steps (a ValueError in words for a count that is not allowed); returns them."""
        steps = check_cap(check_steps(steps))
        self.training = True
        try:
            self.lab.start(steps)
        except ValueError:
            self.training = False
            raise
        return steps

    def stop_work(self) -> None:
        super().stop_work()
        if self.lab is not None:
            self.lab.stop(timeout=0.0)

    def wait(self, timeout: float = 120.0) -> bool:
        return self.home.wait_until(lambda: not self.worker.running and not self.busy and not self.training, timeout)
