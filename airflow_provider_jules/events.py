"""Session events: which Jules sessions ``JulesSessionEventTrigger`` reports, and what it remembers (no I/O).

The trigger (:mod:`airflow_provider_jules.triggers.events`) reads the account's session list and feeds it,
page by page, to a :class:`SessionFeed`; the feed says when to stop reading and which sessions to report.
Three pieces, each alone testable:

* :class:`SessionFilter`: the arguments that decide *which* sessions count (source, target states, a pull
  request), and the key of the trigger's remembered state (:meth:`SessionFilter.key`).
* :class:`Ledger`: what must survive a triggerer restart, as small plain JSON: the baseline ``since`` (no
  session whose ``updateTime`` is at or before it is ever reported) and the ids already reported. The
  trigger saves it in Airflow *before* it hands the events over (:doc:`events`: no event twice).
* :class:`SessionFeed`: what a poll costs. The list comes newest first (by ``createTime``); a poll reads it
  down to the newest session the previous poll saw, or further down to the oldest session that was still
  under way then (it may have finished since), never past ``lookback`` nor ``max_pages``. Its memory of the
  previous poll lives in the running trigger only: the first poll after a (re)start reads the whole
  ``lookback`` window, which is how sessions that finished while no triggerer ran are found.

Times are compared only with the API's own timestamps (never this machine's clock): the simulator's clock can
run faster, and a real server's clock may differ from the triggerer's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import (
    TERMINAL_STATES,
    format_timestamp_ns,
    parse_state,
    session_id_of,
    source_name,
    timestamp_ns,
)
from airflow_provider_jules.jsontext import as_dict, cut, text
from airflow_provider_jules.links.urls import pull_request_outputs, pull_request_url, session_url
from airflow_provider_jules.results import classify_outcome

Json = dict[str, Any]

DEFAULT_TARGET_STATES = ("COMPLETED",)
#: Characters of a session's title in an event (Q21: a title can be the whole, multi-KB prompt).
MAX_EVENT_TITLE_CHARS = 300
#: Upper bound of one event's payload as JSON (every field is cut below it; a test holds it).
MAX_EVENT_BYTES = 4096
#: Ids the ledger remembers; past it the oldest are forgotten and ``since`` moves past them.
MAX_REMEMBERED = 500
#: Sessions still under way that one running trigger keeps an eye on (the newest are kept).
MAX_LIVE = 2000
#: A poll reads this much further down than the newest session the previous poll saw: a session created
#: just before that poll but listed only after it (an eventually consistent list) is still read.
LIST_SETTLE_NS = 60 * 1_000_000_000
LEDGER_VERSION = 1
_NS = 1_000_000_000


def _source_of(session: Json) -> str | None:
    return text(as_dict(session.get("sourceContext")).get("source"))


def _ident(session: Json) -> str | None:
    try:
        return session_id_of(session)
    except JulesConfigError:
        return None


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions count: ``source`` (canonical ``sources/...`` or None for every repository), the
    ``target_states`` and, for ``COMPLETED``, whether a pull request is required."""

    source: str | None = None
    target_states: tuple[str, ...] = DEFAULT_TARGET_STATES
    require_pull_request: bool = True

    @classmethod
    def build(
        cls, source: str | None, target_states: Sequence[str], require_pull_request: bool
    ) -> SessionFilter:
        """Checked and normalized arguments (a ``JulesConfigError`` names the wrong one)."""
        if isinstance(target_states, str) or not target_states:
            raise JulesConfigError(
                f"target_states must be a non-empty list of session states such as ['COMPLETED'], "
                f"got {target_states!r}."
            )
        states = []
        for state in target_states:
            if not isinstance(state, str) or not state.strip() or len(state) > 64:
                raise JulesConfigError(f"target_states holds {state!r}, which is not a session state.")
            if state.strip().upper() not in states:
                states.append(state.strip().upper())
        if not isinstance(require_pull_request, bool):
            raise JulesConfigError(
                f"require_pull_request must be True or False, got {require_pull_request!r}."
            )
        return cls(
            source=None if source is None else source_name(source),
            target_states=tuple(states),
            require_pull_request=require_pull_request,
        )

    def key(self, jules_conn_id: str) -> str:
        """The name of this filter's remembered state: the same for the same connection, source, states and
        pull request rule (so tuning ``poll_interval`` or ``max_pages`` keeps it), different otherwise."""
        identity = {
            "conn": jules_conn_id,
            "source": self.source,
            "states": sorted(self.target_states),
            "pr": self.require_pull_request,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"jules_session_events__{digest}"

    def concerns(self, session: Json) -> bool:
        """The session is in the watched repository (every session when no source is set)."""
        return self.source is None or _source_of(session) == self.source

    def qualifies(self, session: Json) -> bool:
        """The session is in a target state (``COMPLETED`` with a pull request when that is required)."""
        state = parse_state(session.get("state"))
        if state not in self.target_states:
            return False
        if state == "COMPLETED" and self.require_pull_request:
            return next(pull_request_outputs(session), None) is not None
        return True


def event_payload(session: Json, hosts: Iterable[str] = ()) -> Json:
    """The event of one session: small, plain JSON, every field bounded (:data:`MAX_EVENT_BYTES`).

    The URLs pass the provider's link checks (else None, logged); ``outcome`` is read from the session
    resource alone (its activities are not fetched), so a ``COMPLETED`` session without a pull request or a
    change set in its outputs reads ``completed_without_changes``.
    """
    title = text(session.get("title"))
    source = _source_of(session)
    update = text(session.get("updateTime"))
    return {
        "session_id": _ident(session),
        "url": session_url(session),
        "title": None if title is None else cut(title, MAX_EVENT_TITLE_CHARS),
        "source": None if source is None else cut(source, 512),
        "state": cut(parse_state(session.get("state")), 64),
        "outcome": classify_outcome(session, []).value,
        "pull_request_url": pull_request_url(session, hosts),
        "update_time": None if update is None or len(update) > 64 else update,
    }


@dataclass
class Ledger:
    """What the trigger remembers across restarts (see the module docstring).

    ``since`` is None before the first poll ever (the baseline poll sets it: nothing that already reached
    a target state is reported), then a time in nanoseconds (0: the account had no session at all).
    """

    since: int | None = None
    emitted: dict[str, int] = field(default_factory=dict)

    def counts(self, ident: str, update_ns: int | None) -> bool:
        """A session that qualifies is reported: not yet reported, and changed after ``since``."""
        if self.since is None or ident in self.emitted:
            return False
        return update_ns is None or update_ns > self.since

    def recorded(self, sessions: Iterable[tuple[str, int]]) -> Ledger:
        """A copy that also remembers ``sessions`` (``(id, update_ns)``), bounded: past
        :data:`MAX_REMEMBERED` ids the oldest are dropped and ``since`` moves up to them."""
        emitted = dict(self.emitted)
        emitted.update(sessions)
        since = self.since or 0
        if len(emitted) > MAX_REMEMBERED:
            ordered = sorted(emitted.items(), key=lambda item: (item[1], item[0]))
            dropped = ordered[: len(emitted) - MAX_REMEMBERED]
            since = max(since, max(update for _, update in dropped))
            emitted = dict(ordered[len(dropped) :])
        return Ledger(since=since, emitted=emitted)

    def to_json(self) -> Json:
        return {
            "version": LEDGER_VERSION,
            "since": None if self.since is None else format_timestamp_ns(self.since),
            "emitted": {ident: format_timestamp_ns(ns) for ident, ns in self.emitted.items()},
        }

    @classmethod
    def from_json(cls, value: object) -> Ledger:
        """The ledger a store held; None (nothing stored yet) is a new ledger. Anything unreadable is a
        ``ValueError``: the caller decides (the trigger starts a new baseline and says so)."""
        if value is None:
            return cls()
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict) or value.get("version") != LEDGER_VERSION:
            raise ValueError(f"not a version {LEDGER_VERSION} ledger")
        since = value.get("since")
        emitted = value.get("emitted")
        if not isinstance(emitted, dict) or len(emitted) > MAX_REMEMBERED:
            raise ValueError("'emitted' is not a mapping of at most MAX_REMEMBERED ids")
        times = {str(ident): timestamp_ns(stamp) for ident, stamp in emitted.items()}
        if any(ns is None for ns in times.values()) or (since is not None and timestamp_ns(since) is None):
            raise ValueError("a time in the ledger is not an RFC 3339 timestamp")
        return cls(
            since=None if since is None else timestamp_ns(since),
            emitted={ident: ns for ident, ns in times.items() if ns is not None},
        )


@dataclass
class Scan:
    """One poll's reading of the list: fed page by page by the trigger (:meth:`SessionFeed.begin`)."""

    stop_at: int | None
    lookback_ns: int
    reference: int = 0  # the newest time seen in this scan: the API's "now", as near as it shows it
    oldest: int | None = None  # createTime of the last session read
    ordered: bool = True  # every session so far came newest first
    pages: int = 0
    truncated: bool = False
    newest_created: int | None = None
    newest_update: int | None = None
    candidates: list[tuple[int, str, Json]] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


class SessionFeed:
    """The trigger's memory between polls (in the running trigger only) and the rules of one poll.

    :param session_filter: which sessions count.
    :param ledger: what was reported (loaded from Airflow when the trigger starts).
    :param lookback: seconds; sessions created longer than this before the newest time the list shows are
        not watched (a session under way for longer is given up).
    :param max_events: sessions reported by one poll at most; the others wait for the next poll.
    """

    def __init__(
        self, session_filter: SessionFilter, ledger: Ledger, *, lookback: float, max_events: int
    ) -> None:
        self.filter = session_filter
        self.ledger = ledger
        self.lookback_ns = int(lookback * _NS)
        self.max_events = max_events
        #: id -> createTime of the watched sessions that may still reach a target state.
        self.live: dict[str, int] = {}
        #: createTime of the newest session the last poll read (None: no poll yet in this run).
        self.newest: int | None = None

    def begin(self) -> Scan:
        """A new poll: where it may stop reading (None: only the lookback decides, as on a first poll)."""
        stop_at = None
        if self.newest is not None:
            stop_at = min([self.newest - LIST_SETTLE_NS, *self.live.values()])
        return Scan(stop_at=stop_at, lookback_ns=self.lookback_ns)

    def read(self, scan: Scan, page: Sequence[Json]) -> bool:
        """Take one page; True when the next page must be read too."""
        scan.pages += 1
        for session in page:
            self._read_one(scan, session)
        if not scan.ordered or scan.oldest is None:
            return True  # not newest first (or no times at all): nothing proves the rest is old
        floor = scan.reference - scan.lookback_ns
        if scan.stop_at is not None:
            floor = max(floor, scan.stop_at)
        return scan.oldest >= floor

    def _read_one(self, scan: Scan, session: Json) -> None:
        ident = _ident(session)
        created = timestamp_ns(session.get("createTime"))
        updated = timestamp_ns(session.get("updateTime"))
        for stamp in (created, updated):
            if stamp is not None and stamp > scan.reference:
                scan.reference = stamp
        if updated is not None and (scan.newest_update is None or updated > scan.newest_update):
            scan.newest_update = updated
        if created is not None:
            if scan.oldest is not None and created > scan.oldest:
                scan.ordered = False
            scan.oldest = created
            if scan.newest_created is None or created > scan.newest_created:
                scan.newest_created = created
        if ident is None or ident in scan.seen or not self.filter.concerns(session):
            return
        scan.seen.add(ident)
        if created is not None and created < scan.reference - scan.lookback_ns:
            return  # older than the window: not watched
        if ident in self.ledger.emitted:
            return
        if self.filter.qualifies(session):
            if self.ledger.counts(ident, updated):
                scan.candidates.append((updated or 0, ident, session))
            return
        if created is None:
            return
        if parse_state(session.get("state")) not in TERMINAL_STATES:
            scan.live[ident] = created
        elif updated is not None and updated >= scan.reference - LIST_SETTLE_NS:
            scan.live[ident] = created  # just finished without what counts: its outputs may still come

    def finish(self, scan: Scan) -> Poll:
        """End a poll that read its pages (``scan.truncated``: ``max_pages`` cut it short).

        Returns the sessions to report (oldest change first, at most ``max_events``) and the ledger to save
        *before* reporting them, or None when nothing changed. The first poll ever reports nothing: its
        ledger is the baseline. The sessions returned stay in view until their ledger is :meth:`adopt`-ed:
        when saving it fails, the next poll finds them again.
        """
        ordered = sorted(scan.candidates, key=lambda c: (c[0], c[1]))
        live = dict(scan.live)
        for _, ident, session in ordered:
            created = timestamp_ns(session.get("createTime"))
            if created is not None:
                live[ident] = created
        if scan.truncated and scan.oldest is not None:  # below where it stopped: as the last poll left it
            live.update({i: c for i, c in self.live.items() if c < scan.oldest and i not in scan.seen})
        if len(live) > MAX_LIVE:
            live = dict(sorted(live.items(), key=lambda item: item[1])[-MAX_LIVE:])
        self.live = live
        if scan.newest_created is not None:
            self.newest = max(scan.newest_created, self.newest or scan.newest_created)
        elif self.newest is None:
            self.newest = 0
        if self.ledger.since is None:
            return Poll(events=[], ledger=Ledger(since=scan.newest_update or 0), baseline=True)
        chosen = [session for _, _, session in ordered[: self.max_events]]
        if not chosen:
            return Poll(events=[], ledger=None)
        entries = [(ident, update or self.ledger.since) for update, ident, _ in ordered[: self.max_events]]
        return Poll(events=chosen, ledger=self.ledger.recorded(entries), waiting=len(ordered) - len(chosen))

    def adopt(self, ledger: Ledger) -> None:
        """The ledger was saved: from now on it is what was reported (and those sessions leave the view)."""
        self.ledger = ledger
        self.live = {ident: created for ident, created in self.live.items() if ident not in ledger.emitted}


@dataclass
class Poll:
    """What one poll found: the sessions to report and the ledger to save first (None: unchanged)."""

    events: list[Json]
    ledger: Ledger | None
    baseline: bool = False
    #: Sessions that qualify but wait for the next poll (``max_events``).
    waiting: int = 0
