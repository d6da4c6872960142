"""LangChain integration of headroom-memory.

``HeadroomMemoryMiddleware`` (LangChain 1.x agents) and ``HeadroomStore``
(LangGraph) need the optional ``langchain`` / ``langgraph`` packages
(``pip install 'langchain-headroom[agents]'``); they are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from .chat_history import HeadroomChatMessageHistory
from .output_parsers import HeadroomMemoryOutputParser
from .retrievers import HeadroomRetriever
from .runnables import RunnableWithMemory

if TYPE_CHECKING:
    from .agent_middleware import HeadroomMemoryMiddleware
    from .store import HeadroomStore

__all__ = [
    "HeadroomChatMessageHistory",
    "HeadroomMemoryMiddleware",
    "HeadroomMemoryOutputParser",
    "HeadroomRetriever",
    "HeadroomStore",
    "RunnableWithMemory",
]

_OPTIONAL = {"HeadroomMemoryMiddleware": "agent_middleware", "HeadroomStore": "store"}


def __getattr__(name: str) -> Any:
    """Import the classes that need ``langchain``/``langgraph`` only when asked for."""
    module = _OPTIONAL.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        imported = __import__(f"{__name__}.{module}", fromlist=[name])
    except ImportError as exc:
        raise ImportError(
            f"{name} needs the optional packages 'langchain' and 'langgraph': "
            "pip install 'langchain-headroom[agents]'"
        ) from exc
    return getattr(imported, name)
