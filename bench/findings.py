"""The two findings of issue 23, timed: an induction head forming, and attention sinks holding SmolLM2 together.

    python bench/findings.py [--only induction|sinks] [--window 64] [--sinks 4] [--tokens 2000]

Prints ``name: value`` lines:
- induction: for the tab's preset "induction heads form (Olsson et al. 2022)" and two other seeds, trained as the
  dashboard trains it (Train pressed in the panel, its redraws on this thread): the step and the seconds from
  pressing Train to the phase change (the fastest fall of the second-copy loss), to the best head's induction
  score reaching 0.5, and to the goal (second-copy loss below 0.5 with a head above 0.8; goal: within 90 s);
  then the 1-layer preset trained for as many steps as the slowest 2-layer seed needed (goal: its second-copy loss
  stays above 2.5);
- sinks: the perplexity of the bundled text at ``--tokens`` tokens (past token ``--window``) with full attention, a
  sliding window, and the window keeping the first ``--sinks`` tokens, their ratios to full attention (goals:
  window >= 2x; with the sinks at most 2x and at most half the window's ratio), and the seconds each pass took
  (goal: all three within 3 minutes on 2 cores).
Wall seconds suffer when other programs share the cores, so CPU seconds of this process stand beside them, and
``load`` (wall / CPU of the same stretch) says how shared the machine was.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer import sinks  # noqa: E402

SEEDS = (0, 1, 2)  # the preset's seed first


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


PRESET, CONTROL = "induction heads form (Olsson et al. 2022)", "one layer cannot"
MAX_STEPS = 4000


def train_in_panel(preset: str, seed: int, steps: int, until_formed: bool) -> tuple[list, list]:
    """Train the tab's ``preset`` from ``seed`` in a panel, as the dashboard does; stop once the head has formed
    (``until_formed``). Returns the run's snapshots and, per redraw, (newest step, wall s, CPU s) since Train."""
    from explorer.sessions.transformer_lab import TransformerLabSession
    from explorer.widgets.transformer_lab import TransformerLabPanel

    panel = TransformerLabPanel(TransformerLabSession(seed=seed, preset=preset))
    panel.wait(600)
    session, ticks = panel.session, []
    trainer = session.runs[0].trainer

    def on_redraw(_) -> None:
        newest = trainer.snapshots[-1]
        ticks.append((newest.step, *since(start)))
        if until_formed and formed(newest) and session.training:
            session.stop()

    session.observe(on_redraw, "lab_view")
    start = clocks()
    session.train(steps)
    panel.wait(3600)
    return list(trainer.snapshots), ticks


def formed(snapshot) -> bool:
    """The goal: the second-copy loss below 0.5 and a head's induction score above 0.8."""
    scores = snapshot.induction
    return scores is not None and scores.second_copy_loss < 0.5 and scores.top_induction > 0.8


def at_step(ticks: list, step: int | None) -> tuple[float, float]:
    """Wall and CPU seconds since Train at the first redraw that showed ``step`` or later."""
    return next(((wall, cpu) for shown, wall, cpu in ticks if step is not None and shown >= step), (float("nan"),) * 2)


def induction_bench(seeds) -> None:
    from explorer.phase import phase_change_of

    needed = []
    for seed in seeds:
        snapshots, ticks = train_in_panel(PRESET, seed, MAX_STEPS, until_formed=True)
        phase = phase_change_of(snapshots)
        done = next((s.step for s in snapshots if formed(s)), None)
        needed.append(done or snapshots[-1].step)
        key = f"induction_seed{seed}"
        for name, step in (("phase_change", phase and phase.step), ("head_at_0.5", phase and phase.induction_step),
                           ("formed", done)):
            wall, cpu = at_step(ticks, step)
            print(f"{key}_{name}_step: {step}")
            print(f"{key}_{name}_wall_seconds: {wall:.1f}" + ("  (goal <= 90 s on 2 cores)" if name == "formed" else ""))
            print(f"{key}_{name}_cpu_seconds: {cpu:.1f}")
        chance = snapshots[0].induction.second_copy_loss
        plateau = max((s.step for s in snapshots if s.induction.second_copy_loss > chance - 0.5), default=0)
        print(f"{key}_plateau_until_step: {plateau}  (the second-copy loss within 0.5 of its start, {chance:.2f})")
        wall, cpu = ticks[-1][1:] if ticks else (float("nan"),) * 2
        print(f"{key}_load_wall_per_cpu: {wall / max(cpu, 1e-9):.2f}")
    steps = max(needed)
    snapshots, _ = train_in_panel(CONTROL, seeds[0], steps, until_formed=False)
    last = snapshots[-1].induction
    print(f"induction_one_layer_steps: {snapshots[-1].step}  (the slowest 2-layer seed's)")
    print(f"induction_one_layer_second_copy_loss: {last.second_copy_loss:.2f}  (goal > 2.5)")
    print(f"induction_one_layer_top_induction_score: {last.top_induction:.2f}")


def sink_bench(window: int, n_sinks: int, tokens: int) -> None:
    from explorer.models import language

    model = language.load()
    start = clocks()
    run = sinks.sink_experiment(model, sinks.bundled_text(), window, n_sinks, tokens)
    wall, cpu = since(start)
    found = run.perplexities()
    full = found["full attention"]
    print(f"sinks_text_tokens: {run.tokens}")
    for (name, _, _), key in zip(run.settings, ("full", "window", "window_sinks")):
        print(f"sinks_perplexity_{key}: {found[name]:.2f}  ({name}, tokens {window}..{run.tokens - 1})")
        print(f"sinks_ratio_{key}_vs_full: {found[name] / full:.2f}")
        print(f"sinks_seconds_{key}: {run.seconds[name]:.1f}")
    window_ratio = found[run.settings[1][0]] / full
    sink_ratio = found[run.settings[2][0]] / full
    print(f"sinks_goal_window_at_least_2x: {window_ratio >= 2}")
    print(f"sinks_goal_sinks_at_most_2x_and_half_the_window: {sink_ratio <= 2 and sink_ratio <= window_ratio / 2}")
    print(f"sinks_wall_seconds_total: {wall:.1f}  (goal <= 180 s on 2 cores)")
    print(f"sinks_cpu_seconds_total: {cpu:.1f}")
    print(f"sinks_load_wall_per_cpu: {wall / max(cpu, 1e-9):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("induction", "sinks"))
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=2000)
    options = parser.parse_args()
    if options.only != "sinks":
        induction_bench(SEEDS)
    if options.only != "induction":
        sink_bench(options.window, options.sinks, options.tokens)


if __name__ == "__main__":
    main()
