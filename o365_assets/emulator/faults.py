"""Throttling and faults, as Exchange Online and the Graph front door produce them.

`FaultController` decides, per request, what the Outlook limits say (at most
`concurrency_limit` requests in flight and `request_budget` per `budget_window_s` for each app
and mailbox) and whether to inject a random 429/503/504 or a dropped connection. Every random
choice comes from generators seeded with `FaultSettings.seed`, reseeded whenever the settings
change, so a sequence of requests meets the same faults each time. It also keeps the counters
the admin API shows, so a test can tell a client that honours `Retry-After` from one that
does not.

`FaultMiddleware` applies what happens to a response on the wire: the bandwidth cap, and a
connection dropped half-way through a body.
"""

import asyncio
import logging
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from o365_assets.emulator.state import EmulatorState, FaultSettings

log = logging.getLogger(__name__)

ANONYMOUS = "-"


class ConnectionDropped(Exception):
    """Raised on purpose after part of a body is sent, so that the server aborts the
    connection and the client sees a short read."""


@dataclass(frozen=True)
class Rejection:
    """A request the limits turn away: status, Graph error code and message, Retry-After."""

    status: int
    code: str
    message: str
    retry_after_s: float
    reason: str

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


@dataclass
class _Window:
    started: float
    count: int = 0


@dataclass
class _AppCounters:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "throttled": sum(self.throttled.values()),
            "throttled_by_reason": dict(self.throttled),
            "dropped": self.dropped,
        }


class FaultController:
    """The live fault state of one emulator: limits in force, counters, seeded randomness."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._apps: dict[str, _AppCounters] = {}
        self._reseed()

    @property
    def settings(self) -> FaultSettings:
        return self.state.config.faults

    def _reseed(self) -> None:
        seed = self.settings.seed
        self._errors = random.Random(f"{seed}:errors")
        self._drops = random.Random(f"{seed}:drops")

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply a partial change of the knobs; limits and random sequences start afresh."""
        merged = FaultSettings.model_validate({**self.settings.model_dump(), **changes})
        with self._lock:
            self.state.config.faults = merged
            self._windows.clear()
            self._reseed()
        log.info("fault settings now %s", merged.model_dump())
        return merged

    # -- admission -----------------------------------------------------------------------

    def admit(self, app_id: str, mailbox: str) -> Rejection | None:
        """Take a slot for one request, or say why not. A taken slot is given back with
        `release` as the response's last byte goes out, or when the response breaks off."""
        settings = self.settings
        key = (app_id, mailbox.lower())
        now = time.monotonic()
        with self._lock:
            limit = settings.concurrency_limit
            if limit is not None and self._in_flight[key] >= limit:
                return Rejection(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    settings.retry_after_s,
                    "concurrency",
                )

            budget = settings.request_budget
            if budget is not None:
                window = self._windows.get(key)
                if window is None or now - window.started >= settings.budget_window_s:
                    window = self._windows[key] = _Window(started=now)
                if window.count >= budget:
                    wait = window.started + settings.budget_window_s - now
                    return Rejection(
                        429,
                        "ApplicationThrottled",
                        "Application is over its request limit for this mailbox.",
                        wait,
                        "budget",
                    )
                window.count += 1

            self._in_flight[key] += 1
            return None

    def release(self, app_id: str, mailbox: str) -> None:
        key = (app_id, mailbox.lower())
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def roll_error(self) -> Rejection | None:
        """A random 429/503/504 at `error_rate`, from the seeded sequence."""
        settings = self.settings
        with self._lock:
            if settings.error_rate <= 0 or not settings.error_statuses:
                return None
            if self._errors.random() >= settings.error_rate:
                return None
            status = self._errors.choice(settings.error_statuses)
        codes = {
            429: ("ApplicationThrottled", "Too many requests; retry after the given delay."),
            503: ("ServiceUnavailable", "The service is temporarily unavailable."),
            504: ("GatewayTimeout", "The request timed out at the gateway."),
        }
        code, message = codes.get(status, ("UnknownError", "The request failed."))
        return Rejection(status, code, message, settings.retry_after_s, "injected")

    def roll_drop(self) -> bool:
        settings = self.settings
        with self._lock:
            return settings.drop_rate > 0 and self._drops.random() < settings.drop_rate

    # -- counters ------------------------------------------------------------------------

    def record(self, app_id: str | None, status: int, reason: str | None = None) -> None:
        with self._lock:
            counters = self._apps.setdefault(app_id or ANONYMOUS, _AppCounters())
            counters.requests += 1
            counters.statuses[status] += 1
            if reason is not None:
                counters.throttled[reason] += 1

    def record_drop(self, app_id: str | None) -> None:
        with self._lock:
            self._apps.setdefault(app_id or ANONYMOUS, _AppCounters()).dropped += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            apps = {app: counters.as_dict() for app, counters in self._apps.items()}
            in_flight = sum(self._in_flight.values())
        totals: Counter[str] = Counter()
        for counters in apps.values():
            totals["requests"] += counters["requests"]
            totals["throttled"] += counters["throttled"]
            totals["dropped"] += counters["dropped"]
        return {"totals": dict(totals), "apps": apps, "in_flight": in_flight}

    def reset_stats(self) -> None:
        with self._lock:
            self._apps.clear()


def controller_for(state: EmulatorState) -> FaultController:
    """The one controller of an emulator, made on first use and kept in `state.extras`."""
    with state.lock:
        controller = state.extras.get("faults")
        if controller is None:
            controller = state.extras["faults"] = FaultController(state)
        assert isinstance(controller, FaultController)
        return controller


class FaultMiddleware:
    """ASGI middleware for what happens to a response on the wire: a bandwidth cap and a
    connection dropped half-way through a successful response's body."""

    def __init__(self, app: ASGIApp, controller: FaultController) -> None:
        self.app = app
        self.controller = controller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        bandwidth = self.controller.settings.bandwidth_bytes_per_s
        drop = False

        async def paced(message: Message) -> None:
            body = message.get("body", b"")
            if not bandwidth or not body:
                await send(message)
                return
            piece = max(1024, bandwidth // 20)
            for start in range(0, len(body), piece):
                part = body[start : start + piece]
                last = start + piece >= len(body)
                more = message.get("more_body", False) or not last
                # Wait out the part's time on the wire first, then deliver it: the client
                # holds the last byte only when the reply is over, as on a slow link.
                await asyncio.sleep(len(part) / bandwidth)
                await send({"type": "http.response.body", "body": part, "more_body": more})

        async def wrapped(message: Message) -> None:
            nonlocal drop
            if message["type"] == "http.response.start":
                drop = message["status"] < 300 and self.controller.roll_drop()
                await send(message)
                return
            body = message.get("body", b"")
            if drop and body:
                cut = body[: max(1, len(body) // 2)]
                await paced({"type": "http.response.body", "body": cut, "more_body": True})
                self.controller.record_drop(scope.get("state", {}).get("app_id"))
                raise ConnectionDropped("connection dropped on purpose mid-body")
            await paced(message)

        await self.app(scope, receive, wrapped)


class _QuietDrops(logging.Filter):
    """Dropped connections are deliberate: keep their tracebacks out of the server's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ConnectionDropped):
            return False
        return not isinstance(record.args, tuple) or not any(
            isinstance(arg, ConnectionDropped) for arg in record.args
        )


_QUIET = _QuietDrops()


def quiet_deliberate_drops() -> None:
    """Keep deliberate drops out of uvicorn's and the emulator's error logs (idempotent)."""
    for name in ("uvicorn.error", "o365_assets.emulator.app"):
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
