"""What one added document may cost the model per MB of its bytes.

The five seeds give ~1,360 passages and ~7,900 sentences per MB; 2 MB of one repeated word gave ~2,400
passages per MB, each embedded twice at the full 256 tokens (35 minutes of indexing on two cores). A
passage's sentences partition it, so passages per MB bound the model's work per MB, and the time to index
a document grows with its size."""

from __future__ import annotations

from ..errors import InvalidDocumentError
from ..types import Chunk

MAX_CHUNKS_PER_MB = 2_000
MAX_SENTENCES_PER_MB = 50_000  # each text costs a little beyond its tokens
COST_FLOOR_BYTES = 64_000  # a shorter document is allowed what a document of this size is


def check_cost(source: str, size: int, chunks: list[Chunk]) -> None:
    """Refuse (InvalidDocumentError) a document of ``size`` bytes that splits into ``chunks`` when that is
    more per MB than ordinary text gives: repeated or generated text."""
    megabytes = max(size, COST_FLOOR_BYTES) / 1e6
    sentences = sum(len(c.sentences) for c in chunks)
    if len(chunks) > MAX_CHUNKS_PER_MB * megabytes:
        raise InvalidDocumentError(
            f"{source} splits into {len(chunks):,} passages ({len(chunks) / megabytes:,.0f} per MB); "
            f"ordinary text gives fewer than {MAX_CHUNKS_PER_MB:,} per MB, and this much would take too long "
            "to index (repeated or generated text?)"
        )
    if sentences > MAX_SENTENCES_PER_MB * megabytes:
        raise InvalidDocumentError(
            f"{source} holds {sentences:,} sentences ({sentences / megabytes:,.0f} per MB), more than the "
            f"{MAX_SENTENCES_PER_MB:,} per MB that can be indexed in reasonable time"
        )
