"""The Transformer lab's translator: greedy decoding of a text the user types, and what to say about it.

Any text gets the model's output; ``notice`` says what the model could not read and, when the generator knows the
text, the right answer. Plain functions: ``TransformerLabSession.translate`` calls them with its model and task.
"""

from __future__ import annotations

import copy

from explorer.arguments import text as check_text
from explorer.data.sequences import TRANSLATIONS, is_translation, vocabulary
from explorer.data.translation import END, READERS
from explorer.maps import Translation
from explorer.models.translator import translate

MAX_TYPED = 1_000  # characters: the model reads a few dozen, and the notice says the rest was cut
EXAMPLES = {"dates": "3 March 2021, 03/03/21 or march 3rd 2021", "numbers": "three hundred and twelve"}


def translate_text(model, data, text) -> Translation:
    """Greedy decoding of ``text`` with ``model``, on a copy of its weights of this moment, so a run in training is
    never disturbed; a ValueError in words for no text or a task that is not a translation."""
    text = check_text(text, "text to translate", max_length=MAX_TYPED)
    if data is None or not is_translation(data):
        raise ValueError("Translating needs a translation task: choose dates or numbers (or upload a .tsv "
                         "of pairs) with the encoder-decoder.")
    source_length, target_length = len(data["train"][0]["input_ids"]), len(data["train"][0]["labels"]) - 1
    return translate(copy.deepcopy(model), vocabulary(data), text, source_length, target_length)


def reference(task: str, text: str, data) -> str | None:
    """The right answer for ``text``: from the task's generator, or from the user's pairs when it is one of them."""
    if task in READERS:
        return READERS[task](text)
    for split in data.values():
        known = dict(zip(split["source"], split["target"]))
        if text in known:
            return known[text]
    return None


def notice(task: str, text: str, result: Translation, data) -> tuple[str, str]:
    """The right answer when it is known, and what the model could not read; and the notice's kind, its colour:
    "ok" for a right answer, "warning" for a wrong, cut or unreadable one, "info" when there is nothing to compare."""
    example = EXAMPLES.get(task, "one of the sources of your file")
    if not text.strip():
        return f"Nothing was typed: the model read only padding. Type something such as {example}.", "warning"
    notes = []
    if result.cut:
        notes.append(f"The text has {len(text)} characters; the model reads only the first {len(result.source)}.")
    if result.unknown:
        notes.append(f"The model has never seen {', '.join(repr(c) for c in result.unknown)}: it read <unk>.")
    if not result.ended:
        notes.append(f"The model did not finish within {len(result.written)} characters (no {END}).")
    answer = reference(task, text, data)
    if answer is None:
        kind = "a date the generator writes" if task == "dates" else (
            "a number the generator writes (0 to 9999)" if task in TRANSLATIONS else "a source of your file")
        notes.append(f"'{text[:40]}{'...' if len(text) > 40 else ''}' is not {kind}, so there is no right "
                     f"answer to compare with (the generator writes, for example, {example}).")
        return " ".join(notes), "warning" if len(notes) > 1 else "info"
    if answer == result.target:
        notes.append(f"Right: {answer}.")
        return " ".join(notes), "ok" if len(notes) == 1 else "warning"
    notes.append(f"The right answer is {answer}; the model wrote {result.target or 'nothing'}.")
    return " ".join(notes), "warning"
