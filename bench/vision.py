"""Vision tab benchmark, in one run on the shapes data: the ViT against the CBAM net, on the same yardstick.

    .venv/bin/python bench/vision.py [--max-steps 1500] [--default-train-only]

First, the tab's default Train as the Train button runs it (its data, nets, epochs, learning rate, schedule and
mirrored batches; the three nets in turns in the session's lab, with its evaluations and snapshots) on data seeds
0, 1 and 2: each net's test accuracy after it (goal: the ViT at 95% or more on every seed), the Train's wall seconds
and CPU seconds (the wall seconds of a machine left to it: the nets train on one thread), and the wall seconds
against those the nets' own training steps took (the rest is the lab's evaluations and snapshots).
Then, at a constant learning rate without mirrored batches: lesson 7's ViT's (patches of 4, width 32, 2 layers,
4 heads, CLS) seconds of training to 95% test accuracy, or the accuracy it reached if it did not get there; its step
cost as a ratio against the CBAM net's, measured in alternating blocks in this process; and the localization (map
mass in the object's box / box area share, 1.0 = a uniform map) of its last-layer CLS map and rollout, untrained and
trained, beside the CBAM net's spatial maps and Grad-CAM (the CBAM net trained to 95% the same way). A finding, not
a target.
Last, the tab's throughput with its panel live: the three nets trained in turns by the session, with the panel's
throttled redraws on this thread, against the same nets trained in turns here without a panel (goal: slowdown <= 10%).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from explorer.data.images import make_shapes
from explorer.models.cbam import PAPER, CBAMNet, probe_maps
from explorer.models.vit import TinyViT, ViTConfig, probe_vit
from explorer.sessions.vision_nets import BATCH_SIZE, CHUNK, trainer_for
from explorer.training import Trainer

LR = 0.003  # the Vision tab's default learning rate
TARGET = 0.95
DATA_SEEDS = (0, 1, 2)
CBAM_OPTIONS = {k: v for k, v in PAPER.items() if k != "cbam"}
VIT = dict(patch_size=4, d_model=32, n_heads=4, n_layers=2, pool="cls")  # lesson 7's ViT (the tab's is 64 wide)


def new_vit() -> TinyViT:
    torch.manual_seed(0)
    return TinyViT(ViTConfig(**VIT))


def new_cbam() -> CBAMNet:
    torch.manual_seed(0)
    return CBAMNet(4, **CBAM_OPTIONS)


def time_to_target(model, data, max_steps: int) -> dict:
    """Train in chunks, evaluating after each, until the test accuracy reaches TARGET or ``max_steps``."""
    trainer = Trainer(model, data, lr=LR, batch_size=BATCH_SIZE, seed=0)
    started = time.perf_counter()
    accuracy = trainer.evaluate()["accuracy"]
    while accuracy < TARGET and trainer.step < max_steps:
        trainer.run(CHUNK)
        accuracy = trainer.evaluate()["accuracy"]
    return {"steps": trainer.step, "train_seconds": trainer.elapsed, "wall_seconds": time.perf_counter() - started,
            "accuracy": accuracy, "reached": accuracy >= TARGET, "trainer": trainer}


def step_costs(data, blocks: int = 6, steps: int = 10) -> tuple[float, float]:
    """Median seconds per training step of the ViT and the CBAM net, measured in alternating blocks."""
    trainers = {"vit": Trainer(new_vit(), data, lr=LR), "cbam": Trainer(new_cbam(), data, lr=LR)}
    for trainer in trainers.values():
        trainer.run(3)  # warm-up
    times = {name: [] for name in trainers}
    for _ in range(blocks):
        for name, trainer in trainers.items():
            started = time.perf_counter()
            trainer.run(steps)
            times[name].append((time.perf_counter() - started) / steps)
    return statistics.median(times["vit"]), statistics.median(times["cbam"])


def localization_rows(vit, cbam, pixels, boxes) -> dict:
    """Localization of the ViT's CLS map and rollout, and of each CBAM stage's spatial map and its Grad-CAM."""
    rows = {f"vit_{key.replace(' ', '_').lower()}": value for key, value in probe_vit(vit, pixels, boxes).localization.items()}
    cnn = probe_maps(cbam, pixels, boxes).localization
    rows.update({f"cbam_{key.replace(' ', '_').replace('-', '_').lower()}": value for key, value in cnn.items()})
    return rows


def timed(run) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the whole process (the panel's redraws on this thread included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def panel_slowdown(rounds: int = 6, steps: int = 40) -> None:
    """The tab trains its three nets in turns on its own thread and redraws on this one (throttled), as in a kernel;
    the reference trains copies of the same nets in the same turns (``CHUNK`` steps each, then a test evaluation)."""
    from explorer.sessions.vision import VisionSession
    from explorer.widgets.vision import VisionPanel

    panel = VisionPanel(VisionSession())
    panel.wait()
    session = panel.session
    copies = {name: trainer_for(name, copy.deepcopy(t.model), session.data, LR) for name, t in session.trainers.items()}

    def headless() -> None:
        for _ in range(steps // CHUNK):
            for trainer in copies.values():
                trainer.run(CHUNK)
                trainer.evaluate()

    def with_panel() -> None:
        session.train(steps)
        panel.wait(600)

    alone, shown = [], []
    for i in range(rounds):  # ABBA order, so a busy neighbour or a warm cache favours neither
        order = ((headless, alone), (with_panel, shown))
        for run, times in order if i % 2 == 0 else order[::-1]:
            times.append(timed(run))
    nets = len(copies)
    for index, clock in ((0, "wall"), (1, "cpu")):
        a, b = statistics.median(t[index] for t in alone), statistics.median(t[index] for t in shown)
        print(f"vision_steps_per_{clock}_s_headless: {nets * steps / a:.1f}")
        print(f"vision_steps_per_{clock}_s_panel_attached: {nets * steps / b:.1f}")
        print(f"vision_panel_slowdown_{clock}: {100 * (b / a - 1):.1f}%  (goal <= 10%)")


def default_train(seeds=DATA_SEEDS) -> None:
    """The Train button with every setting at its default, on each data seed of the shapes data."""
    from explorer.sessions.vision import VisionSession

    for seed in seeds:
        session = VisionSession(data_seed=seed)
        started, cpu = time.perf_counter(), time.process_time()
        session.train()
        finished = session.wait(3600)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not finished or "Finished" not in session.status:
            raise RuntimeError(f"The default Train did not finish on data seed {seed}: {session.status}")
        for name, trainer in session.trainers.items():
            print(f"{name}_test_accuracy_seed{seed}: {trainer.evaluate()['accuracy']:.3f}")
        steps = session.trainers["vit"].step
        stepping = sum(trainer.elapsed for trainer in session.trainers.values())
        print(f"default_train_steps_seed{seed}: {steps}")
        print(f"default_train_wall_seconds_seed{seed}: {wall:.1f}")
        print(f"default_train_cpu_seconds_seed{seed}: {cpu:.1f}")  # near the wall seconds of a machine left to it
        print(f"default_train_wall_vs_training_steps_seed{seed}: {wall / stepping:.2f}")
        session.stop_work()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--panel-only", action="store_true", help="only the throughput with the panel live")
    parser.add_argument("--default-train-only", action="store_true", help="only the default Train on three data seeds")
    args = parser.parse_args()
    if args.panel_only:
        panel_slowdown()
        return
    print(f"threads: {torch.get_num_threads()}")
    default_train()
    if args.default_train_only:
        return
    print(f"vit_config: patch {VIT['patch_size']}, width {VIT['d_model']}, {VIT['n_layers']} layers, "
          f"{VIT['n_heads']} heads, {VIT['pool']}")
    data = make_shapes()

    vit = time_to_target(new_vit(), data, args.max_steps)
    print(f"vit_reached_95pct: {vit['reached']}")
    print(f"vit_steps_to_95pct: {vit['steps'] if vit['reached'] else 'not reached'}")
    print(f"vit_train_seconds_to_95pct: {vit['train_seconds']:.2f}" if vit["reached"] else
          f"vit_train_seconds_without_reaching_95pct: {vit['train_seconds']:.2f}")
    print(f"vit_wall_seconds_with_evaluation: {vit['wall_seconds']:.2f}")
    print(f"vit_final_test_accuracy: {vit['accuracy']:.3f}")

    cbam = time_to_target(new_cbam(), data, args.max_steps)
    print(f"cbam_steps_to_95pct: {cbam['steps'] if cbam['reached'] else 'not reached'}")
    print(f"cbam_train_seconds_to_95pct: {cbam['train_seconds']:.2f}")
    print(f"cbam_final_test_accuracy: {cbam['accuracy']:.3f}")

    vit_step, cbam_step = step_costs(data)
    print(f"vit_step_ms: {vit_step * 1000:.1f}")
    print(f"cbam_step_ms: {cbam_step * 1000:.1f}")
    print(f"vit_step_cost_ratio_vs_cbam: {vit_step / cbam_step:.2f}")

    rows = data["test"].with_format("torch")[:256]
    pixels, boxes = rows["pixel_values"], rows["bbox"]
    table = {"untrained": localization_rows(new_vit(), new_cbam(), pixels, boxes),
             "trained": localization_rows(vit["trainer"].model, cbam["trainer"].model, pixels, boxes)}
    for when, scores in table.items():
        for name, value in scores.items():
            print(f"localization_{name}_{when}: {value:.3f}")
    panel_slowdown()


if __name__ == "__main__":
    main()
