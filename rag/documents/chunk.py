"""Split documents into retrieval chunks sized in the model's own tokens, with exact offsets."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..types import Chunk, Document
from .clean import Section, sections

# Bump when this module or clean.py changes where chunks or sentences start and end: the manifest
# records it with the chunking settings, so an index built by older code is rebuilt, not quoted
# with stale sentence spans (2: an image file name glued to the next word ends a sentence; 3: documents of
# every format, read by the reader of their kind, whose extracted text the build stores).
CHUNKER_VERSION = 3

# A sentence ends at . ! ? … (optionally closed by a quote or bracket) before white space, or at a line break.
# An image file name glued to the text that follows it ("pigeon.jpgJe ne sais pas...", left by
# copying a web page) ends a "sentence" too, so that no quote starts with a file name.
_IMAGE_NAME_END = r"(?:(?<=\.(?i:jpg|png|gif))|(?<=\.(?i:jpeg)))(?=[^\s.,;:)\]])"
_SENTENCE_END = re.compile(r"(?<=[.!?…])(?:[\u00a0 ]?[»”\"')\]])?\s+|\n+|" + _IMAGE_NAME_END)
MIN_CHUNK_TOKENS = 24  # shorter pieces (headings, captions) join their neighbour
MAX_SENTENCES_PER_CHUNK = 1023  # sentence vector ids are chunk_id * 1024 + position
# Paragraphs first, then lines, then sentences, then clauses, then words.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "… ", "; ", ": ", ", ", " ", ""]


def make_splitter(chunk_tokens: int, overlap_tokens: int, count_tokens: Callable[[str], int]):
    # imported here: only a build splits text, and a question should not pay for the import
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        length_function=count_tokens,
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_document(
    doc: Document,
    *,
    chunk_tokens: int,
    overlap_tokens: int,
    count_tokens: Callable[[str], int],
    first_id: int,
    clean: bool = True,
) -> list[Chunk]:
    """Chunks of ``doc`` with ids from ``first_id``; ``doc.text[c.start:c.end] == c.text`` for each."""
    splitter = make_splitter(chunk_tokens, overlap_tokens, count_tokens)
    chunks: list[Chunk] = []
    for section in _sections(doc, clean):
        for start, end in _pieces(doc.text, section.start, section.end, splitter, count_tokens):
            piece = doc.text[start:end]
            chunks.append(
                Chunk(
                    id=first_id + len(chunks),
                    source=doc.source,
                    text=piece,
                    start=start,
                    end=end,
                    title=section.title,
                    sentences=tuple(split_sentences(piece)[:MAX_SENTENCES_PER_CHUNK]),
                )
            )
    return chunks


def _sections(doc: Document, clean: bool) -> list[Section]:
    """clean.py's sections; without cleaning, the parts between the headings the reader marked."""
    spans = sections(doc.text, doc.title, clean=clean) or sections(doc.text, doc.title, clean=False)
    if clean or not doc.breaks:
        return spans
    cuts = [0, *sorted({b for b in doc.breaks if 0 < b < len(doc.text)}), len(doc.text)]
    parts = [(a, b) for a, b in zip(cuts, cuts[1:]) if doc.text[a:b].strip()]
    return [Section(a, a + len(doc.text[a:b].rstrip()), doc.title) for a, b in parts]


def _pieces(text: str, start: int, end: int, splitter, count_tokens) -> list[tuple[int, int]]:
    """Absolute (start, end) of the splitter's pieces of ``text[start:end]``; a piece too short
    to stand alone (a heading) is joined to the next one, or to the previous one at the end."""
    body = text[start:end]
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in splitter.split_text(body):
        local = body.find(piece, cursor)
        if local < 0:  # overlap can move the match before the cursor
            local = body.find(piece)
        if local < 0:
            raise AssertionError("the chunker lost the offset of a piece")
        spans.append((start + local, start + local + len(piece)))
        cursor = local + 1
    merged: list[tuple[int, int]] = []
    pending: int | None = None
    for a, b in spans:
        if pending is not None:
            a, pending = pending, None
        if count_tokens(text[a:b]) < MIN_CHUNK_TOKENS:
            pending = a
            continue
        merged.append((a, b))
    if pending is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((pending, spans[-1][1]))
    return merged


def embedding_text(title: str, text: str, with_title: bool) -> str:
    """What the model sees: the title as context (when it adds anything), then the text."""
    if with_title and title and title not in text:
        return f"{title}\n{text}"
    return text


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text``, white space trimmed."""
    spans = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.start() + len(m.group(0).rstrip())))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out
