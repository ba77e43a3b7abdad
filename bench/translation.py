"""The date translator of the Transformer lab: how fast it learns, how well it aligns, and its speed against torch.

    python bench/translation.py

Prints ``name: value`` lines:
- the seconds and steps the lab's date model (encoder-decoder, 2 + 2 layers, 4 heads, width 64, lr 3e-3, batch 64)
  takes to reach 95% exact match on 500 test dates, the evaluations every 50 steps included (goal <= 60 s on
  2 cores), and its training seconds alone. Exact match is measured with teacher forcing (one pass), which equals
  greedy decoding's: greedy writes a target exactly when each next character, after the right ones, is the most
  likely; the greedy figure at the end checks it;
- the alignment score of its best cross-attention head at that point (goal >= 0.6);
- steps per second of TinySeq2Seq (which also hands out its attention weights) against an equal-sized model built
  from ``torch.nn.Transformer``, same batches and padding masks, same plain loop (throughput ratio, goal >= 0.9).
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

from explorer.alignment import best_head  # noqa: E402
from explorer.data.sequences import make_task, vocabulary  # noqa: E402
from explorer.data.translation import PAD  # noqa: E402
from explorer.models.transformer import TinySeq2Seq, TransformerConfig, sinusoidal_positions  # noqa: E402
from explorer.training import Trainer, one_thread  # noqa: E402

WIDTH, HEADS, LAYERS, BATCH, LR, GOAL = 64, 4, 2, 64, 3e-3, 0.95


class TorchSeq2Seq(nn.Module):
    """The reference: ``nn.Transformer`` with the same sizes (pre-norm, GELU, 2 + 2 layers), embeddings and head."""

    def __init__(self, vocab_size: int, pad_id: int):
        super().__init__()
        self.pad_id, self.bos_id = pad_id, vocab_size
        self.source_embed = nn.Embedding(vocab_size, WIDTH)
        self.target_embed = nn.Embedding(vocab_size + 1, WIDTH)
        self.register_buffer("table", sinusoidal_positions(64, WIDTH), persistent=False)
        self.transformer = nn.Transformer(WIDTH, HEADS, LAYERS, LAYERS, 4 * WIDTH, dropout=0.0, activation="gelu",
                                          batch_first=True, norm_first=True)
        self.head = nn.Linear(WIDTH, vocab_size)

    def forward(self, input_ids, decoder_input_ids):
        scale = WIDTH ** 0.5
        source = self.source_embed(input_ids) * scale + self.table[: input_ids.shape[1]]
        target = self.target_embed(decoder_input_ids) * scale + self.table[: decoder_input_ids.shape[1]]
        padding = input_ids == self.pad_id
        causal = nn.Transformer.generate_square_subsequent_mask(target.shape[1])
        out = self.transformer(source, target, tgt_mask=causal, src_key_padding_mask=padding,
                               memory_key_padding_mask=padding)
        return self.head(out)


def shifted(labels: torch.Tensor, bos_id: int) -> torch.Tensor:
    inputs = labels.clamp_min(0).roll(1, dims=1)
    inputs[:, 0] = bos_id
    return inputs


def steps_per_second(model: nn.Module, batches, steps: int = 50) -> tuple[float, float]:
    """A plain loop: forward, cross-entropy, backward, AdamW step; steps per wall second and per CPU second."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for i in range(steps + 10):
        if i == 10:
            wall, cpu = time.perf_counter(), time.thread_time()
        inputs, labels = batches[i % len(batches)]
        logits = model(inputs, shifted(labels, model.bos_id))
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - wall), steps / (time.thread_time() - cpu)


def config(vocab: list[str]) -> TransformerConfig:
    return TransformerConfig(vocab_size=len(vocab), d_model=WIDTH, n_heads=HEADS, n_layers=LAYERS,
                             pad_id=vocab.index(PAD))


def throughput(data, rounds: int = 5) -> None:
    vocab = vocabulary(data)
    split = data["train"].with_format("torch", columns=["input_ids", "labels"])[: 8 * BATCH]
    batches = [(split["input_ids"][i: i + BATCH], split["labels"][i: i + BATCH]) for i in range(0, 8 * BATCH, BATCH)]
    torch.manual_seed(0)
    ours, reference = TinySeq2Seq(config(vocab)), TorchSeq2Seq(len(vocab), vocab.index(PAD))
    rates = {"ours": [], "reference": []}
    with one_thread():  # one intra-op thread, as the lab trains small models
        for _ in range(rounds):  # interleaved, so a busy neighbour slows both alike
            rates["ours"].append(steps_per_second(ours, batches))
            rates["reference"].append(steps_per_second(reference, batches))
    print(f"parameters_tiny_seq2seq: {sum(p.numel() for p in ours.parameters())}")
    print(f"parameters_torch_transformer: {sum(p.numel() for p in reference.parameters())}")
    for index, clock in ((0, "wall"), (1, "cpu")):
        ratios = [a[index] / b[index] for a, b in zip(rates["ours"], rates["reference"])]
        print(f"steps_per_{clock}_s_tiny_seq2seq: {statistics.median(r[index] for r in rates['ours']):.1f}")
        print(f"steps_per_{clock}_s_torch_transformer: {statistics.median(r[index] for r in rates['reference']):.1f}")
        print(f"throughput_ratio_{clock}_vs_torch_transformer: {statistics.median(ratios):.3f}  (goal >= 0.9)")


@torch.no_grad()
def exact_match(trainer: Trainer) -> float:
    """Share of the test targets that teacher-forced argmax gets entirely right (= greedy decoding's)."""
    model, inputs, labels = trainer.model.eval(), trainer.test_inputs, trainer.test_labels
    with one_thread():
        predicted = model(inputs, model.decoder_inputs(labels)).argmax(dim=-1)
    return float(((predicted == labels) | (labels == -100)).all(dim=1).float().mean())


def time_to_goal(data, every: int = 50, max_steps: int = 4000) -> None:
    torch.manual_seed(0)
    trainer = Trainer(TinySeq2Seq(config(vocabulary(data))), data, lr=LR, batch_size=BATCH, snapshot_every=10**9)
    exact, started = 0.0, time.perf_counter()
    while exact < GOAL and trainer.step < max_steps:
        trainer.run(every)
        exact = exact_match(trainer)
    seconds = time.perf_counter() - started
    trainer.take_snapshot()
    scores = torch.tensor(trainer.snapshots[-1].alignment)
    layer, head = best_head(scores)
    reached = "" if exact >= GOAL else f"  (not reached in {max_steps} steps)"
    print(f"exact_match_reached: {exact:.3f}{reached}")
    print(f"exact_match_greedy_check: {trainer.evaluate()['sequence_accuracy']:.3f}")
    print(f"steps_to_95_exact: {trainer.step}")
    print(f"seconds_to_95_exact: {seconds:.1f}  (goal <= 60)")
    print(f"training_seconds_to_95_exact: {trainer.elapsed:.1f}")
    print(f"alignment_best_head: {scores[layer, head]:.3f}  (goal >= 0.6; layer {layer}, head {head})")
    print(f"alignment_mean_over_heads: {scores.mean():.3f}")


if __name__ == "__main__":
    dates = make_task("dates", n_train=8000, n_test=500, seed=0)
    print(f"cpu_threads: {torch.get_num_threads()}")
    throughput(dates)
    time_to_goal(dates)
