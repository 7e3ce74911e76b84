"""The user's own language model, reached over the OpenAI-compatible chat API (Ollama, llama.cpp's
server, vLLM, LM Studio, a hosted endpoint): the ``LLMClient`` interface (``base``), the real client
(``openai_compatible``) and a scripted fake for tests (``fake``). What is asked and what is done with
the reply lives in the query stage (``rag.query.generate``)."""

from .base import ChatMessage, LLMClient
from .fake import ScriptedLLM

__all__ = ["ChatMessage", "LLMClient", "OpenAICompatibleClient", "ScriptedLLM"]


def __getattr__(name: str):
    # the openai package takes ~0.5 s to import: only a configured language model pays for it
    if name == "OpenAICompatibleClient":
        from .openai_compatible import OpenAICompatibleClient

        return OpenAICompatibleClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
