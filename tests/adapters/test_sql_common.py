"""IN-list parameters: right for any length, and long lists are not kept in memory."""

from __future__ import annotations

import pytest

from headroom_memory.adapters import sql_common
from headroom_memory.adapters.sql_common import POSTGRES, SQLITE


@pytest.mark.parametrize("count", [0, 1, 80, sql_common._KEPT_IN_LIST, sql_common._KEPT_IN_LIST + 1, 5_000])
def test_an_in_list_names_one_parameter_per_value(count: int) -> None:
    values = [f"v{i}" for i in range(count)]
    for dialect, spell in ((SQLITE, ":{}"), (POSTGRES, "%({})s")):
        sql, params = dialect.in_list("l", values)
        assert list(params.values()) == values
        assert sql == (", ".join(spell.format(name) for name in params) or "NULL")


def test_only_short_in_lists_are_kept() -> None:
    sql_common._in_list_names.cache_clear()
    SQLITE.in_list("l", list(range(40)))
    SQLITE.in_list("l", list(range(40)))
    SQLITE.in_list("l", list(range(sql_common._KEPT_IN_LIST + 1)))
    info = sql_common._in_list_names.cache_info()
    assert (info.hits, info.currsize) == (1, 1)
