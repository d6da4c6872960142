"""The headroom-memory console script, run through its real entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from headroom_memory import MemoryConfig, MemoryFilter, SyncMemory
from headroom_memory.adapters import LocalEmbedder

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "locomo_tiny.json"
EXE = shutil.which("headroom-memory", path=str(Path(sys.executable).parent)) or "headroom-memory"


def cli(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([EXE, "--db", str(db), *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=300)


@pytest.fixture
def filled(tmp_path: Path, embedder: LocalEmbedder) -> Path:
    db = tmp_path / "cli.db"
    with SyncMemory(MemoryConfig(db_path=db), embedder=embedder) as memory:
        job = memory.add("Works at Google", user_id="alice", category="fact", entity_refs=["google"],
                         metadata={"source": "test"})
        memory.supersede(job.id, "Works at Anthropic")
        memory.add("Prefers Python for backend work", user_id="alice", category="preference", importance=0.9)
        memory.add("Debugging the login page", user_id="alice", session_id="s1", category="context")
        memory.add("Prefers Go", user_id="bob", category="preference")
    return db


def test_stats_list_search_and_history(filled: Path) -> None:
    stats = json.loads(cli(filled, "--json", "stats", "--user", "alice").stdout)
    assert stats["total"] == 3 and stats["superseded"] == 1
    table = cli(filled, "list", "--user", "alice").stdout
    assert "Works at Anthropic" in table and "Works at Google" not in table and table.startswith("id")
    everything = json.loads(cli(filled, "--json", "list", "--user", "alice", "--include-superseded").stdout)
    assert len(everything) == 4
    google = next(m for m in everything if m["content"] == "Works at Google")
    as_of = json.loads(cli(filled, "--json", "list", "--user", "alice", "--category", "fact",
                           "--as-of", google["valid_from"]).stdout)
    assert [m["content"] for m in as_of] == ["Works at Google"]
    hits = json.loads(cli(filled, "--json", "search", "programming language", "--user", "alice", "--top-k", "1").stdout)
    assert hits[0]["content"] == "Prefers Python for backend work"
    chain = json.loads(cli(filled, "--json", "history", google["id"]).stdout)
    assert [m["content"] for m in chain] == ["Works at Google", "Works at Anthropic"]


def test_optimize_then_search(filled: Path) -> None:
    assert json.loads(cli(filled, "--json", "optimize").stdout) == {"optimized": True}
    hits = json.loads(cli(filled, "--json", "search", "Anthropic", "--user", "alice", "--mode", "text").stdout)
    assert [h["content"] for h in hits] == ["Works at Anthropic"]


def test_export_then_import_round_trips_every_field(filled: Path, tmp_path: Path, embedder: LocalEmbedder) -> None:
    dump = tmp_path / "all.jsonl"
    assert cli(filled, "export", "--output", str(dump)).returncode == 0
    fresh = tmp_path / "fresh.db"
    result = cli(fresh, "--json", "import", str(dump))
    assert json.loads(result.stdout) == {"imported": 5}, result.stderr
    with SyncMemory(MemoryConfig(db_path=filled), embedder=embedder) as a, \
            SyncMemory(MemoryConfig(db_path=fresh), embedder=embedder) as b:
        everything = MemoryFilter(include_superseded=True)
        assert a.query(everything) == b.query(everything)
        ids = [m.id for m in a.query(everything)]
        assert all((a.embeddings(ids)[i] == b.embeddings(ids)[i]).all() for i in ids)
        assert b.search("employer", user_id="alice", top_k=1)[0].memory.content == "Works at Anthropic"
    again = cli(fresh, "import", str(dump))
    assert again.returncode == 1 and "already exist" in again.stderr


def test_moving_from_sqlite_to_postgres(filled: Path, tmp_path: Path, embedder: LocalEmbedder,
                                        postgres_url: str) -> None:
    """The README's migration: export the SQLite file, import into PostgreSQL."""
    dump = tmp_path / "all.jsonl"
    assert cli(filled, "export", "--output", str(dump)).returncode == 0
    target = ["--postgres-url", postgres_url, "--postgres-schema", "moved"]
    result = cli(tmp_path / "unused.db", *target, "--json", "import", str(dump))
    assert json.loads(result.stdout) == {"imported": 5}, result.stderr
    assert not (tmp_path / "unused.db").exists()
    with SyncMemory(MemoryConfig(db_path=filled), embedder=embedder) as a, SyncMemory(
            MemoryConfig(postgres_url=postgres_url, postgres_schema="moved"), embedder=embedder) as b:
        everything = MemoryFilter(include_superseded=True)
        assert a.query(everything) == b.query(everything)
        ids = [m.id for m in a.query(everything)]
        assert all(np.allclose(a.embeddings(ids)[i], b.embeddings(ids)[i]) for i in ids)
        assert b.search("employer", user_id="alice", top_k=1)[0].memory.content == "Works at Anthropic"
    listed = cli(tmp_path / "unused.db", *target, "--json", "list", "--user", "bob")
    assert [m["content"] for m in json.loads(listed.stdout)] == ["Prefers Go"], listed.stderr


def test_import_a_locomo_file(tmp_path: Path) -> None:
    db = tmp_path / "locomo.db"
    assert json.loads(cli(db, "--json", "import", str(TINY), "--format", "locomo", "--no-progress").stdout) == {
        "imported": 12}
    hits = json.loads(cli(db, "--json", "search", "puppy name", "--user", "tiny-1", "--top-k", "1").stdout)
    assert hits[0]["metadata"]["dia_id"] == "D1:1" and hits[0]["created_at"].startswith("2023-05-08T13:56")


def test_delete_asks_unless_yes(filled: Path) -> None:
    refused = cli(filled, "delete", "--user", "alice", "--session", "s1")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    deleted = cli(filled, "--json", "delete", "--user", "alice", "--session", "s1", "--yes")
    assert json.loads(deleted.stdout) == {"deleted": 1}
    assert json.loads(cli(filled, "--json", "stats", "--user", "alice").stdout)["total"] == 2
    assert json.loads(cli(filled, "--json", "delete", "--user", "bob", "--yes").stdout) == {"deleted": 1}
    assert json.loads(cli(filled, "--json", "stats").stdout)["total"] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["history", "no-such-id"], "no memory with id"),
    (["list", "--as-of", "yesterday"], "--as-of"),
    (["search", "x", "--user", "alice", "--top-k", "0"], "top_k"),
    (["delete", "--yes"], "--id or --user"),
    (["list", "--category", "gossip"], "unknown memory category"),
])
def test_bad_input_is_one_line_and_non_zero(filled: Path, args: list[str], message: str) -> None:
    result = cli(filled, *args)
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_database_is_reported(tmp_path: Path) -> None:
    result = cli(tmp_path / "none.db", "stats")
    assert result.returncode == 1 and "no database" in result.stderr
    assert not (tmp_path / "none.db").exists()
