"""HTTP for Graph and Entra: one pooled session that trusts an extra CA, retries with backoff
and `Retry-After`, a per-mailbox limit on requests in flight, and one log line per request.

msal is given the same session through `MsalHttpClient`, so tokens and Graph calls share the
TLS trust, the proxy rules and the retry policy.
"""

import email.utils
import functools
import http.client
import logging
import os
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from o365_assets.graph.errors import ConfigurationError, ThrottledTooLong
from o365_assets.graph.settings import GraphSettings
from o365_assets.graph.tokens import AccessToken

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 503, 504})

# A connection that failed or broke off mid-reply: the request is worth sending again.
DROPPED_CONNECTION: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.IncompleteRead,
)

# Given the token that was just refused (or None), return a token to send.
TokenSource = Callable[[AccessToken | None], AccessToken]


def trust_context(extra_ca: Path | None) -> ssl.SSLContext:
    """A TLS context that trusts the system's roots, requests' bundle, the bundles named by
    `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE`, and `extra_ca`: an extra CA is added, never
    substituted, and verification stays on. Built once per process for each combination."""
    bundles = tuple(os.environ.get(name) or "" for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"))
    return _trust_context(extra_ca, bundles)


@functools.lru_cache(maxsize=8)
def _trust_context(extra_ca: Path | None, env_bundles: tuple[str, ...]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=requests.utils.DEFAULT_CA_BUNDLE_PATH)
    for bundle in dict.fromkeys(env_bundles):
        if bundle and os.path.isfile(bundle):
            context.load_verify_locations(cafile=bundle)

    if extra_ca is not None:
        try:
            context.load_verify_locations(cafile=str(extra_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"O365_CA_BUNDLE {extra_ca} is not a readable PEM file of CA certificates "
                f"({type(exc).__name__})"
            ) from None
    return context


class _TrustingAdapter(HTTPAdapter):
    """Connection pools that verify servers against one prepared TLS context."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(
            connections, maxsize, block=block, ssl_context=self._context, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, ssl_context=self._context, **proxy_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # The context already holds every trusted root. Left to requests, each new connection
        # would load its CA bundle into the shared context again, a tenth of a second each.
        if verify is False:
            raise ConfigurationError("TLS verification cannot be switched off")
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


def build_session(settings: GraphSettings) -> requests.Session:
    """A pooled session whose TLS trust the environment cannot replace.

    `trust_env` is off because requests lets `REQUESTS_CA_BUNDLE` override a session's
    `verify`; proxies from the environment are applied per request by `Transport` instead.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = _TrustingAdapter(
        trust_context(settings.ca_bundle),
        pool_connections=8,
        pool_maxsize=max(16, 4 * settings.max_concurrency),
        max_retries=0,
    )
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "o365-assets (python-requests)"
    return session


class _Unlimited:
    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class MailboxGates:
    """At most `limit` requests in flight per mailbox from this process, across threads."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._unlimited = _Unlimited()

    def get(self, mailbox: str | None) -> threading.BoundedSemaphore | _Unlimited:
        if mailbox is None:
            return self._unlimited
        key = mailbox.lower()
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = threading.BoundedSemaphore(self._limit)
            return gate


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request: capped exponential backoff with full jitter,
    `Retry-After` when the service gives it, within an attempt count and a total wait."""

    max_attempts: int
    max_wait_s: float
    base_s: float
    cap_s: float

    @classmethod
    def from_settings(cls, settings: GraphSettings) -> "RetryPolicy":
        return cls(
            max_attempts=settings.retry_max_attempts,
            max_wait_s=settings.retry_max_wait_s,
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_cap_s,
        )

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))

    def delay(self, attempt: int, headers: Mapping[str, str] | None) -> float:
        """The wait before attempt `attempt + 1`: `Retry-After` if given, else backoff."""
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return self.backoff(attempt) if retry_after is None else retry_after

    def allows(self, attempt: int, waited: float, delay: float) -> bool:
        return attempt < self.max_attempts and waited + delay <= self.max_wait_s


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def log_path(url: str) -> str:
    """The part of a URL fit for a log line: its path, never its query."""
    return urlsplit(url).path or "/"


class Transport:
    """Sends requests with the retry policy, the mailbox limit, and bearer tokens from a
    `TokenSource`; a 401 gets one fresh token and one more try."""

    def __init__(self, settings: GraphSettings, session: requests.Session | None = None) -> None:
        self.session = session or build_session(settings)
        self.policy = RetryPolicy.from_settings(settings)
        self.gates = MailboxGates(settings.max_concurrency)
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        self._graph_base = settings.graph_base
        # How to wait between attempts; a benchmark or test may observe it.
        self.sleep: Callable[[float], None] = time.sleep
        # Requests put on the wire (every attempt), by service: "graph" or "entra".
        self.sent: Counter[str] = Counter()
        self._sent_lock = threading.Lock()

    def close(self) -> None:
        """Close every pooled connection now. urllib3 leaves a pool open while any response
        from it is still referenced (an error kept with its traceback, say)."""
        for adapter in self.session.adapters.values():
            pools: Any = getattr(getattr(adapter, "poolmanager", None), "pools", None)
            if pools is None:
                continue
            for key in list(pools.keys()):
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        self.session.close()

    def proxies_for(self, url: str) -> dict[str, str]:
        """Proxies from `HTTPS_PROXY`/`NO_PROXY` for this URL (the session ignores them)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._proxies.get(key)
        if found is None:
            found = self._proxies[key] = dict(requests.utils.get_environ_proxies(url))
        return found

    def request(
        self,
        method: str,
        url: str,
        *,
        auth: TokenSource | None = None,
        mailbox: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Any = None,
    ) -> requests.Response:
        """Send a request and read its whole reply; retryable failures are retried, any
        other status is returned for the caller to judge."""
        response, release = self._send(
            method, url, auth, mailbox, headers, params, json, data, stream=False
        )
        release()
        return response

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        auth: TokenSource | None = None,
        mailbox: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[requests.Response]:
        """Like `request`, but a successful reply's body is left unread for the caller to
        stream; the mailbox slot is held until the block exits."""
        response, release = self._send(
            method, url, auth, mailbox, headers, None, None, None, stream=True
        )
        try:
            yield response
        finally:
            response.close()
            release()

    def _send(
        self,
        method: str,
        url: str,
        auth: TokenSource | None,
        mailbox: str | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        json: Any,
        data: Any,
        *,
        stream: bool,
    ) -> tuple[requests.Response, Callable[[], None]]:
        path = log_path(url)
        gate = self.gates.get(mailbox)
        attempt = 0
        waited = 0.0
        refused: AccessToken | None = None
        refreshed = False

        while True:
            attempt += 1
            send_headers = dict(headers or {})
            token = None
            if auth is not None:
                token = auth(refused)
                send_headers["Authorization"] = f"Bearer {token.value}"

            gate.acquire()
            with self._sent_lock:
                self.sent["graph" if url.startswith(self._graph_base) else "entra"] += 1
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=send_headers,
                    timeout=self.timeout,
                    proxies=self.proxies_for(url),
                    stream=True,
                )
                keep_open = stream and response.status_code < 300
                if not keep_open:
                    # Read the body while the slot is held, and give the connection back.
                    response.content  # noqa: B018
                    response.close()
            except requests.exceptions.SSLError as exc:
                gate.release()
                raise ConfigurationError(
                    f"TLS verification of {urlsplit(url).netloc} failed ({_ssl_reason(exc)}); "
                    f"if a private CA signs its certificate (the emulator's, a proxy's), point "
                    f"O365_CA_BUNDLE at that CA"
                ) from None
            except DROPPED_CONNECTION as exc:
                gate.release()
                delay = self.policy.backoff(attempt)
                log.info(
                    "%s %s failed after %.0f ms (%s); attempt %d",
                    method,
                    path,
                    (time.monotonic() - started) * 1000,
                    type(exc).__name__,
                    attempt,
                )
                if not self.policy.allows(attempt, waited, delay):
                    raise ThrottledTooLong(
                        f"{method} {path} kept failing ({type(exc).__name__}) after {attempt} "
                        f"attempts and {waited:.0f} s of waiting: the service could not be "
                        f"reached reliably; check the network and try again later"
                    ) from None
                self.sleep(delay)
                waited += delay
                continue
            except BaseException:
                gate.release()
                raise

            status = response.status_code
            log.debug(
                "%s %s -> %d in %.0f ms",
                method,
                path,
                status,
                (time.monotonic() - started) * 1000,
            )
            if not keep_open:
                gate.release()

            if status == 401 and auth is not None and not refreshed:
                refreshed = True
                refused = token
                log.info("%s %s answered 401; asking for a fresh token", method, path)
                continue

            if status in RETRY_STATUSES:
                delay = self.policy.delay(attempt, response.headers)
                if not self.policy.allows(attempt, waited, delay):
                    raise ThrottledTooLong(
                        f"{method} {path} was still answered {status} after {attempt} "
                        f"attempts and {waited:.0f} s of waiting (next wait {delay:.0f} s); "
                        f"the retry budget is spent: try again later, or lower max_concurrency",
                        status=status,
                        code=graph_error_code(response),
                        request_id=request_id_of(response),
                    )
                log.info(
                    "%s %s answered %d; retrying in %.2f s (attempt %d)",
                    method,
                    path,
                    status,
                    delay,
                    attempt,
                )
                self.sleep(delay)
                waited += delay
                continue

            return response, (gate.release if keep_open else _nothing)


def _ssl_reason(exc: BaseException) -> str:
    """The innermost TLS error's reason, e.g. CERTIFICATE_VERIFY_FAILED."""
    inner: BaseException | None = exc
    while inner is not None:
        if isinstance(inner, ssl.SSLError) and inner.reason:
            return str(inner.reason)
        for arg in getattr(inner, "args", ()):
            if isinstance(arg, ssl.SSLError) and arg.reason:
                return str(arg.reason)
        inner = inner.__cause__ or inner.__context__
    return type(exc).__name__


def _nothing() -> None:
    return None


def graph_error_code(response: requests.Response) -> str | None:
    """Graph's `error.code` from an error reply, if the body has one."""
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"])
    return None


def request_id_of(response: requests.Response) -> str | None:
    """The id Graph gives a request, from the headers or the error body."""
    for name in ("request-id", "client-request-id"):
        if response.headers.get(name):
            return response.headers[name]
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    inner = error.get("innerError") if isinstance(error, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("request-id"), str):
        return str(inner["request-id"])
    return None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class MsalHttpClient:
    """The `http_client` msal is given: msal's GETs and POSTs go through the `Transport`."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def post(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self._transport.request("POST", url, params=params, data=data, headers=headers)

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self._transport.request("GET", url, params=params, headers=headers)

    def close(self) -> None:
        """The transport belongs to its owner; msal closing its client leaves it open."""
