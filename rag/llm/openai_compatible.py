"""A client of any OpenAI-compatible chat server, over the official ``openai`` package.

Errors come out as ``LLMError`` with a message for people that names the server by host only: a URL
may carry credentials, and the API key is never part of a message, a log line or a repr."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import openai

from ..errors import LLMError, LLMTimeoutError
from .base import ChatMessage

log = logging.getLogger(__name__)
# Local servers ignore the key, but the client insists on one; this is what it sends then.
NO_KEY = "no-key"
MAX_REPLY_TOKENS = 512  # a short answer; also bounds how long a runaway model can stream
TEMPERATURE = 0.0  # the same passages and question give the same answer where the server allows it


class OpenAICompatibleClient:
    """Chat completions from ``base_url`` (e.g. ``http://127.0.0.1:11434/v1`` for Ollama) with ``model``.
    ``timeout`` (seconds) bounds the connection, each wait for data and the whole reply."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 60.0) -> None:
        self.model = model
        self.timeout = float(timeout)
        self._where = _host(base_url)
        # no retries: a failing server costs one timeout at most, then the quoted answer is shown
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, timeout=self.timeout, max_retries=0
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient(host={self._where!r}, model={self.model!r}, timeout={self.timeout:g})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatibleClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        try:
            response = self._create(messages, stream=False)
            content = response.choices[0].message.content if response.choices else None
        except Exception as exc:  # noqa: BLE001 - every failure becomes an LLMError below
            raise self._error(exc) from None
        if not isinstance(content, str):
            raise LLMError(f"the language model at {self._where} sent a reply without text")
        return content

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        deadline = time.monotonic() + self.timeout
        try:
            chunks = self._create(messages, stream=True)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        received = 0
        try:
            for chunk in chunks:
                received += 1
                if time.monotonic() > deadline:
                    # a server that trickles tokens never trips the read timeout
                    raise LLMTimeoutError(self._timeout_message())
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    yield piece
            if not received:  # not a stream of completion chunks at all
                raise LLMError(f"the reply of the language model at {self._where} could not be read")
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from None
        finally:
            chunks.close()

    def _create(self, messages: Sequence[ChatMessage], stream: bool):
        return self._client.chat.completions.create(
            model=self.model,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            temperature=TEMPERATURE,
            max_tokens=MAX_REPLY_TOKENS,
            stream=stream,
        )

    def _timeout_message(self) -> str:
        return f"the language model at {self._where} did not answer within {self.timeout:g} s"

    def _error(self, exc: Exception) -> LLMError:
        """A message for people; the details (never the key: it is not in them) go to the debug log."""
        log.debug("language model call failed: %s: %s", type(exc).__name__, exc)
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeoutError(self._timeout_message())
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return LLMError(f"the language model at {self._where} refused the API key (HTTP {exc.status_code})")
        if isinstance(exc, openai.NotFoundError):
            return LLMError(
                f"the language model at {self._where} does not know the model {self.model!r} or the URL "
                "is not an OpenAI-compatible /v1 address (HTTP 404)"
            )
        if isinstance(exc, openai.APIStatusError):
            return LLMError(f"the language model at {self._where} answered with an error (HTTP {exc.status_code})")
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"the language model at {self._where} cannot be reached")
        if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError | AttributeError
                      | IndexError | TypeError):
            return LLMError(f"the reply of the language model at {self._where} could not be read")
        return LLMError(f"the language model at {self._where} failed ({type(exc).__name__})")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
