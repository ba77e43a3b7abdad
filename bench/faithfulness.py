"""Is attention an explanation? The faithfulness scores of six methods over a corpus, and what one check costs.

    python bench/faithfulness.py [--models minilm,smollm2,lab] [--inputs 66] [--timing-only]

Prints ``name: value`` lines:
- timing: every method for one 32-token input on SmolLM2, in seconds of wall and of CPU (the machine may be
  shared: CPU seconds say what the check itself used), and as a ratio to one plain forward pass of the same input
  measured in the same process just before (goal: all methods within 5 s on 2 cores);
- the corpus run: for each model and method, the mean ± standard deviation over the inputs of the Spearman rank
  correlation with leave-one-out, and of the deletion AOPC and insertion above a random order's. The inputs are the
  sentences of the bundled public-domain text (``explorer.data.corpus``) for MiniLM (its sentence embedding) and
  SmolLM2 (the log-probability of each sentence's last word), and 60 test inputs of a lab Transformer trained here
  on ``needle`` with a [CLS] token (its predicted class). Markdown tables of the same numbers close the output.
"""

from __future__ import annotations

import argparse
import statistics
import string
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.data.corpus import SOURCE, sentences  # noqa: E402
from explorer.faithfulness import METHODS, compare_methods  # noqa: E402
from explorer.survey import SCORES, markdown, survey  # noqa: E402

TIMING_TEXT = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing "
               "to do: once or twice she had peeped into the book her sister was reading")
LAB_STEPS, LAB_INPUTS = 600, 60


def without_last_mark(sentence: str) -> str:
    """The sentence without its closing punctuation, so its last token is a word for the language model to predict."""
    return sentence.rstrip(string.punctuation + "’”‘“ ")


def timing(language_model) -> None:
    ids = language_model.encode(TIMING_TEXT)[0][:32]
    text = language_model.tokenizer.decode(ids)
    model = language_model.model
    forwards = []
    for _ in range(3):
        started = time.perf_counter()
        with torch.inference_mode():
            model(torch.tensor([ids]), use_cache=False)
        forwards.append(time.perf_counter() - started)
    forward = statistics.median(forwards)
    wall, cpu = time.perf_counter(), time.process_time()
    record = compare_methods(language_model, ids, position=-1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"timing tokens: {len(text and ids)}")
    print(f"timing one forward s: {forward:.3f}")
    for part, (w, c) in record.seconds.items():
        print(f"timing {part} s: {w:.2f} wall, {c:.2f} CPU")
    print(f"timing all methods s: {wall:.2f} wall, {cpu:.2f} CPU")
    print(f"timing all methods / one forward: {wall / forward:.0f}")
    print(f"timing integrated gradients steps: {record.ig_steps}, delta {record.ig_error:.1%} of the change")


def lab_model():
    """A [CLS] classifier trained here on needle (the token after the marker), and its test inputs."""
    from explorer.data.sequences import class_names, make_task, vocabulary
    from explorer.models.transformer import TinyTransformer, TransformerConfig
    from explorer.training import Trainer

    data = make_task("needle", seed=0)
    names, classes = vocabulary(data), class_names(data)
    torch.manual_seed(0)
    model = TinyTransformer(TransformerConfig(vocab_size=len(names), pooling="cls", n_classes=len(classes)))
    trainer = Trainer(model, data, lr=3e-3, seed=0)
    trainer.run(LAB_STEPS)
    accuracy = trainer.evaluate()
    inputs = [row["input_ids"] for row in data["test"].select(range(LAB_INPUTS))]
    return model.eval(), inputs, names, classes, accuracy


def told(name: str):
    """Progress on stderr, so a long corpus run shows how far it is while stdout keeps its ``name: value`` lines."""
    return lambda fraction, words: print(f"{name}: {words}", file=sys.stderr, flush=True)


def report(name: str, found) -> None:
    summary = found.summary()
    for method in METHODS:
        for score in SCORES:
            mean, spread, n = summary[method][score]
            print(f"{name} {method} {score}: {mean:+.3f} ± {spread:.3f} (n={n})")
    wall, cpu = found.seconds()
    print(f"{name} inputs: {len(found.records)} ({len(found.refused)} refused)")
    print(f"{name} integrated gradients within 5%: {found.ig_converged():.0%}")
    print(f"{name} seconds per input: {wall / max(len(found.records), 1):.1f} wall, "
          f"{cpu / max(len(found.records), 1):.1f} CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,smollm2,lab")
    parser.add_argument("--inputs", type=int, default=66, help="sentences of the text per model (at most 66)")
    parser.add_argument("--timing-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    texts = sentences()[: args.inputs]
    print(f"corpus: {SOURCE}, {len(texts)} sentences")
    tables = {}
    wanted = args.models.split(",")
    if "smollm2" in wanted or args.timing_only:
        from explorer.models import language

        smollm = language.load()
        timing(smollm)
        if args.timing_only:
            return
        tables["SmolLM2"] = survey(smollm, [without_last_mark(t) for t in texts], position=-2, name="SmolLM2",
                                    progress=told("smollm2"))
        report("smollm2", tables["SmolLM2"])
    if "minilm" in wanted:
        from explorer.models import pretrained

        tables["MiniLM"] = survey(pretrained.load(), texts, name="all-MiniLM-L6-v2", progress=told("minilm"))
        report("minilm", tables["MiniLM"])
    if "lab" in wanted:
        model, inputs, names, classes, accuracy = lab_model()
        print(f"lab needle test accuracy after {LAB_STEPS} steps: {accuracy}")
        tables["lab"] = survey(model, inputs, names=names, classes=classes, name="lab needle [CLS]",
                               progress=told("lab"))
        report("lab", tables["lab"])
    for name, found in tables.items():
        print(f"\n{name} ({len(found.records)} inputs)\n{markdown(found)}")


if __name__ == "__main__":
    main()
