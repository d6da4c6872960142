"""Rows kept when a conversation's facts are restated, on a LoCoMo-format file.

    python benchmarks/dedup_rows.py --data PATH [--limit N]

Adds every turn of each conversation (``add_many``, dedup on), counts the
stored rows, then adds every session's turns again, as a model that repeats
what it was told would, and counts again. Prints both counts, the merges and
both passes' throughput; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from headroom_memory import HierarchicalMemory, MemoryConfig, MemoryFilter
from headroom_memory.locomo import conversation_memories, read_locomo

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "dev.json"


async def run(data: Path, limit: int | None) -> dict[str, Any]:
    conversations = read_locomo(data)[: limit or None]
    memory = await HierarchicalMemory.create(MemoryConfig(db_path=Path(tempfile.mkdtemp()) / "d.db"))
    items = [item for conv in conversations for item in conversation_memories(conv)]
    start = time.perf_counter()
    first = await memory.add_many(items, batch_size=128)
    seconds = time.perf_counter() - start
    rows_first = await memory.store.count(MemoryFilter(include_superseded=True))
    start = time.perf_counter()
    again = await memory.add_many(items, batch_size=128)
    restating_seconds = time.perf_counter() - start
    rows_again = await memory.store.count(MemoryFilter(include_superseded=True))
    stats = await memory.stats()
    await memory.close()
    return {"data": data.name, "turns": len(items), "rows_after_import": rows_first,
            "merged_within_import": sum(m.merged for m in first), "rows_after_restating": rows_again,
            "merged_on_restating": sum(m.merged for m in again), "merged_total": stats["merged"],
            "import_per_s": round(len(items) / seconds, 1),
            "restating_per_s": round(len(items) / restating_seconds, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    if not args.data.exists():
        parser.exit(2, f"no LoCoMo file at {args.data}; pass --data\n")
    result = asyncio.run(run(args.data, args.limit))
    for key, value in result.items():
        print(f"{key:<24} {value}")
    print(json.dumps(result))
