"""LlamaIndex memory backed by headroom-memory."""

from .base import HeadroomMemory
from .block import HeadroomMemoryBlock
from .llm import HeadroomLLM

__all__ = ["HeadroomLLM", "HeadroomMemory", "HeadroomMemoryBlock"]
