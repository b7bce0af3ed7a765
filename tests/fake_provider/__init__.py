"""The shared fake LLM provider (OpenAI + Anthropic wire formats); see server.py."""
from .server import DEFAULT_TEXT, DEFAULT_USAGE, FakeProvider

__all__ = ["DEFAULT_TEXT", "DEFAULT_USAGE", "FakeProvider"]
