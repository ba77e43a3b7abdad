"""The Lab: trainers trained in turns on one worker, the frozen record it publishes, stop, pause, save and load."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from explorer.data.sequences import make_task
from explorer.lab import Lab, LabView
from explorer.models.transformer import TinyTransformer, TransformerConfig
from explorer.threads import stop_all_workers
from explorer.training import Trainer
from tests.test_training import NanAt


def model(seed=0, heads=4):
    torch.manual_seed(seed)
    return TinyTransformer(TransformerConfig(vocab_size=10, d_model=32, n_heads=heads, n_layers=1))


@pytest.fixture(scope="module")
def data():
    return make_task("reverse", n_train=1000, n_test=100, seed=0)


def test_turns_give_each_trainer_what_it_would_learn_alone(data):
    lab = Lab({"a": Trainer(model(), data, seed=1), "b": Trainer(model(), data, seed=1)}, chunk=4)
    alone = Trainer(model(), data, seed=1)
    alone.run(12)
    assert lab.run(12) == "Finished 12 steps."
    a, b = lab.trainers["a"], lab.trainers["b"]
    assert [r.loss for r in a.history] == [r.loss for r in b.history] == [r.loss for r in alone.history]
    assert torch.equal(a.model.head.weight, alone.model.head.weight)
    assert [step for step, _ in lab.view.run("a").evaluations] == [0, 4, 8, 12]  # before, then after each round
    assert lab.view.run("a").accuracy == alone.evaluate()["sequence_accuracy"]


def test_the_record_is_frozen_and_told_on_the_home_thread(data):
    lab = Lab({"a": Trainer(model(), data)}, chunk=1, evaluate=False, interval=0.2)
    seen, ended = [], []
    lab.listen(lambda view: seen.append((view, threading.current_thread())),
               lambda view: ended.append((view, threading.current_thread())))
    lab.start(60)
    assert lab.home.wait_until(lambda: ended, 120)
    views = [view for view, _ in seen]
    assert all(thread is threading.current_thread() for _, thread in seen + ended)
    assert 1 <= len(views) < 60  # throttled: far fewer records than steps
    assert ended[0][0].status == "finished" and ended[0][0] is lab.view and lab.view.run("a").step == 60
    assert [r.step for r in lab.view.runs[0].history] == list(range(1, 61))
    assert lab.view.runs[0].snapshot.step == 60 and isinstance(lab.view, LabView)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lab.view.status = "ready"
    assert views[0].runs[0].history is not lab.view.runs[0].history  # each record keeps its own moment


def test_a_pause_of_one_trainer_ends_the_run_and_says_which(data):
    lab = Lab({"good": Trainer(model(), data), "bad": Trainer(NanAt(model(), bad_call=7), data)}, chunk=4, evaluate=False)
    lab.run(20)
    assert lab.view.status == "paused" and lab.view.message.startswith("bad: The loss became NaN")
    assert lab.trainers["bad"].step == 6 and lab.trainers["good"].step == 8  # the round ended where it paused


def test_a_closed_page_stops_the_lab(data):
    trainer = Trainer(model(), data)
    lab = Lab({"a": trainer}, chunk=1, evaluate=False)
    lab.start(100_000)
    assert lab.home.wait_until(lambda: trainer.step > 2, 30)
    assert stop_all_workers() >= 1  # what the app does when the page is gone
    assert lab.home.wait_until(lambda: lab.view.status == "stopped" and not lab.running, 30)
    assert trainer.step < 100_000


def test_save_and_load_continue_every_history(data, tmp_path):
    lab = Lab({"a": Trainer(model(), data), "b": Trainer(model(heads=2), data)}, chunk=3)
    lab.run(6)
    paths = lab.save({"a": tmp_path / "a.safetensors", "b": tmp_path / "b.safetensors"})
    trainers = Lab.load_trainers(dict(zip("ab", paths)), lambda name, m: Trainer(m, data))
    for name, trainer in trainers.items():
        assert trainer.step == 6 and trainer.history == lab.trainers[name].history
        assert torch.equal(trainer.model.head.weight, lab.trainers[name].model.head.weight)
        assert trainer.snapshots[-1].step == 6
    made = []

    def refuse_b(name, m):
        if name == "b":
            raise ValueError("not this one")

    with pytest.raises(ValueError, match="not this one"):
        Lab.load_trainers(dict(zip("ab", paths)), lambda name, m: made.append(name), refuse_b)
    assert made == []  # every file is checked before any trainer is built


def test_saving_or_resetting_while_training_is_refused(data, tmp_path):
    trainer = Trainer(model(), data)
    lab = Lab({"a": trainer}, chunk=1, evaluate=False)
    lab.start(100_000)
    try:
        for action in (lambda: lab.save({"a": tmp_path / "a.safetensors"}), lab.reset):
            with pytest.raises(ValueError, match="press Stop"):
                action()
    finally:
        lab.stop(10)
    lab.home.wait_until(lambda: not lab.running, 10)
    lab.reset()
    assert trainer.step == 0 and lab.view.run("a").history == () and not (tmp_path / "a.safetensors").exists()
