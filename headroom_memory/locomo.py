"""Reading LoCoMo-format conversation files (used by the CLI import and the benchmark).

A file is a JSON list of conversations; each has a ``sample_id`` and a
``conversation`` object with ``session_N`` turn lists and ``session_N_date_time``
strings (``"1:56 pm on 8 May, 2023"``). Each turn becomes one memory of the
user ``sample_id``: ``"<speaker>: <text>"``, created at its session's date, with
``dia_id`` and ``session`` in metadata.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .models import NewMemory

__all__ = ["conversation_memories", "evidence_ids", "read_locomo", "session_date"]

_SESSION = re.compile(r"session_(\d+)")
_EVIDENCE = re.compile(r"D(\d+):0*(\d+)")


def session_date(text: str) -> datetime:
    """The UTC datetime of a LoCoMo session date string."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=timezone.utc)


def conversation_memories(conversation: dict[str, Any], *, captions: bool = False) -> list[NewMemory]:
    """One memory per dialog turn of every session that has turns, in order.
    ``captions=True`` appends image captions (``blip_caption``) to the text."""
    try:
        user, body = conversation["sample_id"], conversation["conversation"]
        sessions = sorted((k for k in body if _SESSION.fullmatch(k)), key=lambda k: int(k.split("_")[1]))
        items: list[NewMemory] = []
        for key in sessions:
            if not body[key]:
                continue
            when = session_date(body[f"{key}_date_time"])
            for turn in body[key]:
                text = f"{turn['speaker']}: {turn['text']}"
                if captions and turn.get("blip_caption"):
                    text += f" [shares {turn['blip_caption']}]"
                items.append(NewMemory(content=text, user_id=str(user), created_at=when, scope="user",
                                       metadata={"dia_id": turn["dia_id"], "session": key}))
        return items
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"not a LoCoMo conversation: {exc!r}") from None


def read_locomo(path: str | Path) -> list[dict[str, Any]]:
    """The conversations of a LoCoMo-format file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read LoCoMo file {path}: {exc}") from None
    if not isinstance(data, list):
        raise InvalidInputError(f"{path} is not a LoCoMo file: expected a JSON list of conversations")
    return data


def evidence_ids(raw: list[str], known: set[str]) -> set[str]:
    """Normalised evidence ids (``D<s>:<t>``, no leading zeros) that name a known turn;
    malformed entries like ``"D8:6; D9:17"`` are split, unparseable ones dropped."""
    found = {f"D{s}:{int(t)}" for entry in raw for s, t in _EVIDENCE.findall(str(entry))}
    return found & known
