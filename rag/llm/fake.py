"""A scripted language model for tests of our own logic: it replies what it was given, in order."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from .base import ChatMessage


class ScriptedLLM:
    """Replies with ``replies`` one after the other (an exception in the list is raised instead) and
    keeps every conversation it was sent in ``calls``."""

    def __init__(self, replies: Sequence[str | Exception], model: str = "scripted") -> None:
        self.model = model
        self._replies = list(replies)
        self.calls: list[tuple[ChatMessage, ...]] = []

    def _next(self, messages: Sequence[ChatMessage]) -> str:
        self.calls.append(tuple(messages))
        if not self._replies:
            raise AssertionError("the scripted language model was asked more often than scripted")
        reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        return self._next(messages)

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        # word by word, spaces kept, as a server streams tokens
        yield from re.findall(r"\S+\s*|\s+", self._next(messages))
