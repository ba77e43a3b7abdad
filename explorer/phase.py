"""The phase change of an induction head, found in the curves of a training run (pure: numbers in, numbers out).

Olsson et al. (2022) saw the loss on repeated text sit on a plateau and then fall abruptly as an induction head
forms. ``phase_change(steps, losses, top_induction)`` finds the step where the second-copy loss falls fastest,
and the step where the best head's induction score first reaches one half; ``induction_curves(snapshots)``
reads those curves from a run's snapshots (``Snapshot.induction``, recorded by ``explorer.induction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from explorer.arguments import float_tensor, whole

CROSSING = 0.5  # the induction score that counts as "the head has formed" for the phase change's second step


@dataclass(frozen=True)
class PhaseChange:
    """Where the second-copy loss falls fastest, how fast, and when the best head's induction score got to 0.5."""

    step: int
    fall: float  # nats of second-copy loss lost per 100 steps there
    induction_step: int | None = None  # the first step with a head's induction score at CROSSING or above


def phase_change(steps: Sequence[int], losses: Sequence[float], top_induction: Sequence[float] | None = None,
                 smooth: int | None = None) -> PhaseChange | None:
    """The step where ``losses`` (the second-copy loss at ``steps``) fall fastest, after a moving average over
    ``smooth`` points (about a twentieth of the curve by default) takes the probe's noise out; None while the
    curve is too short or never falls. ``top_induction`` (the best head's score at the same steps) gives the step
    where it first reaches ``CROSSING``."""
    steps, losses = (float_tensor(values, what, dims=(1,)).double().numpy() for values, what in
                     ((steps, "training steps"), (losses, "second-copy losses")))
    if steps.shape != losses.shape:
        raise ValueError(f"Steps and losses must be two lists of one length, got {len(steps)} and {len(losses)}.")
    width = max(3, len(steps) // 20) if smooth is None else whole(smooth, "width of the moving average", 1)
    if top_induction is not None:
        top_induction = float_tensor(top_induction, "top induction scores", dims=(1,)).double().numpy()
        if top_induction.shape != steps.shape:
            raise ValueError(f"The top induction scores must be one per step: {len(top_induction)} scores for "
                             f"{len(steps)} steps.")
    if len(steps) < width + 2:
        return None
    kernel = np.ones(width) / width
    smoothed = np.convolve(losses, kernel, mode="valid")
    centres = np.convolve(steps, kernel, mode="valid")
    slope = np.gradient(smoothed, centres)  # nats per step
    fastest = int(np.argmin(slope))
    if slope[fastest] >= 0:
        return None
    step = int(steps[np.argmin(np.abs(steps - centres[fastest]))])  # the recorded step nearest the steepest point
    crossed = None
    if top_induction is not None:
        above = np.flatnonzero(top_induction >= CROSSING)
        crossed = int(steps[above[0]]) if len(above) else None
    return PhaseChange(step=step, fall=float(-slope[fastest] * 100), induction_step=crossed)


def induction_curves(snapshots) -> dict[str, np.ndarray]:
    """From a run's snapshots that carry ``InductionScores``: ``steps``, ``first_copy`` and ``second_copy`` losses,
    ``induction`` and ``previous_token`` ``[snapshots, layers, heads]``."""
    scores = [(s.step, s.induction) for s in snapshots if s.induction is not None]
    grid = lambda name: np.array([getattr(r, name) for _, r in scores], dtype=float).reshape(  # noqa: E731
        len(scores), *(np.shape(getattr(scores[0][1], name)) if scores else (0, 0)))
    return {"steps": np.array([step for step, _ in scores], dtype=int),
            "first_copy": np.array([r.first_copy_loss for _, r in scores], dtype=float),
            "second_copy": np.array([r.second_copy_loss for _, r in scores], dtype=float),
            "induction": grid("induction"), "previous_token": grid("previous_token")}


def phase_change_of(snapshots) -> PhaseChange | None:
    """The phase change of a run, from its snapshots' ``InductionScores``."""
    curves = induction_curves(snapshots)
    return phase_change(curves["steps"], curves["second_copy"], curves["induction"].max(axis=(1, 2))
                        if len(curves["steps"]) else None)
