"""Restatements among the memories of one ``add_many`` call.

The memories kept so far are grouped by node and category. A batch is compared
with them (and its own earlier items) before its items are walked in order:
one matrix product per group and batch, not one per item. A product per item
read the group's whole matrix every time, and each was a call numpy's BLAS may
spread over its threads, beside the embedder working on the next batch (2,000
texts: 2,000 products against 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dedup import is_near_duplicate, normalise
from .models import Memory

__all__ = ["BatchRestatements"]

_ROWS_AT_ONCE = 64  # a batch's rows compared at a time: bounds the similarity matrix held


def _group_key(memory: Memory) -> tuple[Any, ...]:
    return (memory.user_id, memory.scope, memory.session_id, memory.agent_id, memory.turn_id, memory.category)


class BatchRestatements:
    """The memories an import kept, to find which later items restate one.

    Per batch: :meth:`compare` the batch, then for each item in order
    :meth:`find` its twin (an earlier kept memory it restates, or None) and
    :meth:`keep` it when it was stored. An item is only ever matched with
    memories kept before it, exactly as if each were compared on its own.
    """

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._groups: dict[tuple[Any, ...], _VectorGroup] = {}
        self._texts: dict[tuple[Any, ...], Memory] = {}
        self._batch: list[Memory] = []
        self._kept: list[bool] = []
        self._near: list[_Near | None] = []

    def compare(self, batch: Sequence[Memory]) -> None:
        """Note, for each of ``batch`` (embeddings set), the kept memories and
        earlier batch items at least ``threshold`` similar to it."""
        self._batch, self._kept = list(batch), [False] * len(batch)
        self._near = [None] * len(batch)
        places: dict[tuple[Any, ...], list[int]] = {}
        for place, memory in enumerate(self._batch):
            if memory.embedding is not None:
                places.setdefault(_group_key(memory), []).append(place)
        for key, group_places in places.items():
            vectors = np.stack([np.asarray(self._batch[p].embedding, dtype=np.float32) for p in group_places])
            group = self._groups.get(key)
            before = 0 if group is None else len(group.members)
            others = vectors if group is None else np.vstack([group.matrix(), vectors])
            for start in range(0, len(group_places), _ROWS_AT_ONCE):
                sims = vectors[start : start + _ROWS_AT_ONCE] @ others.T
                for row, place in zip(sims, group_places[start : start + _ROWS_AT_ONCE]):
                    columns = np.flatnonzero(row >= self._threshold)
                    self._near[place] = _Near(before, group_places, columns.tolist(), row[columns].tolist())

    def find(self, place: int) -> Memory | None:
        """The kept memory that item ``place`` of the compared batch restates, if any."""
        memory = self._batch[place]
        key = _group_key(memory)
        same_text = self._texts.get((*key, normalise(memory.content)))
        near = self._near[place]
        if same_text is not None or near is None:
            return same_text
        group = self._groups.get(key)
        for column, similarity in zip(near.columns, near.similarities):
            if column < near.before:
                assert group is not None
                candidate = group.members[column]
            else:
                other = near.batch_places[column - near.before]
                if other >= place:
                    break  # the item itself and the ones after it
                if not self._kept[other]:
                    continue
                candidate = self._batch[other]
            if is_near_duplicate(memory.content, candidate.content, similarity, self._threshold):
                return candidate
        return None

    def keep(self, place: int) -> None:
        """Item ``place`` of the compared batch was stored: later items may restate it."""
        memory = self._batch[place]
        self._kept[place] = True
        key = _group_key(memory)
        if memory.embedding is not None:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _VectorGroup(len(memory.embedding))
            group.append(memory, memory.embedding)
        self._texts.setdefault((*key, normalise(memory.content)), memory)


@dataclass(slots=True)
class _Near:
    """One item's similar candidates: column < ``before`` is a kept memory of
    its group, else the batch item ``batch_places[column - before]``."""

    before: int
    batch_places: list[int]
    columns: list[int]
    similarities: list[float]


class _VectorGroup:
    """Memories and their vectors in a matrix that grows by doubling (no re-stacking per item)."""

    def __init__(self, dimension: int) -> None:
        self.members: list[Memory] = []
        self._matrix = np.empty((16, dimension), dtype=np.float32)

    def append(self, memory: Memory, vector: np.ndarray[Any, Any]) -> None:
        if len(self.members) == len(self._matrix):
            self._matrix = np.vstack([self._matrix, np.empty_like(self._matrix)])
        self._matrix[len(self.members)] = vector
        self.members.append(memory)

    def matrix(self) -> np.ndarray[Any, Any]:
        """The members' vectors, one row each."""
        return self._matrix[: len(self.members)]
