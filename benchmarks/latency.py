"""Latency and scale against the embedder floor, offline, on the real local model.

    python benchmarks/latency.py [--sizes 10000 100000 1000000] [--user-sizes 10 1000 100000]
                                 [--queries 200] [--backend sqlite|postgres] [--postgres-url URL]

For each store size N a fresh store is filled through the public bulk API
(``add_many``) with precomputed embeddings of real sentences: a few thousand
varied sentences are embedded once; larger stores use mixtures of two of those
vectors plus a little noise (unit length kept), so nothing is a duplicate and a
million texts need not be embedded. One user holds each of ``--user-sizes`` memories (when N
allows), the rest belong to N/200 other users. After the fill the store is
optimized (``optimize()``, timed: the text index merged into one segment), as
the README advises after a bulk load. Then, per (N, user size):

- injection: what ``with_memory`` does before each request (hybrid search,
  recording the recall, formatting the memories to inject) for distinct
  questions, p50/p99, and its ratio to the embedder alone on the same questions
  measured in the same run, interleaved;
- cache hit: the same injection again for a question just asked (query
  embedding served by the LRU cache);
- first search: the user's first injection, plus the build of a graph of
  their own when they hold enough of the store (it runs in the background;
  the timed injections come after it);
and per N: one ``add`` (with the near-duplicate check) against embedding its
text alone, bulk ingest (``add_many`` embedding the texts itself) as a
fraction of the embedder's own batch throughput on the same texts (the median
of BULK_ROUNDS rounds, each timing the embedder's batch then ``add_many``: the
embedder's own speed moves by a quarter between minutes), the first
search's index build, peak RSS and the size on disk.

Prints a table and, as its last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from headroom_memory import HierarchicalMemory, Identity, MemoryConfig, NewMemory
from headroom_memory.adapters.lru_cache import LRUMemoryCache
from headroom_memory.inline import InlineMemory

SUBJECTS = ["My sister", "The new manager", "Our neighbour", "My best friend", "The team lead",
            "My grandfather", "The landlord", "A colleague from Berlin", "My son", "The coach"]
VERBS = ["started learning", "stopped playing", "really enjoys", "is worried about", "wrote a blog post on",
         "bought a book about", "gave a talk on", "is allergic to", "volunteers for", "complained about"]
OBJECTS = ["pottery", "the violin", "marathon training", "Kubernetes upgrades", "sourdough baking",
           "climate policy", "vintage cameras", "salsa dancing", "the quarterly budget", "birdwatching",
           "Japanese lessons", "rock climbing", "the school play", "electric cars", "chess openings"]
WHEN = ["last week", "this summer", "since March", "every Sunday", "after the move", "during the holidays",
        "for two years", "at the weekend", "before the wedding", "this morning"]
TOPICS = ["an instrument", "food and cooking", "sports", "technology at work", "weekend plans", "allergies",
          "photography", "money and budgets", "dancing", "volunteering", "languages", "cars", "games"]


BULK_ROUNDS = 5


def sentences(n: int, seed: int = 0) -> list[str]:
    """Varied everyday sentences (numbered, so no two are equal)."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)} (#{i})"
            for i in range(n)]


def questions(n: int) -> list[str]:
    return [f"What do you know about {TOPICS[i % len(TOPICS)]}? (question {i})" for i in range(n)]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3)}


async def between_turns() -> None:
    """A pause as between a user's questions, before each timed call: what an
    injection leaves to the background (writing its recall counts) is done
    before the next call is timed (it would slow the embedder's own timing),
    and the embedder and the injection both start from idle threads."""
    await asyncio.sleep(0.02)


async def clock(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


def vectors_for(n: int, base: np.ndarray[Any, Any], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """n unit vectors: the base embeddings, then mixtures of two of them plus a
    little noise. (Noisy copies of the base alone form tight islands of a few
    hundred points in a 1M store, which fragment hnswlib's graph: it then
    returns fewer neighbours than asked for, a shape real embeddings do not have.)"""
    picks = base[np.arange(n) % len(base)].astype(np.float32)
    for start in range(len(base), n, 100_000):
        stop = min(n, start + 100_000)
        partners = base[rng.integers(len(base), size=stop - start)]
        mixed = picks[start:stop] + 0.6 * partners + rng.normal(scale=0.02, size=partners.shape).astype(np.float32)
        picks[start:stop] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return picks

def disk_bytes(config: MemoryConfig) -> int | None:
    if config.postgres_url is not None:
        return None
    folder = Path(str(config.db_path)).parent
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def make_config(backend: str, folder: Path, postgres_url: str | None) -> MemoryConfig:
    if backend == "postgres":
        assert postgres_url is not None
        return MemoryConfig(postgres_url=postgres_url, postgres_schema=f"bench_{uuid.uuid4().hex[:10]}")
    return MemoryConfig(db_path=folder / "bench.db")


async def measure_store(n: int, user_sizes: list[int], base_texts: list[str], base: np.ndarray[Any, Any],
                        n_queries: int, config: MemoryConfig, embedder: Any) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    owners: list[str] = []
    for size in user_sizes:
        if size <= n - sum(s for s in user_sizes if s < size):
            owners += [f"user-{size}"] * size
    others = max(1, n // 200)
    owners += [f"other-{i % others}" for i in range(n - len(owners))]
    random.Random(n).shuffle(owners)
    vectors = vectors_for(n, base, rng)
    memory = await HierarchicalMemory.create(config, embedder=embedder)
    figures: dict[str, Any] = {"memories": n}
    start = time.perf_counter()
    for chunk in range(0, n, 50_000):
        await memory.add_many([NewMemory(f"{base_texts[i % len(base_texts)]} [{i}]", user_id=owners[i],
                                         embedding=vectors[i]) for i in range(chunk, min(n, chunk + 50_000))],
                              batch_size=5_000, dedup=False)
    figures["fill_rows_per_s"] = round(n / (time.perf_counter() - start))
    # After a bulk load, as the README advises (the imports above optimized only while
    # each was a fifth of the store): the text index merged into one segment.
    figures["optimize_s"] = round(await clock(memory.optimize) / 1000, 2)
    figures["index_build_s"] = round(await clock(memory.vector_index.sync) / 1000, 2)
    del vectors

    asked = questions(n_queries)
    figures["users"] = {}
    for size in user_sizes:
        user = f"user-{size}"
        if user not in owners:
            continue
        inline = InlineMemory(memory, Identity(user), top_k=5, min_similarity=0.0)
        memory.cache = None  # distinct questions: every injection pays for its embedding
        # The user's first search (and, for a user large enough for a graph of
        # their own, its build in the background) is timed apart.
        warm_up_s = await clock(lambda i=inline: i.prepare("warm up")) / 1000  # type: ignore[misc]
        wait_for_user_graphs = getattr(memory.vector_index, "wait_for_user_graphs", None)
        if wait_for_user_graphs is not None:
            warm_up_s += await clock(wait_for_user_graphs) / 1000
        embed_ms, inject_ms = [], []
        for q in asked:
            await between_turns()
            embed_ms.append(await clock(lambda q=q: embedder.embed([q])))  # type: ignore[misc]
            await between_turns()
            inject_ms.append(await clock(lambda q=q, i=inline: i.prepare(q)))  # type: ignore[misc]
        memory.cache = LRUMemoryCache(1000)
        hit_ms = []
        for q in asked[:50]:
            await inline.prepare(q)
            await between_turns()
            hit_ms.append(await clock(lambda q=q, i=inline: i.prepare(q)))  # type: ignore[misc]
        figures["users"][str(size)] = {
            "injection": summary(inject_ms), "embedder": summary(embed_ms),
            "injection_over_embedder_p50": round(statistics.median(inject_ms) / statistics.median(embed_ms), 2),
            "cache_hit": summary(hit_ms), "first_search_s": round(warm_up_s, 2),
        }
    memory.cache = None
    add_texts = [f"A brand new fact number {i}: {t}" for i, t in enumerate(sentences(100, seed=99))]
    embed_alone, add_ms = [], []
    for t in add_texts:  # the same text embedded alone, then added: one comparison per text
        await between_turns()
        embed_alone.append(await clock(lambda t=t: embedder.embed([t])))  # type: ignore[misc]
        await between_turns()
        add_ms.append(await clock(lambda t=t: memory.add(t, "user-10")))  # type: ignore[misc]
    figures["add"] = {"add": summary(add_ms), "embed_alone": summary(embed_alone),
                      "overhead_p50_ms": round(statistics.median(add_ms) - statistics.median(embed_alone), 2)}
    bulk = sentences(2_000, seed=7)
    embed_s, ingest_s = [], []
    for round_ in range(BULK_ROUNDS):  # the embedder's batch, then add_many of the same texts (another user)
        embed_s.append(await clock(lambda: embedder.embed(bulk)) / 1000)
        ingest_s.append(await clock(lambda r=round_: memory.add_many(  # type: ignore[misc]
            bulk, user_id=f"bulk-user-{r}", batch_size=256)) / 1000)
    figures["bulk_ingest"] = {"embedder_texts_per_s": round(len(bulk) / statistics.median(embed_s)),
                              "add_many_texts_per_s": round(len(bulk) / statistics.median(ingest_s)),
                              "fraction_of_embedder": round(statistics.median(
                                  e / i for e, i in zip(embed_s, ingest_s)), 2),
                              "fraction_per_round": [round(e / i, 2) for e, i in zip(embed_s, ingest_s)]}
    await memory.close()
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures["disk_mb"] = None if (size_b := disk_bytes(config)) is None else round(size_b / 2**20, 1)
    return figures


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from headroom_memory.adapters import LocalEmbedder

    embedder = LocalEmbedder("all-MiniLM-L6-v2", batch_size=64)
    await embedder.embed(["warm up"])
    base_texts = sentences(args.base)
    base = await embedder.embed(base_texts)
    server = None
    url = args.postgres_url
    if args.backend == "postgres" and url is None:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="headroom-pg-"), cleanup_mode="stop")
        url = server.get_uri()
    results: dict[str, Any] = {"backend": args.backend, "cores": os.cpu_count(), "queries": args.queries,
                               "base_sentences": args.base, "stores": []}
    try:
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="headroom-latency-") as folder:
                figures = await measure_store(n, args.user_sizes, base_texts, base, args.queries,
                                              make_config(args.backend, Path(folder), url), embedder)
            results["stores"].append(figures)
            print_store(figures)
    finally:
        await embedder.close()
        if server is not None:
            server.cleanup()
    return results


def print_store(f: dict[str, Any]) -> None:
    print(f"== {f['memories']:,} memories: fill {f['fill_rows_per_s']:,} rows/s, optimize {f['optimize_s']} s, "
          f"index build {f['index_build_s']} s, "
          f"peak RSS {f['peak_rss_mb']} MB, disk {f['disk_mb']} MB")
    for size, u in f["users"].items():
        print(f"   user with {int(size):>7,}: injection p50 {u['injection']['p50_ms']} ms "
              f"p99 {u['injection']['p99_ms']} ms | embedder p50 {u['embedder']['p50_ms']} ms "
              f"| ratio {u['injection_over_embedder_p50']} | cache hit p50 {u['cache_hit']['p50_ms']} ms "
              f"| first search {u['first_search_s']} s")
    a, b = f["add"], f["bulk_ingest"]
    print(f"   add p50 {a['add']['p50_ms']} ms vs embed alone {a['embed_alone']['p50_ms']} ms "
          f"(+{a['overhead_p50_ms']} ms) | bulk ingest {b['add_many_texts_per_s']}/s = "
          f"{b['fraction_of_embedder']} of the embedder's {b['embedder_texts_per_s']}/s")
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--user-sizes", type=int, nargs="+", default=[10, 1_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--base", type=int, default=5_000, help="sentences embedded for real")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", help="an existing server (default: start pgserver)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
