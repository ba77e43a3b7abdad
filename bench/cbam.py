"""CBAM lab benchmark: time to 95% test accuracy, step cost against the plain baseline, localization table.

    .venv/bin/python bench/cbam.py [--max-steps 600]

Prints ``name: value`` lines. The step cost is a ratio against the plain CNN measured in the same process,
in alternating blocks so both see the same machine load. Localization is (map mass in the object's box /
box area share), 1.0 meaning no better than a uniform map; it is a finding to show, not a number to tune.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from explorer.data.images import make_shapes
from explorer.models.cbam import CBAMNet, grad_cam, localization, probe_maps
from explorer.training import Trainer
from explorer.models.cbam import PAPER
from explorer.sessions.vision_nets import BATCH_SIZE, CHUNK

LR = 0.003  # the CBAM tab's default learning rate
TARGET = 0.95
CBAM_OPTIONS = {k: v for k, v in PAPER.items() if k != "cbam"}


def time_to_target(data, max_steps: int) -> dict:
    """Train the default CBAM net in chunks, evaluating after each, until the test accuracy reaches TARGET."""
    torch.manual_seed(0)
    trainer = Trainer(CBAMNet(4, **CBAM_OPTIONS), data, lr=LR, batch_size=BATCH_SIZE, seed=0)
    started = time.perf_counter()
    accuracy = trainer.evaluate()["accuracy"]
    while accuracy < TARGET and trainer.step < max_steps:
        trainer.run(CHUNK)
        accuracy = trainer.evaluate()["accuracy"]
    return {"steps": trainer.step, "train_seconds": trainer.elapsed, "wall_seconds": time.perf_counter() - started,
            "accuracy": accuracy, "trainer": trainer}


def step_costs(data, blocks: int = 6, steps: int = 10) -> tuple[float, float]:
    """Median seconds per training step of the CBAM net and the plain net, measured in alternating blocks."""
    trainers = {}
    for name, use_cbam in (("cbam", True), ("plain", False)):
        torch.manual_seed(0)
        trainers[name] = Trainer(CBAMNet(4, cbam=use_cbam, **(CBAM_OPTIONS if use_cbam else {})), data, lr=LR)
        trainers[name].run(3)  # warm-up
    times = {name: [] for name in trainers}
    for _ in range(blocks):
        for name, trainer in trainers.items():
            started = time.perf_counter()
            trainer.run(steps)
            times[name].append((time.perf_counter() - started) / steps)
    return statistics.median(times["cbam"]), statistics.median(times["plain"])


def localization_rows(model, plain, pixels, boxes) -> dict:
    """Localization of each stage's spatial map and of Grad-CAM (CBAM net and plain net)."""
    record = probe_maps(model, pixels, boxes)
    rows = {key.replace(" ", "_").replace("-", "_").lower(): value for key, value in record.localization.items()}
    rows["grad_cam_plain"] = localization(grad_cam(plain, pixels), boxes)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=600)
    args = parser.parse_args()
    print(f"threads: {torch.get_num_threads()}")
    data = make_shapes()

    reached = time_to_target(data, args.max_steps)
    print(f"steps_to_95pct: {reached['steps']}")
    print(f"train_seconds_to_95pct: {reached['train_seconds']:.2f}")
    print(f"wall_seconds_to_95pct_with_evaluation: {reached['wall_seconds']:.2f}")
    print(f"final_test_accuracy: {reached['accuracy']:.3f}")

    cbam_step, plain_step = step_costs(data)
    print(f"cbam_step_ms: {cbam_step * 1000:.1f}")
    print(f"plain_step_ms: {plain_step * 1000:.1f}")
    print(f"cbam_step_cost_ratio: {cbam_step / plain_step:.2f}")

    rows = data["test"].with_format("torch")[:256]
    pixels, boxes = rows["pixel_values"], rows["bbox"]
    torch.manual_seed(0)
    untrained, untrained_plain = CBAMNet(4, **CBAM_OPTIONS), CBAMNet(4, cbam=False)
    torch.manual_seed(0)
    plain = Trainer(CBAMNet(4, cbam=False), data, lr=LR, batch_size=BATCH_SIZE, seed=0)
    plain.run(reached["steps"])
    table = {"untrained": localization_rows(untrained, untrained_plain, pixels, boxes),
             "trained": localization_rows(reached["trainer"].model, plain.model, pixels, boxes)}
    for when, scores in table.items():
        for name, value in scores.items():
            print(f"localization_{name}_{when}: {value:.3f}")


if __name__ == "__main__":
    main()
