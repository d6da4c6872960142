"""The code stays ruff- and mypy-clean (CI runs these through `make test`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "headroom_memory", "integrations", "tests", "examples", "benchmarks", "notebooks"],
        ["mypy"],
    ],
    ids=["ruff", "mypy"],
)
def test_tool_is_clean(command: list[str]) -> None:
    tool = BIN / command[0]
    if not tool.exists() and shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed in this environment")
    result = subprocess.run([str(tool if tool.exists() else command[0]), *command[1:]], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
