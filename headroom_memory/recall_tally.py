"""Recalls counted by this process since the store last changed.

A cached search answer holds the memories as they were read, recall counts
included. Recalls do not change the store's change token (they are
bookkeeping, not memories), so a cached answer outlives them; the tally
brings its counts up to date without reading the store: each answer keeps
the tally of its memories when it was cached, and a hit adds what was
counted since. Any change to the store gives a new token, which empties the
tally (every answer cached before it is stale anyway).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime

from .models import SearchResult, updated

__all__ = ["RecallTally", "Tallies"]

Tallies = tuple[int, ...]  # the tally of each result of one cached answer


class RecallTally:
    """Per memory id: how many recalls this process counted since ``token``,
    and when the last one was.

    :param kept: ids tallied at most; past it :meth:`count` returns False and
        the tally starts again (the caller must then drop its cached answers).
    """

    def __init__(self, kept: int = 100_000) -> None:
        self.kept = kept
        self._token: Hashable | None = None
        self._counts: dict[str, tuple[int, datetime]] = {}

    def follow(self, token: Hashable | None) -> None:
        """Start again when the store's change token is no longer the tallied one."""
        if token != self._token:
            self._token = token
            self._counts.clear()

    def tallies(self, results: Sequence[SearchResult]) -> Tallies:
        """The tally of each result's memory now (kept with a cached answer)."""
        return tuple(self._counts[r.memory.id][0] if r.memory.id in self._counts else 0 for r in results)

    def since(self, results: Sequence[SearchResult], then: Tallies) -> list[int]:
        """Recalls of each result's memory counted since the tally was ``then``."""
        counts = self._counts
        return [counts[r.memory.id][0] - before if r.memory.id in counts else 0 for r, before in zip(results, then)]

    def caught_up(self, results: Sequence[SearchResult], then: Tallies | None) -> list[SearchResult]:
        """``results`` cached when the tally was ``then``, their recall counts
        (and last recall times) brought up to date; as they are when ``then``
        is None (just read)."""
        if then is None:
            return list(results)
        current = []
        for result, missed in zip(results, self.since(results, then)):
            if missed:
                memory = updated(result.memory, access_count=result.memory.access_count + missed,
                                 last_accessed=self._counts[result.memory.id][1])
                result = updated(result, memory=memory)
            current.append(result)
        return current

    def count(self, memory_ids: Sequence[str], at: datetime) -> bool:
        """Tally one recall of each memory at ``at``; False (and the tally
        emptied) when it would hold more than ``kept`` ids. Nothing is tallied
        while the token is None: a store without one has no cached answers."""
        if self._token is None:
            return True
        for memory_id in memory_ids:
            self._counts[memory_id] = (self._counts.get(memory_id, (0, at))[0] + 1, at)
        if len(self._counts) > self.kept:
            self._counts.clear()
            return False
        return True
