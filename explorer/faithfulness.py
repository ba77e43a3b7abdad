"""Is a map an explanation? Six per-token importances for one output of a model, and how faithful each one is.

For one input and one output (``explorer.models.readout``: a language model's log-probability of the next token,
an encoder's sentence embedding by its cosine similarity to the unchanged text's, a lab model's predicted class or
token) each method gives every token a number, larger = the output leans on it more:

    attention              one layer's weights, mean over heads, the output's query row
    rollout                attention rollout up to that layer (Abnar and Zuidema 2020)
    value_norm             || sum_h a_h f_h(x_j) ||: attention weighted by the transformed value (Kobayashi et al. 2020)
    grad_x_input           gradient x input in the token-embedding space, summed over its dimensions (Captum)
    integrated_gradients   integrated gradients from the baseline (replaced tokens) to the input (Captum)
    leave_one_out          the output's fall when that one token is replaced by the baseline

``compare_methods`` scores each against what the model does when tokens go: the Spearman rank correlation with
leave-one-out, a deletion curve (replace tokens from most to least important; AOPC, the mean fall of the output,
Samek et al. 2017) and an insertion curve (start with all replaced, put them back; the mean rise), both beside the
same curves for random orders. Higher is more faithful for all three.

    token_importance(model, "The cat sat on the", "rollout")     # 1-D tensor over the tokens the output reads
    compare_methods(model, "The cat sat on the").scores["attention"].spearman
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field

import torch

from explorer.deletion import Stopped, fall, rise, token_curves

METHODS = ("attention", "rollout", "value_norm", "grad_x_input", "integrated_gradients", "leave_one_out")
METHOD_NAMES = {"attention": "raw attention", "rollout": "rollout", "value_norm": "attention x |value|",
                "grad_x_input": "gradient x input", "integrated_gradients": "integrated gradients",
                "leave_one_out": "leave-one-out"}
ATTENTION_METHODS = METHODS[:3]
MAX_TOKENS = 64  # leave-one-out and the curves run the model once per token: the cost grows with its square
IG_STEPS, IG_MAX_STEPS = 32, 64  # integrated gradients' steps, all in one batch: doubled once if Captum's delta is
# past the tolerance. More steps cost in proportion and still do not bring SmolLM2's delta under 5% (bench/faithfulness.py)
IG_TOLERANCE = 0.05  # of the output's change from the baseline
CURVE_POINTS = 10  # points of a deletion or insertion curve past the first (every token for shorter inputs)
RANDOM_ORDERS = 3
BATCH = 16  # changed inputs run at once
IG_ROWS = 512  # token positions in one batch of integrated gradients' steps (under 1 GB of SmolLM2's activations)


@dataclass(frozen=True)
class Scores:
    """How faithful one method's importances are (higher is better for each)."""

    spearman: float  # rank correlation with leave-one-out over the replaceable tokens (nan when one is constant)
    deletion: float  # AOPC: mean fall of the output as the most important tokens go first
    insertion: float  # mean rise of the output as the most important tokens come back first


@dataclass(frozen=True)
class Faithfulness:
    """Every method's importances for one output, with their scores and curves (see the module docstring)."""

    tokens: tuple[str, ...]
    movable: tuple[bool, ...]  # tokens a check replaces ([CLS] and [SEP] stay)
    what: str  # the output in words
    layer: int  # of the attention methods
    baseline: str  # what a replaced token becomes
    value: float  # the output of the unchanged input
    blank_value: float  # the output with every replaceable token replaced
    importances: dict[str, torch.Tensor]  # method -> [tokens]
    scores: dict[str, Scores]
    random: Scores  # deletion and insertion of random orders (their mean)
    fractions: tuple[float, ...]  # share of the replaceable tokens replaced (deletion) or back (insertion) per point
    deletion: dict[str, tuple[float, ...]] = field(default_factory=dict)  # method or "random" -> output per point
    insertion: dict[str, tuple[float, ...]] = field(default_factory=dict)
    ig_steps: int = 0
    ig_delta: float = math.nan  # Captum's convergence delta: sum of attributions - (value - blank_value)
    notes: tuple[str, ...] = ()
    seconds: dict[str, tuple[float, float]] = field(default_factory=dict)  # part -> (wall, CPU) seconds

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.importances)

    @property
    def ig_error(self) -> float:
        """Captum's delta as a share of the output's change (completeness holds when it is small)."""
        change = abs(self.value - self.blank_value)
        return abs(self.ig_delta) / change if change > 0 else math.inf


def readout_for(model, text, position: int = -1, limit: int = MAX_TOKENS, names=None, classes=None, length=None):
    """The ``Readout`` of ``model`` (a pretrained encoder or language model, or a lab Transformer) on ``text``.
    A lab model's ``names`` label its tokens, ``classes`` its classes; ``length`` is how many tokens an
    encoder-decoder writes (the source's length by default)."""
    from explorer.models import readout, readout_lab
    from explorer.models.transformer import TinySeq2Seq, TinyTransformer

    if isinstance(model, TinySeq2Seq):
        return readout_lab.Seq2SeqReadout(model, text, position, limit, names, length)
    if isinstance(model, TinyTransformer):
        return readout_lab.LabReadout(model, text, position, limit, names, classes)
    kind = getattr(model, "family", None)
    if kind == "encoder" and hasattr(model, "tokenizer"):
        return readout.EncoderReadout(model, _text(text), position, limit)
    if kind == "decoder" and hasattr(model, "tokenizer"):
        return readout.DecoderReadout(model, _text(text) if isinstance(text, str) else text, position, limit)
    if kind is not None:
        raise ValueError(f"Faithfulness is measured for encoders, language models and the lab's Transformers, "
                         f"not for a {kind} model.")
    raise TypeError(f"The faithfulness check needs what explorer.models.pretrained.load() or language.load() "
                    f"returns, or a lab Transformer; got {type(model).__name__}.")


def _text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The text is empty: type a sentence to measure its tokens' importance.")
    return text


def token_importance(model, text, method: str, position: int = -1, layer: int | None = None) -> torch.Tensor:
    """One method's importance of each token the output reads, ``[tokens]`` (see the module docstring)."""
    check_method(method)
    return compare_methods(model, text, position, layer, methods=(method,), scored=False).importances[method]


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"Unknown method '{str(method)[:40]}'. Choose one of: {', '.join(METHODS)}.")
    return method


def compare_methods(model, text, position: int = -1, layer: int | None = None, methods=METHODS, seed: int = 0,
                    progress=None, stop=None, scored: bool = True, names=None, classes=None,
                    length: int | None = None) -> Faithfulness:
    """Each method's importances for one output and, with ``scored``, their scores against leave-one-out and the
    deletion and insertion curves. ``progress(fraction, words)`` is told as it goes; ``stop()`` true ends it (a
    ``Stopped`` error). The same ``seed`` gives the same random orders, so the same numbers."""
    methods = tuple(check_method(m) for m in methods)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"The seed is a whole number (it picks the random orders), got {seed!r}.")
    wall, cpu = time.perf_counter(), time.process_time()
    run = _Run(readout_for(model, text, position, MAX_TOKENS, names, classes, length), progress, stop)
    run.seconds["reading"] = (time.perf_counter() - wall, time.process_time() - cpu)
    layer = run.check_layer(layer)
    wanted = tuple(dict.fromkeys(methods + (("leave_one_out",) if scored else ())))
    importances = {method: run.importance(method, layer) for method in wanted}
    if not scored:
        return run.record(layer, importances, {}, Scores(math.nan, math.nan, math.nan), (), {}, {})
    return run.scored(layer, importances, seed)


class _Run:
    """One check: the readout, its cache of changed inputs' outputs, the timings and the notes."""

    def __init__(self, readout, progress, stop):
        self.readout, self.progress, self.stop = readout, progress or (lambda fraction, words: None), stop
        self.cache: dict[bytes, float] = {}
        self.seconds: dict[str, tuple[float, float]] = {}
        self.notes: list[str] = []
        self.ig_steps, self.ig_delta = 0, math.nan
        n = len(readout.tokens)
        self.value = self.outputs(torch.zeros(1, n, dtype=torch.bool))[0].item()
        self.blank_value = self.outputs(readout.movable[None])[0].item()
        if not math.isfinite(self.value) or not math.isfinite(self.blank_value):
            raise ValueError("The model's output is not a number (NaN or infinite) for this input, so no importance "
                             "can be measured: its weights may have diverged (train it again, or load other weights).")

    def check_layer(self, layer) -> int:
        n = self.readout.n_layers
        if layer is None:
            return n - 1
        if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
            raise ValueError(f"Layer {layer} does not exist: this model has layers 0 to {n - 1}.")
        return layer % n

    def said(self, fraction: float, words: str) -> None:
        if self.stop is not None and self.stop():
            raise Stopped()
        self.progress(fraction, words)

    @contextlib.contextmanager
    def timed(self, part: str):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.seconds[part] = (time.perf_counter() - wall, time.process_time() - cpu)

    def outputs(self, replaced: torch.Tensor, span: tuple[float, float] | None = None) -> torch.Tensor:
        """The output of the input with each row's ``replaced`` ``[B, T]`` tokens replaced; each one run once.
        ``span``: the share of the whole check these runs take, for the progress."""
        keys = [bytes(row.numpy().tobytes()) for row in replaced]
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        rows = {k: row for k, row in zip(keys, replaced)}
        for start in range(0, len(missing), BATCH):
            if span is not None:
                self.said(span[0] + (span[1] - span[0]) * start / len(missing),
                          f"Deletion and insertion curves: {start} of {len(missing)} changed inputs…")
            elif self.stop is not None and self.stop():
                raise Stopped()
            chunk = missing[start:start + BATCH]
            with torch.inference_mode():
                values = self.readout.output(self.readout.changed(torch.stack([rows[k] for k in chunk])))
            self.cache.update(zip(chunk, values.tolist()))
        return torch.tensor([self.cache[k] for k in keys])

    def importance(self, method: str, layer: int) -> torch.Tensor:
        self.said(METHODS.index(method) / len(METHODS) * 0.6, f"Computing {METHOD_NAMES[method]}…")
        with self.timed(method):
            if method in ATTENTION_METHODS:
                found = self.readout.mixing(layer).importances()
                if method not in found:
                    raise ValueError(f"Value-weighted attention needs the model's value projection, which was not "
                                     f"found in {type(self.readout.module).__name__}; the other methods work.")
                values = found[method].float()
            elif method == "leave_one_out":
                alone = torch.eye(len(self.readout.tokens), dtype=torch.bool) & self.readout.movable[None]
                values = torch.where(self.readout.movable, self.value - self.outputs(alone), 0.0)
            else:
                values = self.gradients(method)
        if not torch.isfinite(values).all():
            raise ValueError(f"{_title(method)} gave a value that is not a number for this input (NaN): the "
                             "model's output may overflow for changed inputs.")
        return values.detach()

    def gradients(self, method: str) -> torch.Tensor:
        from captum.attr import InputXGradient, IntegratedGradients

        readout = self.readout
        _check_gradients(readout.module)
        inputs, forward = readout.inputs[None], self.watched(readout.output)
        with _frozen(readout.module), torch.enable_grad(), _no_gradient_errors():
            if method == "grad_x_input":
                attributions = InputXGradient(forward).attribute(inputs.clone().requires_grad_(True))
                values = attributions[0].sum(dim=-1)
                _note_saturation(self.notes, values, self.value)
                return values
            steps = IG_STEPS
            while True:
                attributions, delta = IntegratedGradients(forward).attribute(
                    inputs.clone().requires_grad_(True), baselines=readout.baseline[None], n_steps=steps,
                    internal_batch_size=max(1, min(steps, IG_ROWS // len(readout.tokens))),
                    return_convergence_delta=True)
                self.ig_steps, self.ig_delta = steps, float(delta)
                change = abs(self.value - self.blank_value)
                if abs(self.ig_delta) <= IG_TOLERANCE * change or steps >= IG_MAX_STEPS:
                    break
                steps *= 2
        if abs(self.ig_delta) > IG_TOLERANCE * abs(self.value - self.blank_value):
            self.notes.append(f"Integrated gradients did not converge in {steps} steps: the attributions sum to "
                              f"{attributions.sum():.3g}, the output changed by {self.value - self.blank_value:.3g} "
                              f"({abs(self.ig_delta) / max(abs(self.value - self.blank_value), 1e-12):.0%} off).")
        return attributions[0].sum(dim=-1)

    def watched(self, function):
        def forward(embeddings):
            if self.stop is not None and self.stop():
                raise Stopped()
            return function(embeddings)
        return forward

    def scored(self, layer: int, importances: dict, seed: int) -> Faithfulness:
        with self.timed("curves"):
            fractions, deletion, insertion = token_curves(self, importances, seed, CURVE_POINTS, RANDOM_ORDERS)
        movable, loo = self.readout.movable, importances["leave_one_out"]
        scores = {method: Scores(spearman(values[movable], loo[movable]), fall(self.value, deletion[method]),
                                 rise(insertion[method], self.blank_value))
                  for method, values in importances.items()}
        random = Scores(math.nan, fall(self.value, deletion["random"]), rise(insertion["random"], self.blank_value))
        self.said(1.0, "Done.")
        curves = ({k: tuple(v.tolist()) for k, v in deletion.items()}, {k: tuple(v.tolist()) for k, v in insertion.items()})
        return self.record(layer, importances, scores, random, fractions, *curves)

    def record(self, layer, importances, scores, random, fractions, deletion, insertion) -> Faithfulness:
        readout = self.readout
        return Faithfulness(tokens=readout.tokens, movable=tuple(readout.movable.tolist()), what=readout.what,
                            layer=layer, baseline=readout.baseline_name, value=self.value,
                            blank_value=self.blank_value, importances=importances, scores=scores, random=random,
                            fractions=fractions, deletion=deletion, insertion=insertion, ig_steps=self.ig_steps,
                            ig_delta=self.ig_delta, notes=tuple(self.notes), seconds=dict(self.seconds))


def _title(method: str) -> str:
    return METHOD_NAMES[method][:1].upper() + METHOD_NAMES[method][1:]


def _check_gradients(module) -> None:
    quantized = next((name for name, m in module.named_modules()
                      if type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized"))), None)
    if quantized is not None or any(not p.is_floating_point() for p in module.parameters()):
        raise ValueError(NO_GRADIENTS)


NO_GRADIENTS = ("This model is integer-quantized, so no gradient flows through it: gradient x input and integrated "
                "gradients cannot be computed. Use the model before quantization, or the methods without gradients "
                "(attention, rollout, value_norm, leave_one_out).")


@contextlib.contextmanager
def _no_gradient_errors():
    try:
        yield
    except RuntimeError as error:
        if "grad" in str(error):
            raise ValueError(NO_GRADIENTS) from None
        raise


@contextlib.contextmanager
def _frozen(module):
    """No gradients for the weights while Captum takes the input's: the backward pass does half the work."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, wanted in flags:
            p.requires_grad_(wanted)


def _note_saturation(notes: list, values: torch.Tensor, value: float) -> None:
    if values.abs().max() < 1e-4 * max(abs(value), 1.0):
        notes.append("Gradient x input is about zero for every token: the output is at its top for the unchanged "
                     "input (a similarity of 1), where its gradient vanishes. Integrated gradients are made for this.")


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (scipy's), nan when either is constant."""
    from scipy.stats import spearmanr

    if len(a) < 2 or torch.unique(a).numel() < 2 or torch.unique(b).numel() < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a.double().numpy(), b.double().numpy()).statistic)
