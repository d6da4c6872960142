"""Retrieval quality on LoCoMo: recall@k of the evidence turns, per mode.

    python benchmarks/locomo_recall.py --data PATH [--k 5 10] [--mode hybrid vector text] [--limit N]

PATH is a LoCoMo-format JSON file (a list of conversations; see the LoCoMo
repository, snap-research/locomo, data/locomo10.json). Every dialog turn of a
conversation is added through ``add_many`` as a memory of that conversation's
user (``sample_id``): content ``"<speaker>: <text>"``, ``created_at`` = the
session's date, ``dia_id`` and the session in metadata. For each question of
categories 1-4 the user's memories are searched with the question; recall@k is
the share of the question's evidence turns among the top k. Modes: ``hybrid``
(the default search), ``vector`` (plain all-MiniLM-L6-v2 cosine) and ``text``
(plain BM25 over SQLite FTS5), all measured in the same run.

Prints recall per category and overall for each mode, ingest throughput and
search p50/p95; the last line is one JSON object with every figure. The mode
``plain-bm25`` is the reference BM25 of the data README (no stemming), computed
in this script, as the plain keyword baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from headroom_memory import HierarchicalMemory, MemoryConfig, NewMemory
from headroom_memory.locomo import conversation_memories, evidence_ids, read_locomo

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "dev.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def turns(conversation: dict[str, Any], captions: bool) -> list[NewMemory]:
    """One memory per dialog turn (see headroom_memory.locomo)."""
    return conversation_memories(conversation, captions=captions)


LUCENE_STOPWORDS = set(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)


class PlainBM25:
    """The data README's reference BM25 (k1=1.5, b=0.75; lowercase, split on
    non-alphanumerics, Lucene's 33 English stop words, no stemming), per user."""

    def __init__(self, documents: list[tuple[str, str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs = [(dia, self.tokens(text)) for dia, text in documents]
        self.avg = sum(len(t) for _, t in self.docs) / max(len(self.docs), 1)
        self.df: dict[str, int] = {}
        for _, toks in self.docs:
            for tok in set(toks):
                self.df[tok] = self.df.get(tok, 0) + 1

    @staticmethod
    def tokens(text: str) -> list[str]:
        return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t and t not in LUCENE_STOPWORDS]

    def rank(self, query: str, k: int) -> list[str]:
        import math

        n, terms = len(self.docs), set(self.tokens(query))
        scores = []
        for dia, toks in self.docs:
            score = 0.0
            for term in terms:
                tf = toks.count(term)
                if tf:
                    idf = math.log(1 + (n - self.df[term] + 0.5) / (self.df[term] + 0.5))
                    score += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * len(toks) / self.avg))
            scores.append((score, dia))
        return [dia for score, dia in sorted(scores, key=lambda x: -x[0])[:k] if score > 0]


async def run(data: Path, ks: list[int], modes: list[str], limit: int | None, captions: bool) -> dict[str, Any]:
    conversations = read_locomo(data)[: limit or None]
    folder = Path(tempfile.mkdtemp(prefix="headroom-locomo-"))
    memory = await HierarchicalMemory.create(MemoryConfig(db_path=folder / "locomo.db", cache_enabled=False))
    items = [item for conv in conversations for item in turns(conv, captions)]
    start = time.perf_counter()
    await memory.add_many(items, scope="user", batch_size=128)
    ingest_seconds = time.perf_counter() - start
    known = {conv["sample_id"]: {i.metadata["dia_id"] for i in turns(conv, False)} for conv in conversations}  # type: ignore[index]

    questions = []
    for conv in conversations:
        for qa in conv["qa"]:
            if qa.get("category") in CATEGORIES:
                gold = evidence_ids(qa.get("evidence", []), known[conv["sample_id"]])
                if gold:
                    questions.append((conv["sample_id"], qa["question"], qa["category"], gold))

    top = max(ks)
    results: dict[str, Any] = {"data": data.name, "conversations": len(conversations), "memories": len(items),
                               "questions": len(questions), "captions": captions, "cores": os.cpu_count(),
                               "ingest_per_s": round(len(items) / ingest_seconds, 1), "modes": {}}
    plain = {conv["sample_id"]: PlainBM25([(i.metadata["dia_id"], i.content)  # type: ignore[index]
                                           for i in turns(conv, captions)]) for conv in conversations}
    for mode in modes:
        recalls: dict[int, dict[int, list[float]]] = {k: {c: [] for c in CATEGORIES} for k in ks}
        latencies = []
        for user, question, category, gold in questions:
            t0 = time.perf_counter()
            if mode == "plain-bm25":
                ranked = plain[user].rank(question, top)
            else:
                hits = await memory.search(question, user, top_k=top, min_similarity=-1.0, mode=mode)  # type: ignore[arg-type]
                ranked = [h.memory.metadata.get("dia_id") for h in hits]
            latencies.append((time.perf_counter() - t0) * 1000)
            for k in ks:
                recalls[k][category].append(len(gold & set(ranked[:k])) / len(gold))
        latencies.sort()
        figures: dict[str, Any] = {
            "search_p50_ms": round(statistics.median(latencies), 2),
            "search_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        }
        for k in ks:
            everything = [r for per in recalls[k].values() for r in per]
            figures[f"R@{k}"] = round(sum(everything) / len(everything), 4)
            figures[f"R@{k}_by_category"] = {CATEGORIES[c]: round(sum(v) / len(v), 4)
                                             for c, v in recalls[k].items() if v}
        results["modes"][mode] = figures
    await memory.close()
    def gain(*baselines: str) -> float:
        best = max(results["modes"][b][f"R@{ks[0]}"] for b in baselines)
        return round(results["modes"]["hybrid"][f"R@{ks[0]}"] - best, 4)

    if {"hybrid", "vector", "plain-bm25"} <= set(modes):
        results[f"hybrid_gain_R@{ks[0]}_vs_plain"] = gain("vector", "plain-bm25")
    if {"hybrid", "vector", "text"} <= set(modes):
        results[f"hybrid_gain_R@{ks[0]}_vs_own_modes"] = gain("vector", "text")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo-format JSON file")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--mode", nargs="+", choices=["hybrid", "vector", "text", "plain-bm25"],
                        default=["hybrid", "vector", "text", "plain-bm25"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N conversations")
    parser.add_argument("--captions", action="store_true", help="append image captions to turn text")
    args = parser.parse_args()
    if not args.data.exists():
        parser.exit(2, f"no LoCoMo file at {args.data}; pass --data (LoCoMo: snap-research/locomo, "
                       "data/locomo10.json)\n")
    results = asyncio.run(run(args.data, args.k, args.mode, args.limit, args.captions))
    print(f"{results['memories']} memories from {results['conversations']} conversations, "
          f"{results['questions']} questions; ingest {results['ingest_per_s']} memories/s")
    for mode, figures in results["modes"].items():
        line = "  ".join(f"R@{k}={figures[f'R@{k}']:.3f}" for k in args.k)
        print(f"{mode:<7} {line}  p50={figures['search_p50_ms']}ms p95={figures['search_p95_ms']}ms")
        for k in args.k:
            cats = "  ".join(f"{c}={v:.3f}" for c, v in figures[f"R@{k}_by_category"].items())
            print(f"        R@{k} by category: {cats}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
