"""Turning "what arrived since last time" into the received dates that need a run."""

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

# Graph may surface a message a little after its receivedDateTime (delivery, moves into the
# folder); looking back this far, and remembering the ids seen, catches those without repeats.
OVERLAP = datetime.timedelta(minutes=15)
FIRST_LOOKBACK = datetime.timedelta(days=1)


@dataclass(frozen=True)
class NewMailPlan:
    since: datetime.datetime
    dates: list[datetime.date]
    new_ids: list[str]
    cursor: str

    @property
    def digest(self) -> str:
        """A short stable name for this batch of new mail, for run keys."""
        return hashlib.sha256("\n".join(sorted(self.new_ids)).encode()).hexdigest()[:12]


def query_since(cursor: str | None, now: datetime.datetime) -> datetime.datetime:
    """The received time to ask Graph about: the cursor's high-water mark less the overlap."""
    if not cursor:
        return now - FIRST_LOOKBACK
    state = json.loads(cursor)
    return datetime.datetime.fromisoformat(state["high_water"]) - OVERLAP


def plan(
    cursor: str | None,
    arrived: Sequence[tuple[str, datetime.datetime]],
    timezone: str,
    now: datetime.datetime,
    truncated: bool = False,
) -> NewMailPlan:
    """Which received dates have mail not seen before, and the cursor to keep.

    `arrived` holds (message id, received time) of mail received since `query_since(cursor)`,
    newest first; `truncated` says Graph had more than that, so every date from `since` to the
    newest message is asked for rather than only the dates seen.
    """
    since = query_since(cursor, now)
    state: dict[str, Any] = (
        json.loads(cursor) if cursor else {"high_water": since.isoformat(), "seen": []}
    )
    seen = set(state["seen"])
    high_water = datetime.datetime.fromisoformat(state["high_water"])
    tz = ZoneInfo(timezone)

    new = [(mid, received) for mid, received in arrived if mid not in seen]
    dates = sorted({received.astimezone(tz).date() for _, received in new})
    if truncated and dates:
        first = since.astimezone(tz).date()
        dates = [first + datetime.timedelta(days=n) for n in range((dates[-1] - first).days + 1)]
    for _, received in new:
        high_water = max(high_water, received)

    # Remember only the ids inside the next query's window: older ones cannot come back.
    window_start = high_water - OVERLAP
    recent = sorted({mid for mid, received in arrived if received >= window_start})
    next_cursor = json.dumps({"high_water": high_water.isoformat(), "seen": recent})
    new_ids = [mid for mid, _ in new]
    return NewMailPlan(since=since, dates=dates, new_ids=new_ids, cursor=next_cursor)
