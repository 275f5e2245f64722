"""llm stage: the only code that talks to models (client, SQLite cache/log, prices, bundled local server)."""

from personagen.llm.client import BudgetExceeded, ChatRequest, ChatResult, LLMClient

__all__ = ["LLMClient", "ChatRequest", "ChatResult", "BudgetExceeded"]
