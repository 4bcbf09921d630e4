"""Gemini Embedding 2 through google-genai: the embedder, media checks, retry, circuit breaker and prices."""
