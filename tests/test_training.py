"""The shared Trainer: learning, seeding, stop and resume, the NaN guard, and bad input."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from datasets import Dataset, DatasetDict
from torch import nn

from explorer.data.sequences import make_task
from explorer.maps import AttentionMaps, pattern_score
from explorer.models.transformer import TinyTransformer, TinySeq2Seq, TransformerConfig
from explorer.lab import Lab
from explorer.training import Trainer



def reverse_model(seed=0, **options):
    torch.manual_seed(seed)
    return TinyTransformer(TransformerConfig(vocab_size=10, **options))


@pytest.fixture(scope="module")
def reverse_data():
    return make_task("reverse", n_train=4000, n_test=200, seed=0)


@pytest.fixture(scope="module")
def trained(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data, lr=1e-3)
    trainer.run(200)
    return trainer


def test_reverse_trains_above_95_percent_sequence_accuracy(trained):
    result = trained.evaluate()
    assert result["sequence_accuracy"] > 0.95
    assert result["token_accuracy"] > 0.98


def test_some_head_attends_to_the_mirrored_position(trained):
    maps = trained.snapshots[-1].maps
    n = len(maps.tokens)
    mirror = torch.eye(n, dtype=torch.bool).flip(1)
    assert pattern_score(maps, mirror).max() > 0.5
    first = trained.snapshots[0].maps
    assert pattern_score(first, mirror).max() < 0.3  # at step 0 no head knows about mirroring yet


def test_history_has_one_record_per_step_and_snapshots_every_few_steps(trained):
    assert [r.step for r in trained.history] == list(range(1, 201))
    assert set(trained.history[0].to_dict()) == {"step", "loss", "accuracy", "lr", "elapsed"}
    steps = [snapshot.step for snapshot in trained.snapshots]
    assert steps[:3] == [0, 10, 20] and steps[-1] == 200
    assert isinstance(trained.snapshots[-1].maps, AttentionMaps)
    assert trained.snapshots[-1].maps.weights.shape == (2, 4, 10, 10)
    assert trained.history[-1].loss < trained.history[0].loss / 5


def test_probe_snapshot_holds_prediction_and_target(trained, reverse_data):
    snapshot = trained.snapshots[-1]
    example = reverse_data["test"][0]
    assert list(snapshot.target) == [str(i) for i in example["labels"]]
    assert len(snapshot.prediction) == 10


def test_seeded_runs_repeat_exactly(reverse_data):
    first = Trainer(reverse_model(seed=3), reverse_data, seed=5)
    first.run(15)
    second = Trainer(reverse_model(seed=3), reverse_data, seed=5)
    second.run(15)
    assert [r.loss for r in first.history] == [r.loss for r in second.history]
    losses = [r.loss for r in first.history]
    first.reset()
    first.run(15)
    again = [r.loss for r in first.history]
    first.reset()
    first.run(15)
    assert [r.loss for r in first.history] == again
    assert again != losses  # reset draws weights from the trainer's seed, not the model's original ones


def test_stop_then_start_continues_the_same_history(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data)
    lab = Lab({"reverse": trainer}, chunk=1, evaluate=False)
    lab.start(100_000)
    assert lab.home.wait_until(lambda: trainer.step >= 5, 30)
    assert lab.stop()
    assert lab.home.wait_until(lambda: not lab.running and lab.view.status == "stopped", 10)
    assert "Stopped at step" in lab.view.message
    assert lab.stop() is False  # pressing Stop twice is harmless
    n = trainer.step
    assert 5 <= n < 100_000
    lab.start(7)
    assert lab.home.wait_until(lambda: lab.view.status == "finished", 30)
    assert [r.step for r in trainer.history] == list(range(1, n + 8))


def test_training_twice_is_refused_and_loses_nothing(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data)
    lab = Lab({"reverse": trainer}, chunk=1, evaluate=False)
    lab.start(100_000)
    try:
        with pytest.raises(ValueError, match="already running"):
            lab.start(10)
        with pytest.raises(ValueError, match="(?i)stop"):
            trainer.run(10)
        with pytest.raises(ValueError, match="(?i)stop"):
            trainer.reset()
    finally:
        lab.stop(10)
    steps = [r.step for r in trainer.history]
    assert steps == list(range(1, len(steps) + 1))


class NanAt(nn.Module):
    """A wrapper whose loss becomes NaN at one chosen forward pass."""

    def __init__(self, model, bad_call):
        super().__init__()
        self.model, self.bad_call, self.calls = model, bad_call, 0

    def forward(self, input_ids):
        self.calls += self.training
        out = self.model(input_ids)
        if self.training and self.calls == self.bad_call:
            return out * float("nan")
        return out


def test_nan_guard_restores_weights_and_optimiser_and_pauses(reverse_data):
    model = NanAt(reverse_model(), bad_call=6)
    trainer = Trainer(model, reverse_data, snapshot_every=100)
    trainer.run(5)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in trainer.optimizer.state.values()]
    trainer.run(10)
    assert trainer.step == 5 and len(trainer.history) == 5
    assert trainer.paused and "NaN" in trainer.message and "step 5" in trainer.message
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert all(torch.equal(a["exp_avg"], b) for a, b in zip(trainer.optimizer.state.values(), moments))
    trainer.run(3)  # continues from the kept weights
    assert trainer.step == 8


def test_a_diverging_learning_rate_never_leaves_non_finite_weights(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data, lr=1e30)
    trainer.run(200)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(all(torch.isfinite(v).all() for v in s.values()) for s in trainer.optimizer.state.values())


@pytest.mark.parametrize("options, match", [
    (dict(lr=0), "learning rate"), (dict(lr=float("nan")), "learning rate"), (dict(batch_size=0), "batch size"),
    (dict(batch_size=2.5), "batch size"), (dict(snapshot_every=0), "snapshot"),
])
def test_bad_settings_are_refused(reverse_data, options, match):
    with pytest.raises(ValueError, match=match):
        Trainer(reverse_model(), reverse_data, **options)


def test_zero_steps_and_bad_data_are_refused(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data)
    lab = Lab({"reverse": trainer}, evaluate=False)
    for steps in (0, -3, 1.5):
        with pytest.raises(ValueError, match="steps"):
            trainer.run(steps)
        with pytest.raises(ValueError, match="steps"):
            lab.start(steps)
    assert trainer.history == [] and not trainer.running and not lab.running
    with pytest.raises(ValueError, match="train"):
        Trainer(reverse_model(), {"train": reverse_data["train"]})
    with pytest.raises(ValueError, match="columns"):
        Trainer(reverse_model(), DatasetDict({"train": Dataset.from_dict({"x": [1]}), "test": Dataset.from_dict({"x": [1]})}))
    empty = DatasetDict({"train": reverse_data["train"].select([]), "test": reverse_data["test"]})
    with pytest.raises(ValueError, match="empty"):
        Trainer(reverse_model(), empty)


def test_classification_with_every_pooling_learns_majority():
    data = make_task("majority", n_train=2000, n_test=200, length=8, vocab_size=4, seed=1)
    for pooling in ("cls", "mean", "max", "attention"):
        torch.manual_seed(0)
        model = TinyTransformer(TransformerConfig(vocab_size=4, pooling=pooling, n_classes=4, d_model=32, n_layers=1))
        trainer = Trainer(model, data, lr=3e-3)
        trainer.run(150)
        assert trainer.evaluate()["accuracy"] > 0.6, pooling
        snapshot = trainer.snapshots[-1]
        assert snapshot.target in "0123" and snapshot.prediction in "0123"
        assert (snapshot.pooling is not None) == (pooling == "attention")


class TinyImageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = {}
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))

    def forward(self, pixel_values):
        return self.net(pixel_values)


def test_image_batches_train_a_classifier_with_a_custom_probe():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (300,), generator=generator)
    images = torch.rand(300, 1, 6, 6, generator=generator) * 0.2
    images[labels == 1, :, :3] += 1.0  # class 1: the top half is bright
    split = lambda s: Dataset.from_dict({"pixel_values": images[s].tolist(), "label": labels[s].tolist()})  # noqa: E731
    data = DatasetDict({"train": split(slice(0, 250)), "test": split(slice(250, 300))})
    calls = []
    trainer = Trainer(TinyImageNet(), data, lr=1e-2, batch_size=32, probe=lambda model: calls.append(1) or "record",
                      snapshot_every=20)
    trainer.run(60)
    assert trainer.evaluate()["accuracy"] > 0.9
    assert [snapshot.step for snapshot in trainer.snapshots] == [0, 20, 40, 60] and len(calls) == 4


def test_the_encoder_decoder_trains_and_shows_cross_attention(reverse_data):
    torch.manual_seed(0)
    model = TinySeq2Seq(TransformerConfig(vocab_size=10, d_model=32, n_layers=1))
    trainer = Trainer(model, reverse_data, lr=3e-3, snapshot_every=125)
    trainer.run(250)
    assert trainer.evaluate()["token_accuracy"] > 0.9  # greedy decoding, not teacher forcing
    maps = trainer.snapshots[-1].maps
    assert maps.weights.shape == (1, 4, 10, 10) and maps.key_tokens is not None


def test_a_token_model_without_attention_output_trains_without_snapshots(reverse_data):
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = nn.Embedding(10, 16), nn.Linear(16, 10)

        def forward(self, input_ids):
            return self.head(self.embed(input_ids))

    trainer = Trainer(Plain(), reverse_data)
    trainer.run(3)
    assert trainer.step == 3 and trainer.snapshots == [] and "token_accuracy" in trainer.evaluate()


def test_a_stop_event_ends_training_at_a_step_boundary(reverse_data):
    trainer, stop = Trainer(reverse_model(), reverse_data), threading.Event()
    stop.set()
    assert trainer.train(1000, stop) == [] and trainer.step == 0 and "Stopped at step 0" in trainer.message
    stop.clear()
    assert [r.step for r in trainer.train(3, stop)] == [1, 2, 3] and not trainer.paused


def test_a_diverging_step_is_undone_and_training_resumes_at_a_sane_rate(trained):
    before = trained.evaluate()["sequence_accuracy"]
    steps = trained.step
    trained.lr = 1e9
    trained.run(20)
    assert "paused" in trained.message and trained.step == steps
    assert trained.evaluate()["sequence_accuracy"] == before  # the wrecking step was undone
    trained.lr = 1e-3
    trained.run(20)
    assert trained.step == steps + 20 and "Finished" in trained.message
    assert trained.evaluate()["sequence_accuracy"] > 0.9


def test_weights_wrecked_by_a_step_with_a_finite_update_are_brought_back(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data, lr=1e-3, snapshot_every=100)
    trainer.run(30)
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with torch.no_grad():  # as if step 30 had left finite but useless weights: the next loss explodes
        for p in trainer.model.parameters():
            p.mul_(1e4)
    trainer.run(5)
    assert "brought back" in trainer.message and trainer.step == 29 and len(trainer.history) == 29
    assert trainer.guard.previous is None
    trainer.run(5)
    assert trainer.step == 34 and trainer.history[-1].loss < 3 * trainer.history[28].loss + 0.5
    assert good.keys() == trainer.model.state_dict().keys()


def test_a_planned_run_warms_up_then_follows_a_cosine_to_zero_and_then_the_rate_is_back(reverse_data):
    trainer = Trainer(reverse_model(), reverse_data, lr=2e-3)
    trainer.decay_over(60)
    trainer.run(60)
    warm = 20  # WARMUP_STEPS: the cosine starts at the chosen rate after them
    expected = [2e-3 * (k + 1) / warm for k in range(warm)]
    expected += [2e-3 * 0.5 * (1 + math.cos(math.pi * k / 40)) for k in range(40)]  # the closed form of SGDR's decay
    assert [row.lr for row in trainer.history] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    trainer.run(2)
    assert [row.lr for row in trainer.history[-2:]] == [2e-3, 2e-3]
    trainer.lr = 1e-3  # a new plan starts from the rate chosen now
    trainer.decay_over(2)
    trainer.run(2)
    assert [row.lr for row in trainer.history[-2:]] == pytest.approx([1e-3, 1e-3])
    with pytest.raises(ValueError, match="steps"):
        trainer.decay_over(0)


def test_augmented_batches_are_drawn_from_the_trainers_seed():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (100,), generator=generator)
    images = torch.rand(100, 1, 6, 6, generator=generator)
    split = Dataset.from_dict({"pixel_values": images.tolist(), "label": labels.tolist()})
    data = DatasetDict({"train": split, "test": split})
    seen = []

    def augment(pixels, draws):
        seen.append(pixels)
        return pixels + torch.rand(pixels.shape, generator=draws)

    def losses(seed):
        torch.manual_seed(0)
        trainer = Trainer(TinyImageNet(), data, batch_size=8, seed=seed, augment=augment)
        trainer.run(5)
        return [row.loss for row in trainer.history]

    first = losses(1)
    assert len(seen) == 5 and first == losses(1) and first != losses(2)
