"""A bundled public-domain text cut into sentences: the inputs of the faithfulness corpus run.

The text is Chapter I of Lewis Carroll's *Alice's Adventures in Wonderland* (1865), in Project Gutenberg's
transcription (eBook #11); ``explorer/data/texts/README.md`` says where it comes from.
"""

from __future__ import annotations

import re
from pathlib import Path

TEXT = Path(__file__).with_name("texts") / "alice_chapter_1.txt"
SOURCE = ("Lewis Carroll, Alice's Adventures in Wonderland (1865), Chapter I, in Project Gutenberg's transcription "
          "(eBook #11); public domain")
SENTENCE_END = re.compile(r"[.!?][’”)]*(?=\s+[‘“(A-Z]|\s*$)")  # a stop, its closing quotes, then a new start
CLAUSE_END = re.compile(r"[;:](?=\s)")


def sentences(min_words: int = 6, max_words: int = 24) -> list[str]:
    """The chapter's sentences in order, of ``min_words`` to ``max_words`` words; a longer sentence gives its
    clauses (cut after ';' and ':') that are of that length."""
    paragraphs = TEXT.read_text(encoding="utf-8").split("\n\n")[1:]  # after the chapter's title
    found = []
    for paragraph in paragraphs:
        for sentence in _pieces(paragraph, SENTENCE_END):
            found.extend(_pieces(sentence, CLAUSE_END) if len(sentence.split()) > max_words else [sentence])
    return [s for s in found if min_words <= len(s.split()) <= max_words]


def _pieces(text: str, ends: re.Pattern) -> list[str]:
    pieces, start = [], 0
    for end in ends.finditer(text):
        pieces.append(text[start:end.end()].strip())
        start = end.end()
    if text[start:].strip():
        pieces.append(text[start:].strip())
    return pieces
