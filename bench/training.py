"""Training speed of the Transformer lab, as ratios against references measured in the same run.

    python bench/training.py

Prints ``name: value`` lines:
- steps per second of TinyTransformer (which also returns its attention weights) against an equal-sized
  model built from ``torch.nn.TransformerEncoder``, both in the same plain training loop (goal >= 1.0x);
- the slowdown of training with the live panel attached (throttled redraws of curves and heatmaps)
  against headless training (goal <= 10%); without a browser the widget messages go nowhere, so this
  measures the panel's Python work, which is what competes with training for the CPU;
- the seconds the Trainer takes to reach 99% sequence accuracy on reverse (length 10, vocabulary 10,
  2 layers, 4 heads, width 64), evaluation included (goal <= 5 s on 2 cores).
Wall-clock figures suffer when other programs share the cores; the CPU-time figures beside them do not.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.data.sequences import make_task  # noqa: E402
from explorer.models.transformer import TinyTransformer, TransformerConfig  # noqa: E402
from explorer.training import Trainer, one_thread  # noqa: E402

BATCH, LENGTH, VOCAB, WIDTH, HEADS, LAYERS = 64, 10, 10, 64, 4, 2


class TorchEncoder(nn.Module):
    """The reference: the same sizes (pre-norm, GELU, width 64, 4 heads, 2 layers) from torch's own modules."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Embedding(64, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, 4 * WIDTH, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, input_ids):
        x = self.embed(input_ids) + self.position.weight[: input_ids.shape[1]]
        return self.head(self.norm(self.encoder(x)))


def steps_per_second(model: nn.Module, batches, steps: int = 60) -> tuple[float, float]:
    """A plain loop: forward, cross-entropy, backward, AdamW step; steps per wall second and per CPU second."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for i in range(steps + 10):
        if i == 10:
            wall, cpu = time.perf_counter(), time.thread_time()
        inputs, labels = batches[i % len(batches)]
        loss = nn.functional.cross_entropy(model(inputs).flatten(0, 1), labels.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - wall), steps / (time.thread_time() - cpu)


def throughput(rounds: int = 7) -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [(x, x.flip(1)) for x in torch.randint(0, VOCAB, (8, BATCH, LENGTH), generator=generator)]
    torch.manual_seed(0)
    ours = TinyTransformer(TransformerConfig(vocab_size=VOCAB, d_model=WIDTH, n_heads=HEADS, n_layers=LAYERS))
    reference = TorchEncoder()
    rates = {"ours": [], "reference": []}
    with one_thread():  # one intra-op thread: all the work is in this thread, so its CPU time is the cost
        for _ in range(rounds):  # interleaved, so a busy neighbour slows both alike
            rates["ours"].append(steps_per_second(ours, batches))
            rates["reference"].append(steps_per_second(reference, batches))
    print(f"parameters_tiny_transformer: {sum(p.numel() for p in ours.parameters())}")
    print(f"parameters_torch_encoder: {sum(p.numel() for p in reference.parameters())}")
    for index, clock in ((0, "wall"), (1, "cpu")):
        ratios = [a[index] / b[index] for a, b in zip(rates["ours"], rates["reference"])]
        print(f"steps_per_{clock}_s_tiny_transformer: {statistics.median(r[index] for r in rates['ours']):.1f}")
        print(f"steps_per_{clock}_s_torch_encoder: {statistics.median(r[index] for r in rates['reference']):.1f}")
        print(f"throughput_ratio_{clock}_vs_torch_encoder: {statistics.median(ratios):.3f}  (goal >= 1.0)")


def timed(run) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the whole process (the panel's redraws on this thread included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def panel_slowdown(rounds: int = 8, steps: int = 100) -> None:
    """The tab trains on its own thread and redraws on this one (throttled), as in a kernel."""
    import copy

    from explorer.widgets.transformer_lab import TransformerLabPanel

    panel = TransformerLabPanel()
    panel.wait()
    attached = panel.runs[0].trainer
    headless = Trainer(copy.deepcopy(attached.model), attached.data, lr=attached.lr,
                       batch_size=attached.batch_size, seed=0)

    def with_panel() -> None:
        panel.session.train(steps)
        panel.wait(600)

    headless_times, attached_times = [], []
    for i in range(rounds):  # ABBA order, so a busy neighbour or a warm cache favours neither
        order = ((lambda: headless.run(steps), headless_times), (with_panel, attached_times))
        for run, times in order if i % 2 == 0 else order[::-1]:
            times.append(timed(run))
    for index, clock in ((0, "wall"), (1, "cpu")):
        alone = statistics.median(t[index] for t in headless_times)
        shown = statistics.median(t[index] for t in attached_times)
        print(f"{clock}_seconds_{steps}_steps_headless: {alone:.3f}")
        print(f"{clock}_seconds_{steps}_steps_panel_attached: {shown:.3f}")
        print(f"panel_slowdown_{clock}: {100 * (shown / alone - 1):.1f}%  (goal <= 10%)")


def time_to_reverse(lr: float = 1e-3, check_every: int = 25, max_steps: int = 2000) -> None:
    data = make_task("reverse", length=LENGTH, vocab_size=VOCAB, seed=0)
    torch.manual_seed(0)
    model = TinyTransformer(TransformerConfig(vocab_size=VOCAB, d_model=WIDTH, n_heads=HEADS, n_layers=LAYERS))
    trainer = Trainer(model, data, lr=lr, batch_size=BATCH, seed=0)
    started, cpu = time.perf_counter(), time.process_time()
    result = trainer.evaluate()
    while result["sequence_accuracy"] < 0.99 and trainer.step < max_steps:
        trainer.run(check_every)
        result = trainer.evaluate()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    print(f"reverse_steps_to_99: {trainer.step}")
    print(f"reverse_sequence_accuracy: {result['sequence_accuracy']:.3f}")
    print(f"reverse_seconds_to_99: {seconds:.2f}  (goal <= 5 s)")
    print(f"reverse_cpu_seconds_to_99: {cpu_seconds:.2f}  (the same, counting only this process's CPU time)")


if __name__ == "__main__":
    throughput()
    panel_slowdown()
    time_to_reverse()
