"""The wait logic, written once for the deferrable trigger and the in-worker polling loop.

A :class:`Watch` follows one session: it takes each poll's session and new activities, keeps the activity
cursor and the time of the last progress, and says when the wait is over by returning the one terminal
event. No I/O here: the trigger feeds it from the async client, the operator's ``deferrable=False`` path
from the sync client, so both end with the same outcome rules.

Event statuses (:class:`EventStatus`, the allow-list checked by ``execute_complete``):

* ``target``: the session reached one of the target states;
* ``terminal``: it reached COMPLETED or FAILED without that being a target;
* ``needs_input``: it waits for an answer (AWAITING_USER_FEEDBACK) and the caller asked to stop there;
* ``timeout``: the deadline passed (``reason="deadline"``) or nothing moved for ``stall_timeout``
  (``reason="stall"``, quirk Q17);
* ``error``: polling failed ``max_poll_errors`` times in a row, or with an error no retry can fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_jules.client.models import (
    TERMINAL_STATES,
    activity_kind,
    activity_time_ns,
    format_timestamp_ns,
    parse_timestamp_ns,
)

Json = dict[str, Any]

#: What to do with a session on timeout or kill.
CLEANUP_ACTIONS = ("archive", "delete", "keep")


class EventStatus(str, Enum):
    """The status of a wait's one terminal event. A ``str`` enum: events carry the plain ``value``."""

    TARGET = "target"
    TERMINAL = "terminal"
    NEEDS_INPUT = "needs_input"
    TIMEOUT = "timeout"
    ERROR = "error"


EVENT_STATUSES = frozenset(status.value for status in EventStatus)
FEEDBACK_STATE = "AWAITING_USER_FEEDBACK"
DEFAULT_MAX_POLL_ERRORS = 5


class InvalidEventError(ValueError):
    """A trigger event that is missing, malformed or of an unknown status: never treated as success."""


def validate_event(event: object) -> Json:
    """Allow-list check of a trigger event (a lost payload or a version skew is an error, not a success)."""
    if not isinstance(event, dict):
        raise InvalidEventError(
            f"The Jules trigger returned no usable event ({event!r}); treating it as a failure."
        )
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise InvalidEventError(
            f"The Jules trigger returned an unknown status {status!r} "
            f"(expected one of {sorted(EVENT_STATUSES)}); "
            "the triggerer and the worker may run different provider versions."
        )
    if not isinstance(event.get("session_id"), str) or not event["session_id"]:
        raise InvalidEventError("The Jules trigger event carries no session_id.")
    return event


#: The fields of a Watch that a trigger carries in its kwargs (and so survive a triggerer restart).
WATCH_KWARGS = (
    "session_id",
    "target_states",
    "stop_on_feedback",
    "end_time",
    "stall_timeout",
    "cursor",
    "last_progress_at",
    "settle_after",
    "max_poll_errors",
)


@dataclass
class Watch:
    """The state of one wait. Every field is plain JSON, so it survives serialization."""

    session_id: str
    target_states: list[str]
    stop_on_feedback: bool = True
    end_time: float | None = None
    stall_timeout: float | None = None
    cursor: str | None = None  # createTime of the newest activity seen (RFC 3339)
    last_progress_at: float | None = None  # epoch seconds of the last state change or activity
    settle_after: str | None = None  # updateTime before our last action: states count once it changes
    max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS
    state: str | None = None
    consecutive_errors: int = 0
    activities_seen: int = 0
    last_question_id: str | None = None
    update_time: str | None = None  # the session's last updateTime seen (a change is progress)
    saw_agent_activity: bool = False  # this run observed an activity that Jules (not we) created

    def kwargs(self) -> Json:
        """The persistent part of the wait, as plain JSON (see :data:`WATCH_KWARGS`)."""
        out = {name: getattr(self, name) for name in WATCH_KWARGS}
        out["target_states"] = list(self.target_states)
        return out

    # ------------------------------------------------------------------------------------------ events
    def event(self, status: EventStatus, *, reason: str = "", message: str = "") -> Json:
        return {
            "status": EventStatus(status).value,  # plain JSON: the same string as before the enum
            "reason": reason,
            "message": message,
            "session_id": self.session_id,
            "state": self.state,
            "cursor": self.cursor,
            "last_progress_at": self.last_progress_at,
            "question_activity_id": self.last_question_id,
            "end_time": self.end_time,
            "stall_timeout": self.stall_timeout,
            "target_states": list(self.target_states),
            "stop_on_feedback": self.stop_on_feedback,
        }

    @classmethod
    def resume(cls, event: Json, *, settle_after: str | None = None) -> Watch:
        """A new wait that continues the one that produced ``event``: same deadlines, same cursor."""
        return cls(
            session_id=str(event["session_id"]),
            target_states=list(event.get("target_states") or ["COMPLETED"]),
            stop_on_feedback=bool(event.get("stop_on_feedback", True)),
            end_time=event.get("end_time"),
            stall_timeout=event.get("stall_timeout"),
            cursor=event.get("cursor"),
            last_progress_at=event.get("last_progress_at"),
            settle_after=settle_after,
            state=event.get("state"),
        )

    # ------------------------------------------------------------------------------------------ feeding
    def observe_activities(self, activities: list[Json], now: float | None = None) -> None:
        """Advance the cursor over new activities (oldest first); new activities are progress."""
        newest_ns = None
        for activity in activities:
            ns = activity_time_ns(activity)
            if ns is not None and (newest_ns is None or ns > newest_ns):
                newest_ns = ns
            self.activities_seen += 1
            if activity.get("originator") != "user":
                self.saw_agent_activity = True
            if activity_kind(activity) == "agentMessaged":
                self.last_question_id = str(activity.get("id") or "") or self.last_question_id
        if newest_ns is not None:
            current = parse_timestamp_ns(self.cursor) if self.cursor else None
            if current is None or newest_ns > current:
                self.cursor = format_timestamp_ns(newest_ns)
        if activities:
            self._progress(time.time() if now is None else now)

    def _progress(self, at: float) -> None:
        # Progress is stamped with our clock when we *see* a change, never with the server's timestamps:
        # a server clock that runs ahead (or a simulator on a fast clock) must not hide a stall.
        if self.last_progress_at is None or at > self.last_progress_at:
            self.last_progress_at = at

    def observe_session(self, session: Json, now: float) -> Json | None:
        """Judge one poll (after its activities were observed). Returns the terminal event, or None."""
        self.consecutive_errors = 0
        state = str(session.get("state") or "STATE_UNSPECIFIED")
        if state != self.state:
            if self.state is not None:
                self._progress(now)
            self.state = state
        updated = session.get("updateTime")
        if isinstance(updated, str) and updated != self.update_time:
            if self.update_time is not None:
                self._progress(now)
            self.update_time = updated
        if self.last_progress_at is None:
            self.last_progress_at = now
        if self._settled(session):
            if state in self.target_states:
                return self.event(EventStatus.TARGET, message=f"Session reached {state}.")
            if state in TERMINAL_STATES:
                return self.event(EventStatus.TERMINAL, message=f"Session ended in {state}.")
            if self.stop_on_feedback and state == FEEDBACK_STATE:
                return self.event(EventStatus.NEEDS_INPUT, message="Jules is waiting for an answer.")
        return self.check_time(now)

    def _settled(self, session: Json) -> bool:
        """False while the session still shows its state from before our last action (e.g. sendMessage).

        ``settle_after`` is the session's ``updateTime`` as read just before the action: the wait counts
        states again once the session changed (a different updateTime) or Jules added an activity. Both
        compare server values with server values, so clock skew cannot make it settle early.
        """
        if not self.settle_after:
            return True
        changed = session.get("updateTime")
        if (isinstance(changed, str) and changed != self.settle_after) or self.saw_agent_activity:
            self.settle_after = None
            return True
        return False

    def check_time(self, now: float) -> Json | None:
        if self.end_time is not None and now >= self.end_time:
            return self.event(
                EventStatus.TIMEOUT,
                reason="deadline",
                message=f"Session {self.session_id} did not finish before the timeout.",
            )
        if self.stall_timeout is not None and self.last_progress_at is not None:
            idle = now - self.last_progress_at
            if idle >= self.stall_timeout:
                return self.event(
                    EventStatus.TIMEOUT,
                    reason="stall",
                    message=(
                        f"Session {self.session_id} stalled: no new activity and no state change for "
                        f"{idle:.0f} s (stall_timeout={self.stall_timeout:.0f} s), last state {self.state}."
                    ),
                )
        return None

    def observe_error(self, exc: BaseException, now: float, *, fatal: bool) -> Json | None:
        """A failed poll. Transient failures count against a budget and never as a session failure."""
        if fatal:
            return self.event(EventStatus.ERROR, reason="api_error", message=str(exc))
        self.consecutive_errors += 1
        if self.consecutive_errors >= self.max_poll_errors:
            return self.event(
                EventStatus.ERROR,
                reason="polling_errors",
                message=f"Polling failed {self.consecutive_errors} times in a row; last error: {exc}",
            )
        return self.check_time(now)

    def sleep_for(self, poll_interval: float, now: float) -> float:
        """How long to sleep before the next poll: the interval, shortened to wake at the deadline."""
        wait = poll_interval
        if self.end_time is not None:
            wait = min(wait, max(0.0, self.end_time - now))
        return max(0.0, wait)


def cursor_after(activities: list[Json], cursor: str | None) -> str | None:
    """The cursor once ``activities`` were streamed: the newest createTime among them and ``cursor``."""
    times = [t for t in (activity_time_ns(a) for a in activities) if t is not None]
    if not times:
        return cursor
    try:
        current = parse_timestamp_ns(cursor) if cursor else None
    except ValueError:
        current = None
    newest = max(times)
    return format_timestamp_ns(newest) if current is None or newest > current else cursor


def activities_after(activities: list[Json], cursor: object) -> list[Json]:
    """The activities a wait has not streamed yet: created after its cursor (all of them without one)."""
    try:
        cutoff = parse_timestamp_ns(cursor) if isinstance(cursor, str) and cursor else None
    except ValueError:
        cutoff = None
    if cutoff is None:
        return list(activities)
    return [a for a in activities if (activity_time_ns(a) or 0) > cutoff]


def is_fatal_poll_error(exc: BaseException) -> bool:
    """Whether a failed poll (GET session, then GET its activities) ends the wait at once.

    A 404 on the *activities* of a session is eventual consistency after create (quirk Q18) and can outlast
    the client's own short 404 grace (e.g. on an adopted session): it counts against the polling error
    budget like a 5xx. A 404 on the session itself (deleted) stays fatal.
    """
    from airflow_provider_jules.client.errors import JulesNotFoundError

    if isinstance(exc, JulesNotFoundError) and exc.path.endswith("/activities"):
        return False
    return is_fatal(exc)


def is_fatal(exc: BaseException) -> bool:
    """Errors that no retry can fix: bad key, bad request, unknown session, exhausted quota."""
    from airflow_provider_jules.client.errors import (
        JulesAuthError,
        JulesConfigError,
        JulesInvalidArgumentError,
        JulesNotFoundError,
        JulesQuotaExhaustedError,
    )

    return isinstance(
        exc,
        (
            JulesAuthError,
            JulesInvalidArgumentError,
            JulesNotFoundError,
            JulesQuotaExhaustedError,
            JulesConfigError,
        ),
    )


#: Upper bound on polls of one in-worker wait (deferrable=False), whatever the deadline.
MAX_POLLS_IN_WORKER = 1_000_000
