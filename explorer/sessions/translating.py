"""The Transformer lab's translator: greedy decoding of a text the user types, and what to say about it.

A mixin of ``TransformerLabSession`` (it uses that session's ``runs``, ``task``, ``typed`` and ``translation``).
Any text gets the model's output; a notice says what the model could not read and, when the generator knows
the text, the right answer.
"""

from __future__ import annotations

import copy

from explorer.data.sequences import TRANSLATIONS, is_translation, vocabulary
from explorer.data.translation import END, READERS
from explorer.models.translator import Translation, translate

EXAMPLES = {"dates": "3 March 2021, 03/03/21 or march 3rd 2021", "numbers": "three hundred and twelve"}


class Translating:
    """``translate(text)`` decodes with the first model and sets ``translation`` and ``translation_notice``."""

    def translate(self, text: str | None = None) -> Translation:
        """Greedy decoding of ``text`` (default: the ``typed`` setting) with the first model, on a copy of its
        weights of this moment, so a run in training is never disturbed."""
        text = self.typed if text is None else text
        if not isinstance(text, str):
            raise ValueError(f"Type the text to translate, got {type(text).__name__}.")
        data = self.runs[0].trainer.data if self.runs else None
        if data is None or not is_translation(data):
            raise ValueError("Translating needs a translation task: choose dates or numbers (or upload a .tsv "
                             "of pairs) with the encoder-decoder.")
        model = copy.deepcopy(self.runs[0].trainer.model)
        source_length, target_length = len(data["train"][0]["input_ids"]), len(data["train"][0]["labels"]) - 1
        result = translate(model, vocabulary(data), text, source_length, target_length)
        self.typed = text
        self.translation_notice = self._notice(text, result, data)  # first: the panel draws on ``translation``
        self.translation = result
        self.say(f"{self.runs[0].name} at step {self.runs[0].trainer.step} writes '{result.output}'.", "ok")
        return result

    def _reference(self, text: str, data) -> str | None:
        if self.task in READERS:
            return READERS[self.task](text)
        for split in data.values():
            known = dict(zip(split["source"], split["target"]))
            if text in known:
                return known[text]
        return None

    def _notice(self, text: str, result: Translation, data) -> str:
        """The right answer when it is known, and what the model could not read."""
        example = EXAMPLES.get(self.task, "one of the sources of your file")
        if not text.strip():
            return f"Nothing was typed: the model read only padding. Type something such as {example}."
        notes = []
        if result.cut:
            notes.append(f"The text has {len(text)} characters; the model reads only the first {len(result.source)}.")
        if result.unknown:
            notes.append(f"The model has never seen {', '.join(repr(c) for c in result.unknown)}: it read <unk>.")
        if not result.ended:
            notes.append(f"The model did not finish within {len(result.maps.tokens) if result.maps else 0} "
                         f"characters (no {END}).")
        answer = self._reference(text, data)
        if answer is None:
            kind = "a date the generator writes" if self.task == "dates" else (
                "a number the generator writes (0 to 9999)" if self.task in TRANSLATIONS else "a source of your file")
            notes.append(f"'{text[:40]}{'...' if len(text) > 40 else ''}' is not {kind}, so there is no right "
                         f"answer to compare with (the generator writes, for example, {example}).")
        elif answer == result.output:
            notes.append(f"Right: {answer}.")
        else:
            notes.append(f"The right answer is {answer}; the model wrote {result.output or 'nothing'}.")
        return " ".join(notes)
