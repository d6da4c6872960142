from __future__ import annotations

import langchain_headroom

EXPECTED = ["HeadroomChatMessageHistory", "HeadroomMemoryOutputParser", "HeadroomRetriever", "RunnableWithMemory"]


def test_all_imports() -> None:
    assert sorted(langchain_headroom.__all__) == sorted(EXPECTED)
