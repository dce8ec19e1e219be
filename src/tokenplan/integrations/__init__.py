"""Hooks into tools that already see every LLM call (LiteLLM)."""
