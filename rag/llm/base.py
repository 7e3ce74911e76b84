"""The interface every language model client offers: one chat completion, whole or as it comes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@runtime_checkable
class LLMClient(Protocol):
    model: str

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        """The whole reply; raises ``LLMError`` (``LLMTimeoutError`` past the client's timeout)."""
        ...

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """The reply in pieces as the model writes them; raises like ``complete``, possibly midway."""
        ...
