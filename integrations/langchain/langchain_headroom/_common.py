"""Helpers shared by the LangChain classes: messages in, clean output out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig

from headroom_memory import Identity, InvalidInputError, SyncMemory
from headroom_memory.extraction import BlockFilter, split_reply
from headroom_memory.inline import Prepared

__all__ = [
    "clean_output",
    "filter_chunk",
    "identity_from_config",
    "inject",
    "last_human_text",
    "open_memory",
    "to_messages",
]


def open_memory(memory: SyncMemory | None, db_path: str | None) -> SyncMemory:
    """The given memory, or one opened at ``db_path`` (the caller then owns it)."""
    if memory is not None:
        if not isinstance(memory, SyncMemory):
            raise InvalidInputError(f"memory must be a headroom_memory.SyncMemory, got {type(memory).__name__}")
        return memory
    from headroom_memory import MemoryConfig

    return SyncMemory(MemoryConfig(db_path=db_path or "headroom_memory.db"))


def identity_from_config(config: RunnableConfig | None, owner: str) -> Identity:
    """The identity in ``config["configurable"]``; ``user_id`` is required."""
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    user_id = configurable.get("user_id")
    if not user_id:
        raise InvalidInputError(
            f"{owner} needs config['configurable']['user_id'], e.g. "
            "chain.invoke(..., config={'configurable': {'user_id': 'alice', 'session_id': 's1'}})"
        )
    return Identity(user_id, configurable.get("session_id") or None, configurable.get("agent_id") or None)


def to_messages(value: Any) -> list[BaseMessage]:
    """Messages from what a chat model accepts: a string, a PromptValue, a message list."""
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return [HumanMessage(content=value)]
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, Sequence):
        return list(convert_to_messages(value))
    raise InvalidInputError(
        f"RunnableWithMemory takes a string, a PromptValue or a list of messages, got {type(value).__name__}"
    )


def last_human_text(messages: Sequence[BaseMessage]) -> str:
    """The text of the last human message ('' if none)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text if isinstance(message.text, str) else str(message.text())
    return ""


def inject(messages: list[BaseMessage], prepared: Prepared) -> list[BaseMessage]:
    """The messages with the memory system message after the leading system messages."""
    if not prepared.system_text:
        return messages
    position = 0
    while position < len(messages) and isinstance(messages[position], SystemMessage):
        position += 1
    return [*messages[:position], SystemMessage(content=prepared.system_text), *messages[position:]]


def clean_output(output: Any) -> tuple[Any, list[str]]:
    """(output without blocks, the blocks) for a message or a string; others pass."""
    if isinstance(output, str):
        return split_reply(output)
    if isinstance(output, BaseMessage) and isinstance(output.content, str):
        clean, blocks = split_reply(output.content)
        return output.model_copy(update={"content": clean}), blocks
    return output, []


def filter_chunk(chunk: Any, block_filter: BlockFilter) -> Any:
    """A stream chunk (string or message chunk) with block text removed."""
    if isinstance(chunk, str):
        return block_filter.feed(chunk)
    if isinstance(chunk, BaseMessage) and isinstance(chunk.content, str):
        return chunk.model_copy(update={"content": block_filter.feed(chunk.content)})
    return chunk


def tail_chunk(sample: Any, text: str) -> Any:
    """A chunk like ``sample`` carrying ``text`` (held back until the stream ended)."""
    if isinstance(sample, BaseMessage):
        return sample.model_copy(update={"content": text})
    return text
