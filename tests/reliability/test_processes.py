"""Crash safety and concurrent processes on one SQLite file, with real processes.

* A child adds memories (single and bulk) and prints each id once ``add`` has
  returned; it is killed with SIGKILL at a random moment, many times. On reopen
  every acknowledged memory is there and found by ``search`` (through the HNSW
  index: the searches use ``exact_search_threshold=0``) and ``text_search``.
* 4 writer and 2 reader processes at once: every write present afterwards, no
  "database is locked" reaching a caller, and each reader finds each memory
  another process wrote on its next search after hearing of it.

Defaults are small for ``make test``; ``HEADROOM_RELIABILITY_SCALE=N`` multiplies
the kill cycles and the writes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from headroom_memory import MemoryConfig, SyncMemory
from headroom_memory.adapters import LocalEmbedder

SCALE = int(os.environ.get("HEADROOM_RELIABILITY_SCALE", "1"))
ROOT = Path(__file__).resolve().parents[2]
ANIMALS = ["otter", "heron", "lynx", "badger", "gecko", "walrus", "ibis", "marmot"]


def _config(db: str) -> MemoryConfig:
    return MemoryConfig(db_path=db, exact_search_threshold=0)  # every search goes through the HNSW index


def _fact(tag: str, rng: random.Random) -> str:
    return f"Crash note {tag}: the {rng.choice(ANIMALS)} keeps token zq{uuid.uuid4().hex[:10]}"


def crash_child(db: str, seed: int) -> None:
    """Add memories forever, printing [id, content] after each add returns."""
    rng = random.Random(seed)
    with SyncMemory(_config(db)) as memory:
        memory.search("warm up the model", "alice")
        print("ready", flush=True)
        for step in range(10**9):
            if rng.random() < 0.5:
                added = [memory.add(_fact(f"{seed}-{step}", rng), "alice", dedup=False)]
            else:
                added = memory.add_many([_fact(f"{seed}-{step}-{i}", rng) for i in range(8)], user_id="alice",
                                        dedup=False)
            for memory_added in added:
                print(json.dumps([memory_added.id, memory_added.content]), flush=True)


def _run_and_kill(db: Path, seed: int) -> list[tuple[str, str]]:
    """Start a child, kill it with SIGKILL at a random moment; the ids it acknowledged."""
    code = f"from tests.reliability.test_processes import crash_child; crash_child({str(db)!r}, {seed})"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert child.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout))  # type: ignore[arg-type]
    reader.start()
    deadline = time.time() + 120
    while "ready\n" not in lines and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert "ready\n" in lines, "the child did not start"
    time.sleep(random.Random(seed).uniform(0.3, 2.0))
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join()
    child.stdout.close()
    acknowledged = []
    for line in lines[1:]:
        try:
            mid, content = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill was never acknowledged
        acknowledged.append((mid, content))
    return acknowledged


def test_every_acknowledged_memory_survives_sigkill(tmp_path: Path, embedder: LocalEmbedder,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "crash.db"
    acknowledged: list[tuple[str, str]] = []
    cycles = 4 * SCALE
    for seed in range(cycles):
        acknowledged += _run_and_kill(db, seed)
    assert len(acknowledged) > cycles  # the kills came while writing
    with SyncMemory(_config(str(db)), embedder=embedder) as memory:
        assert {m.id for m in memory.visible("alice")} >= {mid for mid, _ in acknowledged}
        sample = random.Random(0).sample(acknowledged, min(len(acknowledged), 60 * SCALE))
        for mid, content in sample:
            assert mid in [r.memory.id for r in memory.search(content, "alice", top_k=5, mode="vector")]
            assert mid in [r.memory.id for r in memory.search(content, "alice", top_k=5)]
            assert mid in [r.memory.id for r in memory.text_search(content.split()[-1], "alice")]
    with capsys.disabled():
        print(f"\ncrash safety: {cycles} SIGKILL cycles, {len(acknowledged)} acknowledged writes, "
              f"{len(sample)} searched three ways, 0 lost")


def _writer(db: str, worker: int, count: int, announce: list[Any], results: Any) -> None:
    rng = random.Random(worker)
    errors: list[str] = []
    written: list[str] = []
    with SyncMemory(_config(db)) as memory:
        memory.search("warm up the model", "alice")
        for step in range(count):
            try:
                if step % 3 == 2:
                    added = memory.add_many([_fact(f"w{worker}-{step}-{i}", rng) for i in range(3)],
                                            user_id="alice", dedup=False)
                else:
                    added = [memory.add(_fact(f"w{worker}-{step}", rng), "alice", dedup=False)]
            except Exception as exc:
                errors.append(repr(exc))
                continue
            for item in added:
                written.append(item.id)
                for queue in announce:
                    queue.put((item.id, item.content))
    results.put(("writer", worker, written, errors))


def _reader(db: str, reader: int, expected: int, inbox: Any, results: Any) -> None:
    errors: list[str] = []
    misses: list[str] = []
    seen = 0
    with SyncMemory(_config(db)) as memory:
        memory.search("warm up", "alice")
        while seen < expected:
            mid, content = inbox.get(timeout=300)
            seen += 1
            try:
                found = [r.memory.id for r in memory.search(content, "alice", top_k=5, mode="vector")]
            except Exception as exc:
                errors.append(repr(exc))
                continue
            if mid not in found:
                misses.append(mid)
    results.put(("reader", reader, seen, errors + [f"not found on next search: {m}" for m in misses]))


def test_four_writers_and_two_readers_on_one_file(tmp_path: Path, embedder: LocalEmbedder,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "shared.db")
    with SyncMemory(_config(db), embedder=embedder) as memory:
        memory.add("The file exists before the processes start", "alice")
    context = multiprocessing.get_context("spawn")
    per_writer = 12 * SCALE
    expected = 4 * (per_writer // 3 * 3 + (per_writer - per_writer // 3))  # adds of 1 and bulk adds of 3
    inboxes = [context.Queue(), context.Queue()]
    results = context.Queue()
    processes = [context.Process(target=_writer, args=(db, w, per_writer, inboxes, results)) for w in range(4)]
    processes += [context.Process(target=_reader, args=(db, r, expected, inboxes[r], results)) for r in range(2)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    writers = [r for r in reports if r[0] == "writer"]
    readers = [r for r in reports if r[0] == "reader"]
    assert [e for r in reports for e in r[3]] == []  # no locked database, no lost search
    written = {mid for _, _, ids, _ in writers for mid in ids}
    assert len(written) == expected and all(seen == expected for _, _, seen, _ in readers)
    with SyncMemory(_config(db), embedder=embedder) as memory:
        assert written <= {m.id for m in memory.visible("alice")}
    with capsys.disabled():
        print(f"\nconcurrency: 4 writers wrote {len(written)} memories, 2 readers searched for each "
              "on their next call: 0 locked, 0 missed, 0 lost")
