"""``JulesSessionEventTrigger``: Jules sessions that reach a state, as events for ``AssetWatcher``.

An event trigger (``BaseEventTrigger``) runs in the triggerer for as long as a DAG is scheduled on an asset
it watches, and each event it yields becomes an asset event. This one watches the account's Jules sessions
(all of them, or one repository's) and yields one event per session that reaches a target state (by default
``COMPLETED`` with a pull request); the rules of a poll and of what is remembered are in
:mod:`airflow_provider_jules.events`, the guarantees in ``docs/events.rst``.

``BaseEventTrigger`` is in ``airflow.triggers.base`` on Airflow 3.1 and 3.3 alike (the Task SDK does not
export it), the one name besides ``BaseTrigger`` and ``TriggerEvent`` the provider takes from there.

Across triggerer restarts the trigger remembers what it reported in a small JSON "ledger", saved before each
batch of events is handed to Airflow: in the asset's own state store where Airflow offers one to watchers
(Airflow >= 3.3, one asset per trigger), else in an Airflow Variable named after the trigger's arguments.
Its kwargs are plain JSON and never change while it runs (an ``AssetWatcher`` trigger is identified by the
hash of its kwargs); they never hold a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.validation import duration, integer
from airflow_provider_jules.events import (
    DEFAULT_TARGET_STATES,
    Ledger,
    SessionFeed,
    SessionFilter,
    event_payload,
)

CLASSPATH = "airflow_provider_jules.triggers.events.JulesSessionEventTrigger"
#: Seconds the trigger waits after a failed poll at most (the wait doubles from ``poll_interval``).
MAX_BACKOFF = 600.0
DAY = 86_400.0


class LedgerStore(Protocol):
    """Where the ledger lives between triggerer runs (plain JSON in, plain JSON out; None: nothing yet)."""

    where: str

    async def load(self) -> object: ...

    async def save(self, value: dict[str, Any]) -> None: ...


class MemoryStore:
    """A ledger kept in this process only (tests; it does not survive a restart)."""

    where = "memory"

    def __init__(self, value: object = None) -> None:
        self.value = value
        self.saves = 0

    async def load(self) -> object:
        return self.value

    async def save(self, value: dict[str, Any]) -> None:
        self.value = json.loads(json.dumps(value))
        self.saves += 1


class VariableStore:
    """The ledger as the Airflow Variable ``key`` (JSON text), read and written through the Task SDK in a
    worker thread (``sync_to_async``), so that the triggerer's event loop never waits on it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.where = f"Airflow Variable {key!r}"

    async def load(self) -> object:
        from airflow.sdk import Variable
        from asgiref.sync import sync_to_async

        return await sync_to_async(Variable.get)(self.key, default=None)

    async def save(self, value: dict[str, Any]) -> None:
        from airflow.sdk import Variable
        from asgiref.sync import sync_to_async

        description = "State of a JulesSessionEventTrigger: the Jules sessions it reported (do not edit)."
        await sync_to_async(Variable.set)(self.key, json.dumps(value), description=description)


class AssetStateStore:
    """The ledger under ``key`` in the watched asset's state store (Airflow >= 3.3 gives a watcher one).

    When one trigger watches several assets (identical arguments in several ``AssetWatcher``), Airflow gives
    no single asset to write to: the ledger then goes to ``fallback`` (a Variable) instead.
    """

    def __init__(self, accessors: Any, key: str, fallback: LedgerStore) -> None:
        self._accessors = accessors
        self._fallback: LedgerStore | None = None
        self._spare = fallback
        self.key = key
        self.where = f"the asset state store, key {key!r}"

    async def load(self) -> object:
        if self._fallback is None:
            try:
                return await self._accessors.aget(self.key, None)
            except ValueError:  # several assets (AssetStateStoreAccessors has no single one)
                self._fallback = self._spare
                self.where = self._spare.where
        return await self._fallback.load()

    async def save(self, value: dict[str, Any]) -> None:
        if self._fallback is not None:
            await self._fallback.save(value)
            return
        await self._accessors.aset(self.key, value)


def store_for(trigger: BaseEventTrigger, key: str) -> LedgerStore:
    """The asset state store that Airflow >= 3.3 hands a watcher before ``run()``, else a Variable."""
    accessors = getattr(trigger, "asset_state_store", None)
    if accessors is None:
        return VariableStore(key)
    return AssetStateStore(accessors, key, VariableStore(key))


class JulesSessionEventTrigger(BaseEventTrigger):
    """Yield one event per Jules session that reaches a target state, for ``AssetWatcher``.

    Every argument is optional.

    :param jules_conn_id: the Airflow connection of type ``jules``.
    :param source: only sessions on this repository (``owner/repo`` or ``sources/github/owner/repo``);
        None watches every session of the account.
    :param target_states: the states that count (default ``["COMPLETED"]``).
    :param require_pull_request: a ``COMPLETED`` session counts only once it has a pull request (default
        True); other target states are not affected.
    :param poll_interval: seconds between polls.
    :param page_size: sessions per list request (1-100).
    :param max_pages: list requests per poll at most (1-100).
    :param max_events: events per poll at most (the others follow at the next poll). The default, one, keeps
        events a poll apart: on Airflow 3.1-3.3 an asset event stored while a run is being queued for the same
        asset can wait for the next event's run (apache/airflow#54659).
    :param lookback: seconds; sessions created longer ago than this (by the API's clock) are not watched.
    """

    def __init__(
        self,
        jules_conn_id: str = "jules_default",
        source: str | None = None,
        target_states: Sequence[str] = DEFAULT_TARGET_STATES,
        require_pull_request: bool = True,
        poll_interval: float = 60.0,
        page_size: int = 50,
        max_pages: int = 10,
        max_events: int = 1,
        lookback: float = 7 * DAY,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        if not isinstance(jules_conn_id, str) or not jules_conn_id.strip():
            raise JulesConfigError("jules_conn_id must name an Airflow connection, e.g. 'jules_default'.")
        self.jules_conn_id = jules_conn_id
        self.filter = SessionFilter.build(source, target_states, require_pull_request)
        self.poll_interval = float(duration("poll_interval", poll_interval, maximum=DAY) or 0)
        self.page_size = integer("page_size", page_size, minimum=1, maximum=100)
        self.max_pages = integer("max_pages", max_pages, minimum=1, maximum=100)
        self.max_events = integer("max_events", max_events, minimum=1, maximum=1000)
        self.lookback = float(duration("lookback", lookback, maximum=90 * DAY) or 0)
        #: Where the ledger lives; chosen when the trigger runs (tests may set it before).
        self.store: LedgerStore | None = None
        self._warned: set[str] = set()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The arguments, normalized (plain JSON, stable: ``AssetWatcher`` identifies a trigger by them)."""
        values = {
            "jules_conn_id": self.jules_conn_id,
            "source": self.filter.source,
            "target_states": list(self.filter.target_states),
            "require_pull_request": self.filter.require_pull_request,
            "poll_interval": self.poll_interval,
            "page_size": self.page_size,
            "max_pages": self.max_pages,
            "max_events": self.max_events,
            "lookback": self.lookback,
        }
        return (CLASSPATH, {name: values[name] for name in _PARAMETERS})

    @property
    def ledger_key(self) -> str:
        return self.filter.key(self.jules_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_jules.hooks.jules import JulesHook

        hook = JulesHook(self.jules_conn_id)
        store = self.store = self.store or store_for(self, self.ledger_key)
        feed: SessionFeed | None = None
        failures = 0
        self.log.info(
            "Watching Jules sessions (%s, states %s%s) every %.1f s; reported sessions are kept in %s",
            self.filter.source or "every repository",
            ", ".join(self.filter.target_states),
            " with a pull request" if self.filter.require_pull_request else "",
            self.poll_interval,
            store.where,
        )
        try:
            while True:  # a watcher runs until Airflow cancels it; every poll is bounded
                try:
                    if feed is None:
                        feed = await self.open_feed(store)
                    events = await self.poll(hook, store, feed)
                except Exception as exc:
                    failures += 1
                    wait = min(MAX_BACKOFF, self.poll_interval * 2 ** min(failures - 1, 20))
                    self.log.warning("Polling Jules sessions failed (%s); next try in %.0f s", exc, wait)
                    await asyncio.sleep(wait)
                    continue
                failures = 0
                for payload in events:
                    self.log.info(
                        "Jules session %s is %s: %s", payload["session_id"], payload["state"], payload["url"]
                    )
                    yield TriggerEvent(payload)
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()

    async def open_feed(self, store: LedgerStore) -> SessionFeed:
        """The feed of this run, with the ledger ``store`` holds (a new one when it holds none)."""
        ledger = await self._load(store)
        return SessionFeed(self.filter, ledger, lookback=self.lookback, max_events=self.max_events)

    async def _load(self, store: LedgerStore) -> Ledger:
        value = await store.load()
        try:
            ledger = Ledger.from_json(value)
        except (ValueError, TypeError) as exc:
            self.log.error(
                "The state in %s is unreadable (%s): starting anew. Sessions that reached a target state "
                "before this first poll are not reported; none is reported twice.",
                store.where,
                exc,
            )
            return Ledger()
        if ledger.since is not None:
            self.log.info(
                "Resuming after %d reported sessions (state in %s)", len(ledger.emitted), store.where
            )
        return ledger

    async def poll(self, hook: Any, store: LedgerStore, feed: SessionFeed) -> list[dict[str, Any]]:
        """One poll: read the list (bounded), save the ledger, return the events to hand over."""
        scan = feed.begin()
        async with contextlib.aclosing(hook.alist_session_pages(page_size=self.page_size)) as pages:
            async for page in pages:
                if not feed.read(scan, page):
                    break
                if scan.pages >= self.max_pages:
                    scan.truncated = True
                    break
        if scan.truncated:
            self._warn_once(
                "truncated",
                "The Jules session list holds more sessions to check than max_pages=%d pages of %d: older "
                "ones are checked less often. Raise max_pages, or shorten lookback.",
                self.max_pages,
                self.page_size,
            )
        if not scan.ordered:
            self._warn_once(
                "unordered",
                "The Jules session list is not ordered newest first: every poll reads up to max_pages=%d.",
                self.max_pages,
            )
        found = feed.finish(scan)
        hosts = await hook.apull_request_hosts() if found.events else ()
        payloads = [event_payload(session, hosts) for session in found.events]
        if found.ledger is not None:
            await store.save(found.ledger.to_json())  # before the events: none is ever handed over twice
            feed.adopt(found.ledger)
        if found.baseline:
            self.log.info(
                "First poll: sessions already in a target state are not reported (baseline saved in %s)",
                store.where,
            )
        if found.waiting:
            self.log.info("%d more sessions will be reported at the next poll (max_events)", found.waiting)
        return payloads

    def _warn_once(self, what: str, message: str, *args: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            self.log.warning(message, *args)


#: The names of the serialized kwargs: the constructor's parameters, in order.
_PARAMETERS = tuple(inspect.signature(JulesSessionEventTrigger.__init__).parameters)[1:]
