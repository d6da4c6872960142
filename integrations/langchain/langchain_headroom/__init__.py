"""LangChain integration of headroom-memory."""

from .chat_history import HeadroomChatMessageHistory
from .output_parsers import HeadroomMemoryOutputParser
from .retrievers import HeadroomRetriever
from .runnables import RunnableWithMemory

__all__ = [
    "HeadroomChatMessageHistory",
    "HeadroomMemoryOutputParser",
    "HeadroomRetriever",
    "RunnableWithMemory",
]
