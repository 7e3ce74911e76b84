"""Split documents into retrieval chunks sized in the model's own tokens, with exact offsets."""

from __future__ import annotations

from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .clean import sections
from .types import Chunk, Document

# Paragraphs first, then lines, then sentences, then clauses, then words.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "… ", "; ", ": ", ", ", " ", ""]


def make_splitter(chunk_tokens: int, overlap_tokens: int, count_tokens: Callable[[str], int]):
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
    spans = sections(doc.text, doc.title, clean=clean) or sections(doc.text, doc.title, clean=False)
    for section in spans:
        body = doc.text[section.start : section.end]
        cursor = 0
        for piece in splitter.split_text(body):
            local = body.find(piece, cursor)
            if local < 0:  # overlap can move the match before the cursor
                local = body.find(piece)
            if local < 0:
                raise AssertionError(f"chunker lost the offset of a piece of {doc.source}")
            start = section.start + local
            chunks.append(
                Chunk(
                    id=first_id + len(chunks),
                    source=doc.source,
                    text=piece,
                    start=start,
                    end=start + len(piece),
                    title=section.title,
                )
            )
            cursor = local + 1
    return chunks


def embedding_text(chunk: Chunk, with_title: bool) -> str:
    """What the model sees for a chunk: its title as context (when it adds anything), then the text."""
    if with_title and chunk.title and chunk.title not in chunk.text:
        return f"{chunk.title}\n{chunk.text}"
    return chunk.text
