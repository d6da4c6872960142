"""The ``headroom-memory`` command line: inspect, search, export, import and delete.

    headroom-memory --db memory.db stats
    headroom-memory --db memory.db list --user alice --category preference
    headroom-memory --db memory.db search "language preferences" --user alice
    headroom-memory --db memory.db history MEMORY_ID
    headroom-memory --db memory.db export --user alice > alice.jsonl
    headroom-memory --db other.db import alice.jsonl
    headroom-memory --db other.db import locomo10.json --format locomo
    headroom-memory --db memory.db rebuild-index
    headroom-memory --db memory.db delete --user alice --session s1 --yes

Tables by default, ``--json`` for scripts; bad input exits non-zero with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .config import MemoryConfig
from .errors import HeadroomMemoryError, InvalidInputError
from .locomo import conversation_memories, read_locomo
from .models import Memory
from .ports import MemoryFilter
from .serialization import memory_from_json, memory_to_json
from .sync import SyncMemory
from .timeutil import to_utc

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headroom-memory", description="Inspect and manage a headroom memory.")
    parser.add_argument("--db", default="headroom_memory.db", help="SQLite database (default: %(default)s)")
    parser.add_argument("--postgres-url", default=os.environ.get("HEADROOM_POSTGRES_URL"),
                        help="use PostgreSQL instead of --db (default: $HEADROOM_POSTGRES_URL)")
    parser.add_argument("--postgres-schema", default="headroom", help="schema on PostgreSQL (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)

    def identity(command: argparse.ArgumentParser, user_required: bool = False) -> None:
        command.add_argument("--user", required=user_required)
        command.add_argument("--session")
        command.add_argument("--agent")
        command.add_argument("--category", action="append", help="repeatable")

    stats = commands.add_parser("stats", help="counts by category and scope")
    stats.add_argument("--user")
    listing = commands.add_parser("list", help="list memories (exact filters, oldest first)")
    identity(listing)
    listing.add_argument("--include-superseded", action="store_true")
    listing.add_argument("--as-of", help="ISO datetime: what was current then (naive = UTC)")
    listing.add_argument("--limit", type=int)
    search = commands.add_parser("search", help="hybrid search in what an identity sees")
    search.add_argument("query")
    identity(search, user_required=True)
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid")
    history = commands.add_parser("history", help="the supersession chain of a memory")
    history.add_argument("id")
    export = commands.add_parser("export", help="JSONL of every field (one user or all)")
    export.add_argument("--user")
    export.add_argument("--output", type=Path, help="file (default: standard output)")
    export.add_argument("--no-embeddings", action="store_true", help="leave vectors out (import re-embeds)")
    importing = commands.add_parser("import", help="load a JSONL export or a LoCoMo file")
    importing.add_argument("file", type=Path)
    importing.add_argument("--format", choices=["jsonl", "locomo"], default="jsonl")
    importing.add_argument("--no-progress", action="store_true")
    commands.add_parser("rebuild-index", help="rebuild the vector index from the database")
    commands.add_parser("optimize", help="merge the text index (after a bulk import, or now and then)")
    delete = commands.add_parser("delete", help="delete one memory, a session, or a whole user")
    delete.add_argument("--id")
    delete.add_argument("--user")
    delete.add_argument("--session")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: TextIO) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [min(max([len(h), *(len(r[i]) for r in cells)]), 60) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join((c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(row, widths)).rstrip()
                  + "\n")


def _memory_rows(memories: Sequence[Memory]) -> list[list[Any]]:
    return [[m.id, m.user_id, m.scope.value, m.category.value, f"{m.importance:.2f}",
             m.valid_from.isoformat(timespec="seconds"), "yes" if m.is_current else "no", m.content]
            for m in memories]


_HEADERS = ["id", "user", "scope", "category", "imp", "valid_from", "current", "content"]


def _print_memories(memories: Sequence[Memory], as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump([memory_to_json(m) for m in memories], out, ensure_ascii=False)
        out.write("\n")
    else:
        _table(_memory_rows(memories), _HEADERS, out)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise InvalidInputError("refusing to delete without confirmation; pass --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _run(args: argparse.Namespace, memory: SyncMemory, out: TextIO) -> int:
    as_json: bool = args.json
    if args.command == "stats":
        stats = memory.stats(user_id=args.user)
        if as_json:
            out.write(json.dumps(stats) + "\n")
        else:
            _table([[k, v] for k, v in stats.items() if not isinstance(v, dict)], ["what", "count"], out)
            _table([[k, v] for k, v in stats["categories"].items()], ["category", "current"], out)
            _table([[k, v] for k, v in stats["scopes"].items()], ["scope", "current"], out)
    elif args.command == "list":
        as_of = None if args.as_of is None else _parse_time(args.as_of)
        memories = memory.query(MemoryFilter(
            user_id=args.user, session_id=args.session, agent_id=args.agent, categories=args.category,
            include_superseded=args.include_superseded, as_of=as_of, limit=args.limit))
        _print_memories(memories, as_json, out)
    elif args.command == "search":
        results = memory.search(args.query, args.user, args.session, args.agent, top_k=args.top_k,
                                min_similarity=-1.0, categories=args.category, mode=args.mode)
        if as_json:
            out.write(json.dumps([{**memory_to_json(r.memory), "similarity": r.similarity, "score": r.score}
                                  for r in results], ensure_ascii=False) + "\n")
        else:
            _table([[f"{r.score:.4f}", f"{r.similarity:.3f}", *row]
                    for r, row in zip(results, _memory_rows([r.memory for r in results]))],
                   ["score", "sim", *_HEADERS], out)
    elif args.command == "history":
        _print_memories(memory.get_history(args.id), as_json, out)
    elif args.command == "export":
        _export(memory, args, out)
    elif args.command == "import":
        count = _import(memory, args)
        out.write(json.dumps({"imported": count}) + "\n" if as_json else f"imported {count} memories\n")
    elif args.command == "rebuild-index":
        count = memory.rebuild_index()
        out.write(json.dumps({"indexed": count}) + "\n" if as_json else f"indexed {count} vectors\n")
    elif args.command == "optimize":
        memory.optimize()
        out.write(json.dumps({"optimized": True}) + "\n" if as_json else "optimized\n")
    elif args.command == "delete":
        return _delete(memory, args, out)
    return 0


def _parse_time(text: str) -> datetime:
    try:
        return to_utc(datetime.fromisoformat(text), name="--as-of")
    except ValueError:
        raise InvalidInputError(f"--as-of is not an ISO datetime: {text!r}") from None


def _export(memory: SyncMemory, args: argparse.Namespace, out: TextIO) -> None:
    memories = memory.query(MemoryFilter(user_id=args.user, include_superseded=True))
    target = args.output.open("w", encoding="utf-8") if args.output else out
    try:
        for start in range(0, len(memories), 500):
            batch = memories[start : start + 500]
            vectors = {} if args.no_embeddings else memory.embeddings([m.id for m in batch])
            for m in batch:
                target.write(json.dumps(memory_to_json(m, embedding=vectors.get(m.id)), ensure_ascii=False) + "\n")
    finally:
        if args.output:
            target.close()


def _import(memory: SyncMemory, args: argparse.Namespace) -> int:
    if args.format == "locomo":
        items = [item for conv in read_locomo(args.file) for item in conversation_memories(conv)]
        return len(memory.add_many(items, progress=not args.no_progress))
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {args.file}: {exc}") from None
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append(memory_from_json(json.loads(line)))
        except (ValueError, InvalidInputError) as exc:
            raise InvalidInputError(f"{args.file}:{number}: {exc}") from None
    return memory.restore(parsed)


def _delete(memory: SyncMemory, args: argparse.Namespace, out: TextIO) -> int:
    if args.id and (args.user or args.session):
        raise InvalidInputError("delete takes --id, or --user (with an optional --session), not both")
    if args.id:
        target = memory.get(args.id)
        if not args.yes and not _confirm(f"delete memory {target.id} ({target.content[:50]!r})?"):
            out.write("nothing deleted\n")
            return 1
        memory.delete(target.id)
        count = 1
    elif args.user:
        what = f"session {args.session!r} of user {args.user!r}" if args.session else f"all of user {args.user!r}"
        if not args.yes and not _confirm(f"delete every memory of {what}?"):
            out.write("nothing deleted\n")
            return 1
        count = memory.clear(args.user, args.session)
    else:
        raise InvalidInputError("delete needs --id or --user")
    out.write(json.dumps({"deleted": count}) + "\n" if args.json else f"deleted {count} memories\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headroom-memory`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.postgres_url is None and args.command != "import" and not Path(args.db).exists():
        print(f"headroom-memory: error: no database at {args.db}", file=sys.stderr)
        return 1
    try:
        config = (MemoryConfig(db_path=args.db) if args.postgres_url is None else
                  MemoryConfig(postgres_url=args.postgres_url, postgres_schema=args.postgres_schema))
        with SyncMemory(config) as memory:
            return _run(args, memory, sys.stdout)
    except HeadroomMemoryError as exc:
        print(f"headroom-memory: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
