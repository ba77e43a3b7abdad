"""The faithfulness scores over many inputs: their mean and spread per method (the corpus run).

    found = survey(model, sentences(), position=-2)
    found.summary()      # method -> score -> (mean, standard deviation, inputs counted)

Deletion and insertion are counted above the random orders of the same input (the random order's score is
subtracted), so inputs whose outputs move more or less compare on one scale of "better than chance".
Spearman's rank correlation is left out for an input where it is undefined (a constant importance).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from explorer.faithfulness import METHODS, Faithfulness, compare_methods

SCORES = ("spearman", "deletion", "insertion")
SCORE_NAMES = {"spearman": "Spearman ρ with leave-one-out", "deletion": "deletion AOPC above random",
               "insertion": "insertion above random"}


@dataclass
class Survey:
    """Every input's ``Faithfulness`` record, and the inputs the model refused (too long, one token) with why."""

    model: str
    records: list[Faithfulness] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def values(self, method: str, score: str) -> list[float]:
        found = []
        for record in self.records:
            value = getattr(record.scores[method], score)
            if score != "spearman":
                value -= getattr(record.random, score)
            if math.isfinite(value):
                found.append(value)
        return found

    def summary(self) -> dict[str, dict[str, tuple[float, float, int]]]:
        """method -> score -> (mean, standard deviation, number of inputs)."""
        table = {}
        for method in METHODS:
            table[method] = {}
            for score in SCORES:
                values = self.values(method, score) if self.records and method in self.records[0].scores else []
                spread = statistics.stdev(values) if len(values) > 1 else math.nan
                table[method][score] = (statistics.fmean(values) if values else math.nan, spread, len(values))
        return table

    def ig_converged(self) -> float:
        """The share of inputs whose integrated gradients are within the tolerance of completeness."""
        from explorer.faithfulness import IG_TOLERANCE

        return statistics.fmean(r.ig_error <= IG_TOLERANCE for r in self.records) if self.records else math.nan

    def seconds(self) -> tuple[float, float]:
        """Wall and CPU seconds of all the checks."""
        return (sum(sum(w for w, _ in r.seconds.values()) for r in self.records),
                sum(sum(c for _, c in r.seconds.values()) for r in self.records))


def survey(model, inputs, position: int = -1, layer: int | None = None, seed: int = 0, progress=None, stop=None,
           name: str = "", **options) -> Survey:
    """``compare_methods`` on each of ``inputs``; an input the check refuses is kept in ``refused`` with why."""
    found = Survey(name or getattr(model, "name", type(model).__name__))
    inputs = list(inputs)
    for i, text in enumerate(inputs):
        if progress is not None:
            progress(i / len(inputs), f"Input {i + 1} of {len(inputs)}…")
        try:
            found.records.append(compare_methods(model, text, position, layer, seed=seed, stop=stop, **options))
        except ValueError as error:
            if stop is not None and stop():
                raise
            found.refused.append((str(text)[:60], str(error)))
    return found


def markdown(found: Survey) -> str:
    """The summary as a Markdown table: methods down, scores across as mean ± standard deviation."""
    table = found.summary()
    head = "| method | " + " | ".join(SCORE_NAMES[s] for s in SCORES) + " |"
    lines = [head, "|" + "---|" * (len(SCORES) + 1)]
    for method, scores in table.items():
        cells = [f"{m:+.2f} ± {s:.2f}" if math.isfinite(s) else "–" for m, s, _ in scores.values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
