"""Smoke runs of the benchmark scripts: they complete and end with their JSON line.
(Numbers are reported by the scripts, never asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "locomo_tiny.json"
SHARED_DEV = ROOT.parent / "shared" / "data" / "locomo" / "dev.json"


def run_script(*args: str) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_locomo_recall_on_the_tiny_fixture() -> None:
    figures = run_script("benchmarks/locomo_recall.py", "--data", str(TINY), "--k", "1", "3")
    assert figures["questions"] == 6 and figures["memories"] == 12  # cat 5 and no-evidence items skipped
    assert set(figures["modes"]) == {"hybrid", "vector", "text", "plain-bm25"}


def test_locomo_recall_reports_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "benchmarks/locomo_recall.py", "--data", str(tmp_path / "nope.json")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "no LoCoMo file" in result.stderr


@pytest.mark.skipif(not SHARED_DEV.exists(), reason="LoCoMo dev.json (../shared/data) is not on this machine")
def test_locomo_recall_on_one_real_conversation() -> None:
    figures = run_script("benchmarks/locomo_recall.py", "--data", str(SHARED_DEV), "--limit", "1", "--mode", "hybrid")
    assert figures["conversations"] == 1 and figures["modes"]["hybrid"]["R@5"] >= 0


def test_latency_smoke() -> None:
    figures = run_script("benchmarks/latency.py", "--sizes", "300", "--user-sizes", "10", "100", "--queries", "5",
                         "--base", "100")
    [store] = figures["stores"]
    assert store["memories"] == 300 and set(store["users"]) == {"10", "100"}


def test_peers_smoke() -> None:
    figures = run_script("benchmarks/peers.py", "--data", str(TINY))
    assert set(figures["systems"]) == {"headroom", "mem0", "llamaindex", "chroma"}


def test_wrapper_overhead_smoke() -> None:
    figures = run_script("benchmarks/wrapper_overhead.py", "--requests", "3", "--memories", "20")
    assert figures["requests"] == 3 and figures["added_system_chars"] > 0


def test_dedup_rows_smoke() -> None:
    figures = run_script("benchmarks/dedup_rows.py", "--data", str(TINY))
    assert figures["turns"] == 12 and figures["rows_after_restating"] == figures["rows_after_import"]
