"""Search latency of the engine at N memories (default 10,000), offline.

    python benchmarks/search_latency.py [--n 10000] [--queries 200]

Builds a store of N generated, varied sentences embedded with the real local
model (all-MiniLM-L6-v2): one user holds half of them, the rest are spread over
other users, and a small user holds 20. Then times, per query:

- the embedder alone (the floor every search pays),
- search for the big user with exact scoring and with the HNSW index,
- search for the small user (exact scoring of her visible set),
- search again with the query embedding cached (the engine's own overhead).

Prints a table and, as its last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from headroom_memory import HierarchicalMemory, MemoryConfig, NewMemory

SUBJECTS = ["My sister", "The new manager", "Our neighbour", "My best friend", "The team lead",
            "My grandfather", "The landlord", "A colleague from Berlin", "My son", "The coach"]
VERBS = ["started learning", "stopped playing", "really enjoys", "is worried about", "wrote a blog post on",
         "bought a book about", "gave a talk on", "is allergic to", "volunteers for", "complained about"]
OBJECTS = ["pottery", "the violin", "marathon training", "Kubernetes upgrades", "sourdough baking",
           "climate policy", "vintage cameras", "salsa dancing", "the quarterly budget", "birdwatching",
           "Japanese lessons", "rock climbing", "the school play", "electric cars", "chess openings"]
WHEN = ["last week", "this summer", "since March", "every Sunday", "after the move", "during the holidays",
        "for two years", "at the weekend", "before the wedding", "this morning"]
QUESTIONS = ["Who is learning an instrument?", "What hobbies involve food?", "Is anyone into sports?",
             "Who talked about technology at work?", "What does the family do on weekends?",
             "Which allergies were mentioned?", "Who is into photography?", "What about money and budgets?",
             "Any news about dancing?", "Who volunteers in the community?"]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)} (#{i})"
            for i in range(n)]


async def timed(fn: Callable[[], Awaitable[Any]], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3)}


async def main(n: int, queries: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="headroom-bench-"))
    config = MemoryConfig(db_path=folder / "bench.db", cache_enabled=False)
    memory = await HierarchicalMemory.create(config)
    texts = sentences(n)
    start = time.perf_counter()
    vectors = await memory.embedder.embed(texts)
    embed_seconds = time.perf_counter() - start
    items = [NewMemory(t, user_id="big" if i % 2 == 0 else f"user-{i % 97}", embedding=v)
             for i, (t, v) in enumerate(zip(texts, vectors))]
    items += [NewMemory(t, user_id="small") for t in sentences(20, seed=1)]
    start = time.perf_counter()
    await memory.add_many(items, batch_size=1000)
    insert_seconds = time.perf_counter() - start
    start = time.perf_counter()
    await memory.vector_index.sync()
    index_seconds = time.perf_counter() - start

    qs = [QUESTIONS[i % len(QUESTIONS)] + f" ({i})" for i in range(queries)]
    it = iter(range(10**9))

    def next_query() -> str:
        return qs[next(it) % len(qs)]

    results: dict[str, Any] = {"memories": n + 20, "queries": queries, "cores": os.cpu_count()}
    results["embedder_only"] = summary(await timed(lambda: memory.embedder.embed([next_query()]), queries))
    results["search_big_user_hnsw"] = summary(await timed(lambda: memory.search(next_query(), "big"), queries))
    memory.vector_index.exact_search_threshold = n  # type: ignore[attr-defined]
    results["search_big_user_exact"] = summary(await timed(lambda: memory.search(next_query(), "big"), queries))
    results["search_small_user"] = summary(await timed(lambda: memory.search(next_query(), "small"), queries))
    await memory.close()

    cached = await HierarchicalMemory.create(MemoryConfig(db_path=config.db_path))
    for q in qs:
        await cached.search(q, "small")
    results["search_small_user_cached_embedding"] = summary(
        await timed(lambda: cached.search(next_query(), "small"), queries))
    results["search_big_user_hnsw_cached_embedding"] = summary(
        await timed(lambda: cached.search(next_query(), "big"), queries))
    await cached.close()
    results["ingest"] = {
        "embed_per_s": round(n / embed_seconds, 1),
        "insert_per_s": round(len(items) / insert_seconds, 1),
        "hnsw_build_per_s": round(len(items) / index_seconds, 1),
    }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="memories in the store")
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    args = parser.parse_args()
    figures = asyncio.run(main(args.n, args.queries))
    for name, value in figures.items():
        if isinstance(value, dict):
            print(f"{name:<40} " + "  ".join(f"{k}={v}" for k, v in value.items()))
    sys.stdout.flush()
    print(json.dumps(figures))
