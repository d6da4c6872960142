"""The exceptions headroom-memory raises.

Every error the library raises derives from one root, so callers can catch
broadly or narrowly::

    HeadroomMemoryError
    ├── ConfigurationError        a MemoryConfig or adapter set that cannot work
    ├── InvalidInputError         a bad argument to a public call (also a ValueError)
    ├── MemoryNotFoundError       an unknown id, or an id of another user (also a LookupError)
    ├── MemoryConflictError       a change that lost a race, e.g. superseding a closed memory
    ├── StorageError              the database failed (wraps sqlite3 / driver errors)
    ├── VectorIndexError          the vector index failed and could not be repaired
    ├── EmbedderError             the embedder failed (model load, HTTP, bad reply)
    └── MemoryClosedError         a call on a memory, facade or client that was closed

Adapters translate the errors of the libraries they wrap into these classes and
re-raise ``from`` the original, so no ``sqlite3.Error`` or ``httpx.HTTPError``
reaches a caller.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "EmbedderError",
    "HeadroomMemoryError",
    "InvalidInputError",
    "MemoryClosedError",
    "MemoryConflictError",
    "MemoryNotFoundError",
    "StorageError",
    "VectorIndexError",
]


class HeadroomMemoryError(Exception):
    """Root of every error raised by headroom-memory."""


class ConfigurationError(HeadroomMemoryError, ValueError):
    """Raised when a configuration or an adapter combination cannot work.

    Examples: a vector dimension that does not match the embedder, an unknown
    embedder backend, a database created with another embedding model.
    """


class InvalidInputError(HeadroomMemoryError, ValueError):
    """Raised when an argument of a public call is invalid; nothing is changed."""


class MemoryNotFoundError(HeadroomMemoryError, LookupError):
    """Raised when a memory id is unknown, or belongs to another user than the one given."""


class MemoryConflictError(HeadroomMemoryError):
    """Raised when a change conflicts with the stored state (for example the memory
    was already superseded, possibly by another process); nothing is changed."""


class StorageError(HeadroomMemoryError):
    """Raised when the database fails (I/O error, read-only file, disk full, corruption)."""


class VectorIndexError(HeadroomMemoryError):
    """Raised when the vector index fails and cannot be rebuilt from the store."""


class EmbedderError(HeadroomMemoryError):
    """Raised when the embedder fails: the model cannot load or a server answers badly."""


class MemoryClosedError(HeadroomMemoryError):
    """Raised when a memory, facade or wrapped client is used after ``close()``."""
