"""Hostile arguments for every public function of the README: each call works (its result has the documented type,
shape and range) or is refused with a sentence that names the argument, and a refused call changes no model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from PIL import Image as PILImage
from hypothesis import strategies as st

from explorer import checkpoints, heads, links
from explorer.attention import MultiHeadAttention, attend, causal_mask, make_scorer, masked_softmax, valid_head_counts
from explorer.data.images import load_digits, load_image_folder, make_shapes
from explorer.data.sequences import load_text_task, make_task
from explorer.data.translation import load_pairs_task
from explorer.maps import AttentionMaps, entropy, pattern_score, rollout
from explorer.models.cbam import CBAM, CBAMNet, cbam_maps, grad_cam, localization
from explorer.models.transformer import TinySeq2Seq, TinyTransformer, TransformerConfig
from explorer.models.vit import TinyViT, ViTConfig, attention_maps, patch_maps, vit_maps
from explorer.lab import Lab
from explorer.training import Trainer
from tests.fuzzing import FUZZ, HOSTILE, finite, words

Q, K, V = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
MAPS = AttentionMaps(tokens=list("abc"), weights=torch.softmax(torch.randn(2, 2, 3, 3), -1))
DATA = make_task("reverse", n_train=32, n_test=8, length=6, vocab_size=5, seed=0)
X32, X16 = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 16, 16)
BOXES = torch.tensor([[0, 0, 4, 4], [2, 2, 8, 8]])


def tiny_transformer():
    torch.manual_seed(0)
    return TinyTransformer(TransformerConfig(vocab_size=5, d_model=8, n_heads=2, n_layers=1, max_len=16))


CNN = CBAMNet(4, width=8, ratio=4)
VIT = TinyViT(ViTConfig(image_size=16, patch_size=4, d_model=16, n_heads=2, n_layers=1))


@dataclass
class Case:
    """One public function: ``call(**arguments)``, valid ``arguments``, extra valid values to draw, the words a refusal
    of each argument may name it by, and a check of what a call returns."""

    call: Callable
    arguments: dict
    good: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    check: Callable = lambda result, arguments: None
    model: Callable | None = None  # the model whose weights a refused call must leave alone
    folder: object = None  # hostile names of files are made inside this folder, never elsewhere on the machine


def expect(test):
    def check(result, arguments):
        assert test(result), result
    return check


def shaped(*shape):
    def check(result, arguments):
        assert torch.is_tensor(result) and tuple(result.shape) == shape and finite(result), result
    return check


def attended(result, arguments):
    context, weights = result
    assert context.shape == (3, 2) and weights.shape == (3, 5) and finite(context) and finite(weights)
    assert torch.all((weights >= 0) & (weights <= 1))


def built(kind):
    def check(result, arguments):
        assert isinstance(result, kind), result
    return check


def divisors(result, arguments):
    width = int(arguments["d_model"])
    assert result == [h for h in range(1, width + 1) if width % h == 0], result


def probabilities(result, arguments):
    assert torch.is_tensor(result) and result.shape == arguments["scores"].shape and finite(result)
    assert torch.all((result >= 0) & (result <= 1))


def dataset(result, arguments):
    assert set(result) == {"train", "test"} and len(result["train"]) >= 1 and len(result["test"]) >= 1


def trainer_run(steps):
    trainer = Trainer(TRAINED, DATA, batch_size=4)
    return trainer.run(steps)


def a_lab(**options) -> Lab:
    return Lab({"4 heads": Trainer(TRAINED, DATA, batch_size=4)}, **options)


def lab_start(steps):
    """A lab started with ``steps`` in the background, then stopped: nothing keeps training after the call."""
    lab = a_lab()
    try:
        lab.start(steps)
    finally:
        lab.stop(5.0)
        lab.join(30.0)
    return lab.view


def lab_waits(timeout):
    """``stop`` and ``join`` with ``timeout`` on an idle lab."""
    lab = a_lab()
    lab.stop(timeout)
    lab.join(timeout)
    return lab.view


TRAINED = tiny_transformer()
Trainer(TRAINED, DATA, batch_size=4).run(1)  # the first trainer imports datasets' torch formatting: seconds, once
TRANSFORMER = dict(vocab_size=10, d_model=16, n_heads=2, n_layers=1, d_ff=None, max_len=16, dropout=0.0, causal=False,
                   pooling=None, n_classes=None, positional="learned", norm="pre", cross_score="scaled_dot", pad_id=None)
TRANSFORMER_NAMES = dict(d_model=["width"], n_heads=["heads"], n_layers=["layers"], vocab_size=["vocabulary"],
                         max_len=["longest sequence"], cross_score=["score"], pad_id=["padding"], d_ff=["feed-forward"])
CASES = {
    "attend": Case(attend, dict(query=Q, key=K, value=V, score="scaled_dot", temperature=1.0, mask=None),
                   good=dict(score=["dot", "additive"], temperature=[0.5, np.float32(2), torch.tensor(3.0)]),
                   names=dict(query=["queries"], key=["keys"], value=["values"], score=["score"]), check=attended),
    "masked_softmax": Case(masked_softmax, dict(scores=torch.randn(3, 3), mask=None, temperature=1.0),
                           check=probabilities),
    "make_scorer": Case(make_scorer, dict(score="general", d_query=4, d_key=None, seed=None),
                        good=dict(score=["dot", "additive"], seed=[3]), names=dict(score=["score"], d_query=["query size"],
                                                                                   d_key=["key size"])),
    "MultiHeadAttention": Case(MultiHeadAttention, dict(d_model=16, n_heads=4, bias=True, dropout=0.0, score="scaled_dot"),
                               good=dict(n_heads=[1, 2, 8, 16], d_model=[8, 32]),
                               names=dict(d_model=["width"], n_heads=["heads"], score=["score"], bias=["bias"]),
                               check=built(MultiHeadAttention)),
    "causal_mask": Case(causal_mask, dict(n_queries=4, n_keys=None), names=dict(n_queries=["queries"], n_keys=["keys"])),
    "valid_head_counts": Case(valid_head_counts, dict(d_model=12), names=dict(d_model=["width"]), check=divisors),
    "AttentionMaps": Case(AttentionMaps, dict(tokens=list("abc"), weights=torch.rand(1, 1, 3, 3), key_tokens=None),
                          names=dict(key_tokens=["key tokens"]), check=built(AttentionMaps)),
    "entropy": Case(entropy, dict(maps=MAPS), names=dict(maps=["AttentionMaps"]), check=shaped(2, 2)),
    "rollout": Case(rollout, dict(maps=MAPS), names=dict(maps=["AttentionMaps"]), check=shaped(2, 3, 3)),
    "pattern_score": Case(pattern_score, dict(maps=MAPS, pattern=torch.eye(3, dtype=torch.bool)),
                          names=dict(maps=["AttentionMaps"]), check=shaped(2, 2)),
    "AttentionMaps.head": Case(MAPS.head, dict(layer=0, head=1), good=dict(layer=[-1, 1], head=[-2]), check=shaped(3, 3)),
    "TinyTransformer": Case(lambda **a: TinyTransformer(TransformerConfig(**a)), TRANSFORMER,
                            good=dict(pooling=["cls", "mean"], n_classes=[3], norm=["post"], pad_id=[0, 9]),
                            names=TRANSFORMER_NAMES, check=built(TinyTransformer)),
    "TinySeq2Seq": Case(lambda **a: TinySeq2Seq(TransformerConfig(**a)), TRANSFORMER,
                        good=dict(cross_score=["additive", "general"], pad_id=[0]),
                        names=TRANSFORMER_NAMES, check=built(TinySeq2Seq)),
    "TinyViT": Case(lambda **a: TinyViT(ViTConfig(**a)),
                    dict(image_size=16, patch_size=4, channels=1, d_model=16, n_heads=2, n_layers=1, pool="cls",
                         positional="learned", n_classes=4, d_ff=None, dropout=0.0),
                    good=dict(patch_size=[2, 8], pool=["mean"], positional=["sinusoidal"]),
                    names=dict(d_model=["width"], n_heads=["heads"], n_layers=["layers"], patch_size=["patch"],
                               image_size=["image"], n_classes=["classes"], channels=["channels"]),
                    check=built(TinyViT)),
    "CBAMNet": Case(CBAMNet, dict(n_classes=4, in_channels=1, width=8, stages=2, cbam=True, ratio=4, kernel_size=7,
                                  order="channel-spatial", pool=("avg", "max"), merge="sum", channel=True, spatial=True),
                    good=dict(order=["parallel"], pool=["lp", ["max"]], merge=["concat"], kernel_size=[3, 5]),
                    names=dict(n_classes=["classes"], in_channels=["channels"], pool=["pool"], stages=["stages"],
                               channel=["channel"], spatial=["spatial"], cbam=["CBAM"]),
                    check=built(CBAMNet)),
    "CBAM": Case(CBAM, dict(in_channels=8, ratio=4, kernel_size=7, order="parallel", channel=True, spatial=True,
                            pool="avg", merge="sum"),
                 names=dict(in_channels=["channels"], pool=["pool"], channel=["channel"], spatial=["spatial"]),
                 check=built(CBAM)),
    "cbam_maps": Case(lambda images: cbam_maps(CNN, images), dict(images=X32), model=lambda: CNN,
                      check=expect(lambda r: r.spatial[0].shape == (2, 32, 32))),
    "grad_cam": Case(lambda images, target: grad_cam(CNN, images, target), dict(images=X32, target=None),
                     good=dict(target=[0, 3, [1, 2]]), names=dict(target=["target"]), model=lambda: CNN,
                     check=shaped(2, 32, 32)),
    "localization": Case(localization, dict(spatial_maps=torch.rand(2, 8, 8), boxes=BOXES),
                         names=dict(spatial_maps=["maps"]), check=expect(lambda r: np.isfinite(r) and r >= 0)),
    "vit_maps": Case(lambda images, heads: vit_maps(VIT, images, heads), dict(images=X16, heads=False), model=lambda: VIT,
                     check=expect(lambda r: r.spatial[0].shape == (2, 16, 16))),
    "patch_maps": Case(lambda images, patch, layer, head: patch_maps(VIT, images, patch, layer, head),
                       dict(images=X16, patch="r0c0", layer=-1, head=None), good=dict(patch=["r3c3"], head=[1], layer=[0]),
                       model=lambda: VIT, check=shaped(2, 16, 16)),
    "attention_maps": Case(lambda image: attention_maps(VIT, image), dict(image=X16[0]), model=lambda: VIT,
                           check=built(AttentionMaps)),
    "make_task": Case(make_task, dict(name="reverse", n_train=16, n_test=4, length=6, vocab_size=5, seed=0),
                      good=dict(name=["sort", "majority", "needle", "dates"]), names=dict(name=["task"], length=["length"],
                                                                                         vocab_size=["vocabulary"]),
                      check=dataset),
    "make_shapes": Case(make_shapes, dict(n_train=2, n_test=2, size=16, seed=0, clutter=1, noise=0.1),
                        names=dict(size=["size"]), check=dataset),
    "load_digits": Case(load_digits, dict(size=8, test_share=0.2, seed=0), names=dict(test_share=["test share"]),
                        check=dataset),
    "Trainer": Case(lambda **a: Trainer(TRAINED, DATA, **a), dict(lr=1e-3, batch_size=8, seed=0, snapshot_every=5),
                    names=dict(lr=["learning rate"], snapshot_every=["snapshot"]), model=lambda: TRAINED,
                    check=built(Trainer)),
    "Trainer.run": Case(trainer_run, dict(steps=1), good=dict(steps=[2, np.int64(3)]), model=lambda: TRAINED,
                        check=expect(lambda rows: rows and all(finite(r.loss) for r in rows))),
    "Lab.run": Case(lambda steps, chunk, evaluate: a_lab(chunk=chunk, evaluate=evaluate).run(steps),
                    dict(steps=2, chunk=1, evaluate=True), good=dict(evaluate=[False]),
                    names=dict(chunk=["steps"], evaluate=["evaluate"]), check=expect(lambda r: isinstance(r, str))),
    "Lab.start": Case(lab_start, dict(steps=2), check=expect(lambda view: view.status in ("finished", "stopped"))),
    "Lab.stop and join": Case(lab_waits, dict(timeout=1.0), good=dict(timeout=[0, 0.5])),
    "links": Case(lambda state: links.decode(state), dict(state=links.encode({"a": 1})),
                  names=dict(state=["link"]), check=expect(lambda r: isinstance(r[1], dict))),
    "top_heads": Case(heads.top_heads, dict(scores=torch.rand(3, 4), k=2), names=dict(scores=["scores"]),
                      check=expect(lambda r: len(r) >= 1)),
}


def draw_call(data, case: Case) -> tuple[str, dict]:
    name = data.draw(st.sampled_from(sorted(case.arguments)), label="argument")
    value = data.draw(HOSTILE | st.sampled_from(case.good.get(name, [case.arguments[name]])), label=name)
    if case.folder is not None and name == "path" and isinstance(value, str):
        value = case.folder / value.lstrip("/~").replace("..", "up")
    return name, {**case.arguments, name: value}


def weights_of(model) -> list:
    return [value.clone() for value in model.state_dict().values()]


def outcome(case: Case, name: str, arguments: dict):
    """Call the case; a refusal must name ``name`` in a sentence and leave the case's model unchanged."""
    model = case.model() if case.model else None
    before = weights_of(model) if model is not None else None
    try:
        result = case.call(**arguments)
    except (ValueError, TypeError) as error:
        words(error, name, name.replace("_", " "), *case.names.get(name, []))
        if model is not None:
            assert all(torch.equal(a, b) for a, b in zip(before, weights_of(model))), "a refused call changed the model"
        return
    case.check(result, arguments)


@pytest.mark.parametrize("name", sorted(CASES))
@FUZZ
@given(data=st.data())
def test_a_public_function_works_or_refuses_in_words(name, data):
    case = CASES[name]
    argument, arguments = draw_call(data, case)
    outcome(case, argument, arguments)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    (folder / "notes.txt").write_text("the quick brown fox jumps over the lazy dog. " * 20)
    (folder / "pairs.tsv").write_text("".join(f"{i} apples\t{i}\n" for i in range(20)))
    model = tiny_transformer()
    saved = checkpoints.save(model, folder / "saved")
    return folder, model, saved


@FUZZ
@given(data=st.data())
def test_files_and_checkpoints_work_or_refuse_in_words(files, data):
    folder, model, saved = files
    cases = {
        "load_text_task": Case(load_text_task, dict(path=folder / "notes.txt", length=8, test_fraction=0.1, seed=0),
                               names=dict(path=["file"], test_fraction=["test fraction"], length=["length"]), check=dataset),
        "load_pairs_task": Case(load_pairs_task, dict(path=folder / "pairs.tsv", test_fraction=0.2, seed=0),
                                names=dict(path=["file"], test_fraction=["test fraction"]), check=dataset),
        "checkpoints.save": Case(lambda path, history: checkpoints.save(model, path, history),
                                 dict(path=folder / "out", history=None), names=dict(path=["checkpoint", "save"]),
                                 model=lambda: model, check=expect(lambda p: p.is_file())),
        "checkpoints.load": Case(checkpoints.load, dict(path=saved), names=dict(path=["checkpoint"]),
                                 check=expect(lambda r: isinstance(r[0], TinyTransformer))),
        "checkpoints.load_into": Case(lambda path: checkpoints.load_into(model, path), dict(path=saved),
                                      names=dict(path=["checkpoint"]), model=lambda: model),
    }
    case = cases[data.draw(st.sampled_from(sorted(cases)), label="function")]
    case.folder = folder
    argument, arguments = draw_call(data, case)
    outcome(case, argument, arguments)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The pretrained readers of the README, small: the packaged MiniLM, a tiny random GPT-2, Marian and ViT."""
    from explorer.models import language, pretrained
    from tests.conftest import save_tiny_gpt2
    from tests.test_pretrained_vision import save_tiny as save_tiny_vit
    from tests.test_seq2seq import minilm_tokenizer, save_tiny

    images = tmp_path_factory.mktemp("images")
    for label in ("a", "b"):
        (images / label).mkdir()
        for index in range(3):
            PILImage.fromarray((np.random.default_rng(index).random((12, 12)) * 255).astype(np.uint8)).save(
                images / label / f"{index}.png")
    return dict(encoder=pretrained.load(), lm=language.load(str(save_tiny_gpt2(tmp_path_factory.mktemp("gpt2")))),
                translator=pretrained.load(str(save_tiny(tmp_path_factory.mktemp("marian"), "marian", minilm_tokenizer()))),
                vision=pretrained.load(str(save_tiny_vit(tmp_path_factory.mktemp("vit")))), images=images)


def model_cases(models) -> dict:
    encoder, lm, translator, vision = models["encoder"], models["lm"], models["translator"], models["vision"]
    text_names = dict(text=["text"], text_pair=["second text"], ablate=["ablat", "head", "layer"],
                      max_tokens=["max_tokens"])
    return {
        "encoder.attend": Case(encoder.attend, dict(text="the cat sat", text_pair=None, ablate=(), max_tokens=None),
                               good=dict(ablate=[[(0, 1)], [[5, 11]]], max_tokens=[3, np.int64(5)]), names=text_names,
                               check=built(AttentionMaps)),
        "encoder.sentence_embedding": Case(encoder.sentence_embedding, dict(text="a dog", text_pair="a cat", ablate=(),
                                                                            max_tokens=None),
                                           names=text_names, check=shaped(encoder.hidden_size)),
        "pretrained.load": Case(lambda name_or_path: load_model(name_or_path, models), dict(name_or_path=None),
                                names=dict(name_or_path=["model", "folder"])),
        "translator.attend": Case(translator.attend, dict(source="the cat", target=None, max_new_tokens=2),
                                  good=dict(target=["le chat"], max_new_tokens=[1, 3]),
                                  names=dict(source=["source"], target=["target"], max_new_tokens=["max_new_tokens"]),
                                  check=expect(lambda r: set(r) == {"encoder", "decoder", "cross"})),
        "lm.attend": Case(lm.attend, dict(text="the cat", ablate=(), max_tokens=None), good=dict(ablate=[[(1, 3)]]),
                          names=dict(text=["prompt"], ablate=["ablat", "head", "layer"], max_tokens=["max_tokens"]),
                          check=built(AttentionMaps)),
        "lm.generate": Case(lm.generate, dict(prompt="the", max_new_tokens=2, temperature=0.0, seed=0, ablate=()),
                            good=dict(temperature=[0.7, torch.tensor(1.0)], seed=[7, np.uint32(2**32 - 1)]),
                            names=dict(prompt=["prompt"], max_new_tokens=["new tokens"], ablate=["ablat", "head", "layer"]),
                            check=expect(lambda r: isinstance(r.text, str) and isinstance(r.maps, AttentionMaps))),
        "lm.induction_scores": Case(lm.induction_scores, dict(length=4, seed=0), names=dict(length=["length"]),
                                    check=shaped(lm.n_layers, lm.n_heads)),
        "heads.second_copy_loss": Case(lambda ablate, length, seed: heads.second_copy_loss(lm, ablate, length, seed),
                                       dict(ablate=(), length=4, seed=0), names=dict(ablate=["ablat", "head", "layer"]),
                                       check=expect(lambda r: np.isfinite(r) and r >= 0)),
        "vision.attend": Case(vision.attend, dict(image=np.zeros((20, 24, 3), np.uint8)),
                              good=dict(image=[np.full((8, 8), 200, np.uint8)]), names=dict(image=["image"]),
                              check=built(AttentionMaps)),
        "load_image_folder": Case(load_image_folder, dict(path=models["images"], size=8, channels=None, test_share=0.3, seed=0),
                                  good=dict(channels=[1, 3]), names=dict(path=["folder"], test_share=["test share"],
                                                                         channels=["channels"]),
                                  check=dataset, folder=models["images"].parent),
    }


def load_model(name_or_path, models):
    """``pretrained.load`` with hostile names only: the valid default is the packaged model, loaded once already."""
    from explorer.models import pretrained

    if name_or_path is None or isinstance(name_or_path, str) and not name_or_path.strip():
        return models["encoder"]
    if isinstance(name_or_path, str):
        name_or_path = name_or_path.lstrip("/~").replace("..", "up")  # never a folder of this machine's
    return pretrained.load(name_or_path)


MODEL_CASES = ["encoder.attend", "encoder.sentence_embedding", "pretrained.load", "translator.attend", "lm.attend",
               "lm.generate", "lm.induction_scores", "heads.second_copy_loss", "vision.attend", "load_image_folder"]


@pytest.mark.parametrize("name", MODEL_CASES)
@FUZZ
@given(data=st.data())
def test_a_pretrained_model_reads_or_refuses_in_words(models, name, data):
    case = model_cases(models)[name]
    argument, arguments = draw_call(data, case)
    outcome(case, argument, arguments)
