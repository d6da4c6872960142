"""ChatOpenAI models for the scripted server whose HTTP clients the tests close."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from langchain_openai import ChatOpenAI


@pytest.fixture
async def chat_openai() -> AsyncIterator[Callable[[str], ChatOpenAI]]:
    """Make ChatOpenAI models talking to a base URL; their clients close after the test."""
    clients: list[tuple[httpx.Client, httpx.AsyncClient]] = []

    def make(url: str) -> ChatOpenAI:
        sync, asynchronous = httpx.Client(), httpx.AsyncClient()
        clients.append((sync, asynchronous))
        return ChatOpenAI(model="scripted", base_url=url, api_key="test", max_retries=0,  # type: ignore[arg-type]
                          http_client=sync, http_async_client=asynchronous)

    yield make
    for sync, asynchronous in clients:
        sync.close()
        await asynchronous.aclose()
