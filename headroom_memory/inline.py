"""One request's memory round trip, shared by with_memory and the integrations.

``prepare`` finds the memories the identity sees that match the user's last
message and builds the system text to add (the memories as inert data, plus the
extraction instruction). ``absorb`` stores the items of the reply's blocks for
the configured identity only: a block never chooses the user, and may only
supersede memories that were injected in this request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine import HierarchicalMemory
from .errors import HeadroomMemoryError
from .extraction import ExtractedMemory, format_memories, memory_instruction, parse_blocks
from .models import Memory, ScopeLevel
from .validation import check_positive_int, check_similarity
from .views import Identity

__all__ = ["InlineMemory", "Prepared", "last_user_text"]

logger = logging.getLogger("headroom_memory")


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (text parts joined), or ''."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, Sequence):
                return " ".join(
                    part.get("text", "") for part in content
                    if isinstance(part, Mapping) and part.get("type") == "text"
                )
            return ""
    return ""


@dataclass(frozen=True)
class Prepared:
    """What to add to one request: the system text, and the handles it named."""

    system_text: str
    handles: dict[str, str] = field(default_factory=dict)
    injected: tuple[Memory, ...] = ()


class InlineMemory:
    """Inject-and-extract for one identity over a :class:`HierarchicalMemory`.

    :param top_k: memories injected at most per request.
    :param min_similarity: memories less similar to the user's message are not injected.
    :param max_injected_chars: budget for the injected memories; the lowest
        ranked are dropped first, never cut in half.
    """

    def __init__(
        self,
        engine: HierarchicalMemory,
        identity: Identity,
        *,
        top_k: int = 5,
        min_similarity: float = 0.1,
        max_injected_chars: int = 2000,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.top_k = check_positive_int(top_k, "top_k")
        self.min_similarity = check_similarity(min_similarity)
        self.max_injected_chars = check_positive_int(max_injected_chars, "max_injected_chars")
        self._instructions: dict[bool, str] = {}  # by extract, for _instructions_for
        self._instructions_for = identity

    @property
    def allowed_scopes(self) -> list[ScopeLevel]:
        """The levels a block may write at: those whose ids the identity has."""
        scopes = [ScopeLevel.USER]
        if self.identity.session_id is not None:
            scopes.append(ScopeLevel.SESSION)
        if self.identity.agent_id is not None:
            scopes.append(ScopeLevel.AGENT)
        if self.identity.turn_id is not None:
            scopes.append(ScopeLevel.TURN)
        return scopes

    def _instruction(self, extract: bool) -> str:
        """:func:`memory_instruction` for this identity, built once."""
        if self._instructions_for is not self.identity:
            self._instructions_for, self._instructions = self.identity, {}
        text = self._instructions.get(extract)
        if text is None:
            text = self._instructions[extract] = memory_instruction(self.allowed_scopes, extract=extract)
        return text

    async def prepare(self, query: str, *, extract: bool = True) -> Prepared:
        """Recall what matches ``query`` and build the system text to add."""
        i = self.identity
        recalled: list[Memory] = []
        if query.strip():
            recalled = await self.engine.recall(query, i.user_id, i.session_id, i.agent_id, i.turn_id,
                                                top_k=self.top_k, min_similarity=self.min_similarity)
        injected: list[Memory] = []
        seen: set[str] = set()
        used = 0
        for memory in recalled:
            key = " ".join(memory.content.lower().split())
            if key in seen or used + len(memory.content) > self.max_injected_chars:
                continue
            seen.add(key)
            used += len(memory.content)
            injected.append(memory)
        section, handles = format_memories(injected)
        text = f"{self._instruction(extract)}\n\n{section}"
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("injecting %d memories for %s: %s", len(injected), i.user_id, [m.content for m in injected])
        return Prepared(text, handles, tuple(injected))

    async def absorb(self, blocks: Sequence[str], prepared: Prepared) -> list[Memory]:
        """Store the valid items of ``blocks``; returns what was stored."""
        items = parse_blocks(blocks)
        stored: list[Memory] = []
        for item in items:
            try:
                memory = await self._store(item, prepared)
            except HeadroomMemoryError as exc:
                logger.warning("memory item dropped: %s", exc)
                continue
            if memory is not None:
                stored.append(memory)
        if items:
            logger.debug("extracted %d memories for %s: %s", len(stored), self.identity.user_id,
                         [m.content for m in stored])
        return stored

    async def _store(self, item: ExtractedMemory, prepared: Prepared) -> Memory | None:
        i = self.identity
        if item.scope not in self.allowed_scopes:
            logger.warning("memory item dropped: scope %r needs an id this client was not given",
                           item.scope.value)
            return None
        if item.supersedes is not None:
            target = prepared.handles.get(item.supersedes)
            if target is None:
                logger.warning("memory item 'supersedes' %r names no injected memory; stored as new",
                               item.supersedes[:40])
            else:
                return await self.engine.supersede(target, item.content, user_id=i.user_id,
                                                   category=item.category, importance=item.importance)
        return await self.engine.add(item.content, i.user_id, i.session_id, i.agent_id, i.turn_id,
                                     category=item.category, importance=item.importance, scope=item.scope,
                                     metadata={"source": "inline"})
