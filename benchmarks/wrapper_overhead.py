"""with_memory's own cost per request, excluding the model, offline.

    python benchmarks/wrapper_overhead.py [--requests 200] [--memories 1000] [--top-k 5]

A scripted OpenAI-compatible server on 127.0.0.1 answers instantly (with a
one-item <memory> block), so the time of a request is HTTP plus what the
wrapper adds. The same requests go through the raw ``openai.OpenAI`` client
and through ``with_memory`` (user holding ``--memories`` memories), in one run:

- ``overhead``: wrapped minus raw, per request (recall + injection + parsing + storing),
- ``embedder_only``: the local embedder on the same queries (the floor of recall),
- the size in characters of the added system text and of the injected memories at top_k.

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import questions, sentences

from headroom_memory import MemoryConfig, NewMemory, SyncMemory, with_memory
from headroom_memory.testing import ScriptedModel, openai_server, system_texts

REPLY = 'Here is my answer.\n<memory>[{"content": "Asked about QUESTION", "category": "context"}]</memory>'


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def main(requests: int, memories: int, top_k: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="headroom-wrapper-"))
    memory = SyncMemory(MemoryConfig(db_path=folder / "w.db"))
    memory.add_many([NewMemory(t, user_id="alice") for t in sentences(memories)], batch_size=256)
    asked = questions(requests)
    figures: dict[str, Any] = {"requests": requests, "memories": memories, "top_k": top_k, "cores": os.cpu_count()}
    with openai_server(ScriptedModel([REPLY])) as (url, recorded):
        raw = openai.OpenAI(base_url=url, api_key="bench")
        wrapped = with_memory(openai.OpenAI(base_url=url, api_key="bench"), user_id="alice", memory=memory,
                              top_k=top_k, min_similarity=-1.0)
        for client in (raw, wrapped):  # warm up connections and the model
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "warm up"}])
        raw_ms, wrapped_ms, embed_ms = [], [], []
        for question in asked:
            messages = [{"role": "user", "content": question}]
            start = time.perf_counter()
            raw.chat.completions.create(model="m", messages=messages)
            raw_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            wrapped.chat.completions.create(model="m", messages=messages)
            wrapped_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            memory.runner.run(memory.engine.embedder.embed([question + " again"]))
            embed_ms.append((time.perf_counter() - start) * 1000)
        system = system_texts(recorded)[0]
        section = system[system.index("<memories>\n"):]
    figures["raw_request_p50_ms"] = p50(raw_ms)
    figures["wrapped_request_p50_ms"] = p50(wrapped_ms)
    figures["overhead_p50_ms"] = p50([w - r for w, r in zip(wrapped_ms, raw_ms)])
    figures["embedder_only_p50_ms"] = p50(embed_ms)
    figures["added_system_chars"] = len(system)
    figures["instruction_chars"] = len(system) - len(section)
    figures["injected_memories_chars"] = len(section)
    memory.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    result = main(args.requests, args.memories, args.top_k)
    for key, value in result.items():
        print(f"{key:<28} {value}")
    print(json.dumps(result))
