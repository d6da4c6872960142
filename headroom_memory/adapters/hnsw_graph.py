"""hnswlib graphs: creating, growing, querying, and saving them beside a checksummed sidecar.

Shared by the store-wide index and the per-user graphs of
:mod:`headroom_memory.adapters.hnsw_index`. A saved graph is trusted only if
its sidecar says it was written for the same store, dimension and contents
(checksum of the file); anything else is rebuilt by the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from ..errors import VectorIndexError

__all__ = ["GraphSettings", "add_rows", "add_to_graph", "load_graph", "nearest", "save_graph"]

logger = logging.getLogger("headroom_memory")

_FORMAT = 1


@dataclass(frozen=True)
class GraphSettings:
    """The shape of every graph of one index."""

    dimension: int
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 50

    def new_graph(self, capacity: int) -> hnswlib.Index:
        """An empty cosine graph with room for ``capacity`` vectors (it grows)."""
        graph = hnswlib.Index(space="cosine", dim=self.dimension)
        graph.init_index(max_elements=max(capacity, 1024), ef_construction=self.ef_construction, M=self.m)
        graph.set_ef(self.ef_search)
        return graph


def _sidecar(path: Path) -> Path:
    """Where the sidecar (JSON metadata) of a graph file lives."""
    return path.with_name(path.name + ".json")


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_to_graph(
    graph: hnswlib.Index, labels: list[int], vectors: np.ndarray[Any, Any], *, num_threads: int = -1
) -> None:
    """Add labelled vectors, growing the graph when it is full."""
    needed = graph.get_current_count() + len(labels)
    if needed > graph.get_max_elements():
        graph.resize_index(max(needed, graph.get_max_elements() * 2))
    graph.add_items(vectors, np.asarray(labels, dtype=np.uint64), num_threads=num_threads)


def add_rows(graph: hnswlib.Index, rows: list[tuple[int, bytes]], *, num_threads: int = -1) -> None:
    """Add stored rows, (label, float32 embedding bytes), as the store hands them out;
    VectorIndexError if an embedding's length is not the graph's dimension."""
    vectors = np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
    if vectors.shape[1] != graph.dim:
        raise VectorIndexError(f"stored embedding has {vectors.shape[1]} dimensions, expected {graph.dim}")
    add_to_graph(graph, [label for label, _ in rows], vectors, num_threads=num_threads)


def nearest(
    graph: hnswlib.Index, vector: np.ndarray[Any, Any], n: int, ef_search: int
) -> tuple[list[int], list[float]]:
    """The ``n`` nearest labels and their cosine similarities (ef raised to
    ``n``, then to ``4n`` if the graph gave fewer); RuntimeError if still fewer."""
    try:
        for ef in (max(ef_search, n), 4 * n):
            graph.set_ef(ef)
            try:
                labels, distances = graph.knn_query(vector, k=n, num_threads=1)
            except RuntimeError:
                continue
            return labels[0].tolist(), (1.0 - distances[0].astype(np.float64)).tolist()
        raise RuntimeError(f"the graph returned fewer than {n} neighbours")
    finally:
        graph.set_ef(ef_search)


def save_graph(graph: hnswlib.Index, path: Path, meta: dict[str, Any]) -> bool:
    """Write the graph and its sidecar (``meta`` plus count and checksum)
    atomically; False (and a warning) if the disk refused."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    meta_tmp = _sidecar(tmp)
    try:
        graph.save_index(str(tmp))
        full = {**meta, "format": _FORMAT, "count": graph.get_current_count(), "digest": _file_digest(tmp)}
        meta_tmp.write_text(json.dumps(full))
        os.replace(tmp, path)
        os.replace(meta_tmp, _sidecar(path))
        return True
    except OSError as exc:
        logger.warning("could not save the vector index to %s (%s); it will be rebuilt", path, exc)
        for leftover in (tmp, meta_tmp):
            leftover.unlink(missing_ok=True)
        return False


def load_graph(
    path: Path, expected: dict[str, Any], settings: GraphSettings
) -> tuple[hnswlib.Index, dict[str, Any]] | None:
    """The saved graph and its sidecar if the sidecar holds ``expected`` and
    matches the file; None if missing or not to be trusted."""
    meta_path = _sidecar(path)
    if not path.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if (
            not isinstance(meta, dict)
            or meta.get("format") != _FORMAT
            or any(meta.get(key) != value for key, value in expected.items())
            or meta.get("digest") != _file_digest(path)
        ):
            return None
        graph = hnswlib.Index(space="cosine", dim=settings.dimension)
        graph.load_index(str(path), max_elements=int(meta["count"]) + 1024)
        graph.set_ef(settings.ef_search)
        if graph.get_current_count() != int(meta["count"]):
            return None
        return graph, meta
    except (OSError, ValueError, KeyError, RuntimeError, TypeError):
        return None
