"""``JulesClient``: the synchronous transport (requests), over the shared sans-IO core."""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import requests
import requests.adapters
import tenacity
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client._base import DEFAULT_CONNECT_TIMEOUT, ClientBase, normalized_activities
from airflow_provider_jules.client.errors import JulesTransportError
from airflow_provider_jules.client.models import Json, normalize_session
from airflow_provider_jules.client.retry import RetryPolicy, retry_kwargs


def _never_reached_server(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))
    return False


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Let the next network read wait at most ``seconds`` (the time left of the attempt)."""
    sock = getattr(getattr(raw, "_connection", None), "sock", None) or getattr(
        getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None
    )
    if sock is not None:
        try:
            sock.settimeout(max(0.01, seconds))
        except (OSError, ValueError):  # pragma: no cover - a closed socket: the read reports it
            pass


# ------------------------------------------------------------------------------ the attempt's watchdog
# urllib3 bounds each network read, not the status line and headers as a whole: a server that drips them
# one byte at a time would hold an attempt for ever. The connections of our own session report their socket
# to the attempt in progress (a thread-local), and a timer shuts that socket down at the attempt's deadline.
_attempt = threading.local()


class _Watchdog:
    """Cuts the sockets of one attempt at its deadline (registered with the process's one reaper thread)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + max(0.0, seconds)
        self.fired = False
        self.done = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> _Watchdog:
        _attempt.watchdog = self
        _REAPER.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.done = True
        _attempt.watchdog = None

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def cut(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


class _Reaper:
    """One daemon thread per process that fires the watchdogs whose deadline passed (no thread per call:
    starting one cost ~0.3 ms of CPU and ~1 ms of wall time per attempt). It ends after a minute idle."""

    IDLE_SECONDS = 60.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._seq = itertools.count()
        self._running = False
        self.thread: threading.Thread | None = None

    def add(self, watchdog: _Watchdog) -> None:
        with self._cond:
            heapq.heappush(self._heap, (watchdog.deadline, next(self._seq), watchdog))
            if not self._running:
                self._running = True
                self.thread = threading.Thread(target=self._run, name="jules-attempt-reaper", daemon=True)
                self.thread.start()
            self._cond.notify()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:  # bounded in time: the thread ends after IDLE_SECONDS without a watchdog
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                now = time.monotonic()
                if not self._heap:
                    if now - idle_since >= self.IDLE_SECONDS:
                        self._running = False
                        return
                    self._cond.wait(self.IDLE_SECONDS)
                    continue
                idle_since = now
                deadline, _, watchdog = self._heap[0]
                if deadline > now:
                    self._cond.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
            watchdog.cut()


_REAPER = _Reaper()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed: nothing to cut
        pass


def _report_socket(conn: Any) -> None:
    watchdog = getattr(_attempt, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(getattr(conn, "sock", None))


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:  # the status line and headers are read here
        _report_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _report_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections report their socket to the attempt's watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _watched_session() -> requests.Session:
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, _WatchedAdapter())
    return session


class Access(NamedTuple):
    """What :meth:`JulesClient.check_access` saw: the sources on the first page (0 or 1), and whether the
    API has more."""

    sources: int
    more: bool


class JulesClient(ClientBase):
    """Synchronous Jules API client. Every list method is an iterator that follows ``nextPageToken``."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        max_response_bytes: int = core.DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            retry_policy=retry_policy,
            max_response_bytes=max_response_bytes,
            proxy=proxy,
        )
        self._http = session or _watched_session()
        if session is None and self.direct:
            # Loopback: no proxy, no netrc, no environment lookups on every request (they cost ~0.3 ms).
            self._http.trust_env = False
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JulesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------- transport
    def _proxies(self) -> dict[str, str | None] | None:
        if self.direct:  # loopback: never through a proxy, whatever HTTP(S)_PROXY says
            return {"http": None, "https": None, "all": None}
        if self._proxy:
            return {"http": self._proxy, "https": self._proxy}
        return None  # the environment (HTTPS_PROXY, NO_PROXY), as requests reads it

    def _send_once(self, request: core.Request) -> Json:
        with _Watchdog(self.timeout) as watchdog:
            return self._attempt(request, watchdog)

    def _attempt(self, request: core.Request, watchdog: _Watchdog) -> Json:
        deadline = time.monotonic() + self.timeout
        error: JulesTransportError | None = None
        try:
            response = self._http.request(
                request.method,
                self._url(request),
                params=dict(request.params) or None,
                data=core.encode_body(request),
                headers=self._headers(request),
                timeout=(min(DEFAULT_CONNECT_TIMEOUT, self.timeout), self.timeout),
                allow_redirects=False,
                stream=True,
                proxies=self._proxies(),  # type: ignore[arg-type]
            )
        except requests.RequestException as exc:
            error = (
                core.deadline_exceeded(request, self.timeout)
                if watchdog.fired
                else JulesTransportError(
                    f"{core.describe(request)} failed: {type(exc).__name__}",
                    reached_server=not _never_reached_server(exc),
                    method=request.method,
                    path=request.path,
                )
            )
        if error is not None:
            raise error  # outside the except block: no chained context holding the request (and its key)
        try:
            body = self._read_body(request, response, deadline)
        finally:
            response.close()
        return core.parse_response(
            request,
            response.status_code,
            response.headers,
            body,
            response.reason or "",
            secret=self._api_key,
        )

    def _read_body(self, request: core.Request, response: requests.Response, deadline: float) -> bytes:
        """At most the limit of decompressed bytes, within the attempt's deadline (checked between reads,
        each network read waiting at most the time left)."""
        limit = core.body_limit(response.status_code, self.max_response_bytes)
        ok = 200 <= response.status_code < 300
        raw = response.raw
        if raw is None:  # a body already in memory (an adapter that builds its Response by hand)
            body = response.content or b""
            if len(body) > limit and ok:
                raise core.too_large(request, limit)
            return body[:limit]
        read1 = getattr(raw, "read1", None)
        plain = not response.headers.get("Content-Encoding")  # else bytes may wait in the decoder
        chunks: list[bytes] = []
        total = 0
        error: JulesTransportError | None = None
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise core.deadline_exceeded(request, self.timeout)
                if remaining < self.timeout - 0.5:  # else the socket's own read timeout is as tight
                    _set_read_timeout(raw, remaining)
                if read1 is not None:
                    chunk = read1(core.CHUNK_BYTES, decode_content=True)
                else:  # pragma: no cover - urllib3 < 2
                    chunk = raw.read(core.CHUNK_BYTES, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    if ok:
                        raise core.too_large(request, limit)
                    chunks.append(chunk[: limit - (total - len(chunk))])
                    break
                chunks.append(chunk)
                if plain and getattr(raw, "length_remaining", None) == 0:  # all read: no extra read call
                    break
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            timed_out = isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError))
            error = (
                core.deadline_exceeded(request, self.timeout)
                if (timed_out and time.monotonic() >= deadline - 0.05) or self._cut_by_watchdog()
                else JulesTransportError(
                    f"{core.describe(request)} failed while reading the body: {type(exc).__name__}",
                    reached_server=True,
                    method=request.method,
                    path=request.path,
                )
            )
        if error is not None:
            raise error
        return b"".join(chunks)

    @staticmethod
    def _cut_by_watchdog() -> bool:
        watchdog = getattr(_attempt, "watchdog", None)
        return bool(watchdog is not None and watchdog.fired)

    def call(self, request: core.Request, *, tolerate_404: bool = False) -> Json:
        """Send one request with the shared retry policy."""
        kwargs = retry_kwargs(request, self.retry_policy, tolerate_404=tolerate_404)
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        for attempt in tenacity.Retrying(**kwargs):
            with attempt:
                return self._send_once(request)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pages(self, request: core.Request, key: str, *, tolerate_404: bool = False) -> Iterator[Json]:
        pager = core.Pager(request)
        page: core.Request | None = request
        while page is not None:  # bounded: the Pager raises after MAX_PAGES pages
            response = self.call(page, tolerate_404=tolerate_404)
            yield from core.list_items(page, response, key)
            page = pager.next(page, response)

    # -------------------------------------------------------------------------------------- sessions
    def create_session(self, prompt: str, **fields: Any) -> Json:
        request = core.create_session(prompt, **fields)
        session = normalize_session(core.require_session(request, self.call(request)))
        self._remember_created(session)
        return session

    def get_session(self, session: str) -> Json:
        request = core.get_session(session)
        return normalize_session(core.require_session(request, self.call(request)))

    def list_sessions(self, *, page_size: int | None = None, archived: bool | None = None) -> Iterator[Json]:
        for item in self._pages(core.list_sessions(page_size=page_size, archived=archived), "sessions"):
            if core.has_session_id(item):  # a listed session without a usable id cannot be used: skipped
                yield normalize_session(item)

    def delete_session(self, session: str) -> None:
        self.call(core.delete_session(session))

    def send_message(self, session: str, prompt: str) -> None:
        self.call(core.send_message(session, prompt))

    def approve_plan(self, session: str) -> None:
        self.call(core.approve_plan(session))

    def archive_session(self, session: str) -> Json:
        return normalize_session(self.call(core.archive_session(session)))

    def unarchive_session(self, session: str) -> Json:
        return normalize_session(self.call(core.unarchive_session(session)))

    # -------------------------------------------------------------------------------------- activities
    def list_activities(
        self,
        session: str,
        *,
        created_after: str | int | None = None,
        page_size: int | None = None,
        new_session: bool = False,
    ) -> Iterator[Json]:
        """Activities oldest-first; with ``created_after`` only those created strictly later."""
        tolerate = self._is_new(session, new_session)
        if created_after is not None and self.activity_filter_supported:
            request = core.list_activities(session, page_size=page_size, created_after=created_after)
            try:
                first = self.call(request, tolerate_404=tolerate)
            except Exception as exc:
                if not self._filter_rejected(exc, created_after):
                    raise
            else:
                yield from normalized_activities(core.list_items(request, first, "activities"))
                nxt = core.Pager(request).next(request, first)
                if nxt is not None:
                    yield from normalized_activities(self._pages(nxt, "activities", tolerate_404=tolerate))
                return
        items = list(
            self._pages(
                core.list_activities(session, page_size=page_size), "activities", tolerate_404=tolerate
            )
        )
        if created_after is not None:
            items = core.filter_created_after(items, created_after)
        yield from normalized_activities(items)

    def get_activity(self, session: str, activity: str) -> Json:
        return normalized_activities([self.call(core.get_activity(session, activity))])[0]

    # -------------------------------------------------------------------------------------- sources
    def list_sources(self, *, filter: str | None = None, page_size: int | None = None) -> Iterator[Json]:
        yield from self._pages(core.list_sources(filter=filter, page_size=page_size), "sources")

    def check_access(self) -> Access:
        """One cheap authenticated call (the first page of one source, with the retry policy), for a
        connection test. Raises as any call does: a refused key is a
        :class:`~airflow_provider_jules.client.errors.JulesAuthError`."""
        request = core.list_sources(page_size=1)
        response = self.call(request)
        return Access(len(core.list_items(request, response, "sources")), bool(response.get("nextPageToken")))

    def get_source(self, source: str) -> Json:
        return self.call(core.get_source(source))
