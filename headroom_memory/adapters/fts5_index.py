"""The default TextIndex: SQLite FTS5 in the store's own database file."""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Hashable

from ..fts import fts_expression, query_terms
from ..ports import VectorFilter
from .sqlite_store import SQLiteMemoryStore

__all__ = ["FTS5TextIndex"]

COMMON_SHARE = 0.1  # a term in more than this share of all memories is common ...
FREQUENT_SHARE = 0.01  # ... in more than this share, frequent ...
COMMON_FLOOR = 5_000  # ... if it is also in more than this many (shorter posting lists cost little)
RARE_ROWS = 1_000  # terms in at most this many rows (all users) ...
USER_ROWS_PER_TERM_ROW = 64  # ... are matched in every user's rows if the user has this many times more
_COUNTS_SECONDS = 300.0  # how long a counted posting list (or the store's size) is trusted
_COUNTS_KEPT = 50_000


class FTS5TextIndex:
    """BM25 keyword search over the rows of a :class:`SQLiteMemoryStore`.

    The FTS5 table is kept by triggers in the same transaction as the rows, so
    it can never disagree with them. User text is turned into quoted terms
    (see :func:`headroom_memory.fts.fts_query`) and never reaches MATCH raw.

    FTS5's bm25() reads the whole posting list of every phrase of the query to
    weigh it, the user's own included, and looks up the length of every
    matching row; three plans keep that cheap in large stores, all decided on
    posting-list lengths counted (capped) and kept for five minutes:

    - Common terms are left out, as in Lucene's common-terms query: a term in
      more than ``COMMON_SHARE`` of a large store's memories (and more than
      ``COMMON_FLOOR`` of them) has an inverse document frequency near zero,
      so it barely moves BM25. A query made only of common terms treats
      them as frequent (below).
    - Frequent terms (more than ``FREQUENT_SHARE`` and ``COMMON_FLOOR``) do not
      drive the BM25 ranking either: the memories matching the query's other
      terms are ranked by BM25 on those, and only if they are too few do the
      reader's newest memories matching a frequent term follow, unranked (all
      with score 0). Ranking them would cost one row-length lookup per match,
      tens of thousands for a large user, for terms that weigh little.
    - Rare terms (``RARE_ROWS`` rows in all, across users) of a user with many
      times more rows are matched in every user's rows and filtered to the
      reader's, instead of being intersected with the user's long posting list.
      The scores are the same.

    A term no memory holds is left out of the MATCH (it would weigh nothing,
    and FTS5 would still look it up), and a query of such terms alone is not
    run at all; the terms a query needs counted are counted in one statement.
    """

    def __init__(self, store: SQLiteMemoryStore) -> None:
        self._store = store
        # (kind, name) -> (count, cap, when counted, the store's change token then)
        self._counts: OrderedDict[tuple[str, str], tuple[int, int, float, Hashable | None]] = OrderedDict()

    async def search(
        self, query: str, flt: VectorFilter, limit: int, *, token: Hashable | None = None
    ) -> list[tuple[int, float]]:
        """(label, score) of visible memories matching any term of ``query``, best first.
        ``token`` is the store's change token as the search began (see :meth:`_term_counts`)."""
        terms = query_terms(query) if isinstance(query, str) else []
        if not terms:
            return []
        rows = await self._term_counts(terms, COMMON_FLOOR + 1, token)
        frequent_above = common_above = COMMON_FLOOR
        if any(count > COMMON_FLOOR for count in rows.values()):  # only then does the store's size matter
            size = await self._counted("store", "", sys.maxsize)  # its highest label: about its size
            frequent_above = max(COMMON_FLOOR, int(FREQUENT_SHARE * size))
            common_above = max(COMMON_FLOOR, int(COMMON_SHARE * size))
            rows = await self._term_counts(terms, common_above + 1, token)
        present = [term for term in terms if rows[term] > 0]  # the others match nothing and weigh nothing
        ranked = [term for term in present if rows[term] <= frequent_above]
        frequent = [term for term in present if frequent_above < rows[term] <= common_above]
        if not ranked and not frequent:
            frequent = present
        hits: list[tuple[int, float]] = []
        if ranked:
            matched = sum(rows[term] for term in ranked)
            all_users = matched <= RARE_ROWS and await self._counted(
                "user", flt.user_id, USER_ROWS_PER_TERM_ROW * RARE_ROWS + 1
            ) > USER_ROWS_PER_TERM_ROW * matched
            hits = await self._store.text_search(fts_expression(ranked), flt, limit, all_users=all_users)
        if frequent and len(hits) < limit:
            found = {label for label, _ in hits}
            newest = await self._store.newest_text_matches(fts_expression(frequent), flt, limit)
            hits += [hit for hit in newest if hit[0] not in found][: limit - len(hits)]
        return hits

    async def optimize(self) -> None:
        """Merge the index into one segment: each term is then looked up once,
        not once per segment (see :meth:`SQLiteMemoryStore.merge_text_index`)."""
        await self._store.merge_text_index()

    async def _term_counts(self, terms: list[str], cap: int, token: Hashable | None) -> dict[str, int]:
        """Rows holding each term, counted up to ``cap``; those not kept are
        counted in one statement. A term no row held is left out of the search,
        so its count of 0 is trusted only under the store's change token it
        was counted under (a memory added since may hold it)."""
        now = time.monotonic()
        counts = {term: self._kept(("term", term), cap, now, token) for term in terms}
        missing = [term for term, count in counts.items() if count is None]
        for term, count in zip(missing, await self._store.term_rows(missing, cap)):
            counts[term] = self._keep(("term", term), count, cap, now, token)
        return {term: count for term, count in counts.items() if count is not None}

    async def _counted(self, kind: str, name: str, cap: int) -> int:
        """A user's rows or the store's highest label, counted up to ``cap``."""
        now = time.monotonic()
        count = self._kept((kind, name), cap, now, None)
        if count is None:
            found = await (self._store.max_label() if kind == "store" else self._store.user_rows(name, cap))
            count = self._keep((kind, name), found, cap, now, None)
        return count

    def _kept(self, key: tuple[str, str], cap: int, now: float, token: Hashable | None) -> int | None:
        """A count kept less than five minutes that answers for ``cap`` (one
        that stopped at a lower cap does not); a term's 0 only under ``token``."""
        kept = self._counts.get(key)
        if kept is None or now - kept[2] >= _COUNTS_SECONDS or (kept[0] >= kept[1] and kept[1] < cap):
            return None
        if key[0] == "term" and kept[0] == 0 and (token is None or kept[3] != token):
            return None
        self._counts.move_to_end(key)
        return min(kept[0], cap)

    def _keep(self, key: tuple[str, str], count: int, cap: int, now: float, token: Hashable | None) -> int:
        self._counts[key] = (count, cap, now, token)
        self._counts.move_to_end(key)
        while len(self._counts) > _COUNTS_KEPT:
            self._counts.popitem(last=False)
        return count
