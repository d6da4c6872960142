"""Embedders: the real local model, and OpenAI / Ollama HTTP embedders against
servers on 127.0.0.1 that speak those APIs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headroom_memory import (
    ConfigurationError,
    EmbedderBackend,
    EmbedderError,
    HierarchicalMemory,
    InvalidInputError,
    MemoryConfig,
)
from headroom_memory.adapters import LocalEmbedder, OllamaEmbedder, OpenAIEmbedder
from headroom_memory.adapters.local_embedder import OPENMP_SPIN_COUNT, resolve_local_model
from headroom_memory.testing import Reply, loopback_server

DIM = 8


def fake_vector(text: str) -> list[float]:
    """A deterministic vector per text (the server's 'model')."""
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255 + 0.01 for b in digest[:DIM]]


def openai_handler(method: str, path: str, body: Any) -> Reply:
    if path != "/v1/embeddings":
        return Reply(404, {"error": "not found"})
    data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(body["input"])]
    return Reply(json_body={"object": "list", "data": list(reversed(data)), "model": body["model"]})


def ollama_handler(method: str, path: str, body: Any) -> Reply:
    if path != "/api/embed":
        return Reply(404, {"error": "not found"})
    return Reply(json_body={"model": body["model"], "embeddings": [fake_vector(t) for t in body["input"]]})


async def test_local_model_is_the_packaged_minilm(embedder: LocalEmbedder) -> None:
    assert Path(resolve_local_model("all-MiniLM-L6-v2")).is_dir()
    vectors = await embedder.embed(["I like tea", "I enjoy drinking tea", "Quarterly tax filing"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


_SPIN_PROBE = """
import asyncio, os
from headroom_memory.adapters import LocalEmbedder

async def main():
    embedder = LocalEmbedder()
    await embedder.embed(["hello"])
    await embedder.close()
    print(os.environ.get("GOMP_SPINCOUNT"))

asyncio.run(main())
"""


@pytest.mark.parametrize(("given", "kept"), [(None, OPENMP_SPIN_COUNT), ("123", "123")])
def test_local_model_shortens_openmp_busy_waiting_unless_the_environment_says(given: str | None, kept: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if given is not None:
        env["GOMP_SPINCOUNT"] = given
    probe = subprocess.run([sys.executable, "-c", _SPIN_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[-1] == kept


async def test_local_model_loads_from_a_folder(embedder: LocalEmbedder) -> None:
    folder = resolve_local_model("all-MiniLM-L6-v2")
    by_path = LocalEmbedder(folder)
    try:
        same = await by_path.embed(["hello"])
        assert np.allclose(same, await embedder.embed(["hello"]), atol=1e-5)
    finally:
        await by_path.close()


async def test_openai_embedder_batches_and_orders_by_index() -> None:
    with loopback_server(openai_handler) as (url, recorded):
        emb = OpenAIEmbedder("text-embedding-3-small", api_key="sk-test", base_url=f"{url}/v1", batch_size=2)
        await emb.load()
        vectors = await emb.embed(["a", "b", "c"])
        await emb.close()
    assert emb.dimension == DIM
    expected = np.array([fake_vector(t) for t in "abc"], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)
    assert [len(body["input"]) for _, _, body in recorded.requests] == [1, 2, 1]


async def test_ollama_embedder_speaks_api_embed() -> None:
    with loopback_server(ollama_handler) as (url, recorded):
        emb = OllamaEmbedder("nomic-embed-text", base_url=url)
        await emb.load()
        vectors = await emb.embed(["x", "y"])
        await emb.close()
    assert vectors.shape == (2, DIM)
    assert recorded.requests[-1][2] == {"model": "nomic-embed-text", "input": ["x", "y"]}


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(500, {"error": "boom"}), "HTTP 500"),
        (Reply(raw=b"not json", content_type="text/plain"), "unexpected reply"),
        (Reply(json_body={"data": [{"index": 0, "embedding": [1.0, "x"]}]}), "not a matrix|unexpected"),
        (Reply(json_body={"nothing": True}), "unexpected reply"),
    ],
)
async def test_http_embedder_failures_are_embedder_errors(reply: Reply, message: str) -> None:
    with loopback_server(lambda *_: reply) as (url, _):
        emb = OpenAIEmbedder(base_url=url, dimension=DIM)
        with pytest.raises(EmbedderError, match=message):
            await emb.embed(["a"])
        await emb.close()


async def test_an_unreachable_server_is_an_embedder_error() -> None:
    emb = OllamaEmbedder(base_url="http://127.0.0.1:9", dimension=DIM, timeout=2)
    with pytest.raises(EmbedderError, match="failed"):
        await emb.embed(["a"])
    await emb.close()


async def test_embed_refuses_a_bare_string(embedder: LocalEmbedder) -> None:
    with pytest.raises(InvalidInputError, match="not one string"):
        await embedder.embed("hello")  # type: ignore[arg-type]


async def test_engine_works_end_to_end_on_the_ollama_backend(tmp_path: Path) -> None:
    with loopback_server(ollama_handler) as (url, _):
        config = MemoryConfig(db_path=tmp_path / "o.db", embedder_backend=EmbedderBackend.OLLAMA,
                              ollama_base_url=url, embedder_model="tiny-test-model")
        async with await HierarchicalMemory.create(config) as memory:
            mem = await memory.add("Likes tea", "alice")
            assert (await memory.search("Likes tea", "alice"))[0].memory.id == mem.id


async def test_engine_on_the_openai_backend_checks_the_dimension(tmp_path: Path) -> None:
    with loopback_server(openai_handler) as (url, _):
        config = MemoryConfig(db_path=tmp_path / "o.db", embedder_backend="openai",
                              openai_base_url=f"{url}/v1", embedder_model="tiny", vector_dimension=16)
        with pytest.raises(ConfigurationError, match="produces 8-dimensional"):
            await HierarchicalMemory.create(config)
