"""``JulesSessionTrigger``: follows one Jules session in the triggerer until it is done.

It only waits and reports: one async client for its whole life, the incremental activity listing
(``create_time>`` the cursor) to stream each new activity into the task log, and exactly one terminal event.
Its kwargs are plain JSON (ids, the connection id, numbers, absolute wall-clock deadlines, the cursor), so a
trigger re-created from them on another triggerer resumes with the same deadlines and cursor. It never holds
a credential.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_jules.activity_log import log_activities
from airflow_provider_jules.client.timeouts import bounded
from airflow_provider_jules.watch import (
    CLEANUP_ACTIONS,
    DEFAULT_MAX_POLL_ERRORS,
    EventStatus,
    Watch,
    is_fatal_poll_error,
)

#: Upper bound on polls of one trigger run, whatever the deadline (every loop is bounded).
MAX_POLLS = 1_000_000
CLASSPATH = "airflow_provider_jules.triggers.jules.JulesSessionTrigger"


class JulesSessionTrigger(BaseTrigger):
    """Poll a Jules session until a target state, a terminal state, a question, a deadline or a stall.

    :param session_id: the session (``123`` or ``sessions/123``).
    :param jules_conn_id: the Airflow connection of type ``jules``.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline (epoch seconds); past it the event is ``timeout``/``deadline``.
    :param stall_timeout: seconds without a new activity or state change before ``timeout``/``stall``.
    :param target_states: states that end the wait with ``target``.
    :param stop_on_feedback: end with ``needs_input`` when Jules asks a question (AWAITING_USER_FEEDBACK).
    :param cursor: createTime of the newest activity already seen; only later ones are streamed.
    :param last_progress_at: epoch seconds of the last progress known when deferring (for the stall clock).
    :param settle_after: ignore target/terminal states until the session changed after this RFC 3339 time
        (set after ``sendMessage``, whose effect the state shows only a moment later).
    :param max_poll_errors: consecutive failed polls tolerated; they never count as a session failure.
    :param on_kill_action: what ``on_kill`` (Airflow >= 3.3) does to the session: archive, delete or keep.
    :param new_session_until: until this epoch time a 404 on activities is eventual consistency (Q18).
    """

    def __init__(
        self,
        session_id: str,
        jules_conn_id: str = "jules_default",
        poll_interval: float = 30.0,
        end_time: float | None = None,
        stall_timeout: float | None = None,
        target_states: Sequence[str] = ("COMPLETED",),
        stop_on_feedback: bool = True,
        cursor: str | None = None,
        last_progress_at: float | None = None,
        settle_after: str | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        on_kill_action: str = "keep",
        new_session_until: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if on_kill_action not in CLEANUP_ACTIONS:
            raise ValueError(f"on_kill_action must be one of {CLEANUP_ACTIONS}, got {on_kill_action!r}")
        #: The wait every run starts from (a triggerer restart re-creates it from the kwargs).
        self.start_state = Watch(
            session_id=session_id,
            target_states=list(target_states),
            stop_on_feedback=stop_on_feedback,
            end_time=end_time,
            stall_timeout=stall_timeout,
            cursor=cursor,
            last_progress_at=last_progress_at,
            settle_after=settle_after,
            max_poll_errors=max_poll_errors,
        )
        self.jules_conn_id = jules_conn_id
        self.poll_interval = float(poll_interval)
        self.on_kill_action = on_kill_action
        self.new_session_until = new_session_until

    @property
    def session_id(self) -> str:
        return self.start_state.session_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The Watch's persistent fields (:meth:`Watch.kwargs`) and the trigger's own settings, in the
        order of the constructor's parameters (the form every release stored)."""
        values = {
            **self.start_state.kwargs(),
            "jules_conn_id": self.jules_conn_id,
            "poll_interval": self.poll_interval,
            "on_kill_action": self.on_kill_action,
            "new_session_until": self.new_session_until,
        }
        return (CLASSPATH, {name: values[name] for name in _PARAMETERS})

    def _watch(self) -> Watch:
        return Watch(**self.start_state.kwargs())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_jules.hooks.jules import JulesHook

        watch = self._watch()
        hook = JulesHook(self.jules_conn_id)
        self.log.info(
            "Following Jules session %s (polling every %.1f s)", self.session_id, self.poll_interval
        )
        try:
            for _ in range(MAX_POLLS):
                event = await self._poll(hook, watch)
                if event is not None:
                    self.log.info("Jules session %s: %s", self.session_id, event["message"])
                    yield TriggerEvent(event)
                    return
                await asyncio.sleep(watch.sleep_for(self.poll_interval, time.time()))
            yield TriggerEvent(
                watch.event(EventStatus.ERROR, reason="polling_errors", message="poll limit reached")
            )
        finally:
            await hook.aclose()

    async def _poll(self, hook: Any, watch: Watch) -> dict[str, Any] | None:
        # A poll in flight never outlives the absolute deadline, whatever the server does (slow drip,
        # retries): at end_time it is cancelled and the deadline decides.
        budget = None if watch.end_time is None else max(0.0, watch.end_time - time.time()) + 0.05
        try:
            session, fresh = await bounded(self._read(hook, watch), budget)
        except asyncio.TimeoutError:
            return watch.check_time(time.time()) or watch.observe_error(
                TimeoutError("the poll did not finish before the deadline"), time.time(), fatal=False
            )
        except Exception as exc:
            fatal = is_fatal_poll_error(exc)
            self.log.warning("Polling Jules session %s failed: %s", self.session_id, exc)
            return watch.observe_error(exc, time.time(), fatal=fatal)
        watch.observe_activities(fresh)
        log_activities(self.log, fresh)
        previous = watch.state
        event = watch.observe_session(session, time.time())
        if watch.state != previous:
            self.log.info("Jules session %s is %s", self.session_id, watch.state)
        return event

    async def _read(self, hook: Any, watch: Watch) -> tuple[Any, list[Any]]:
        session = await hook.aget_session(self.session_id)
        new_session = self.new_session_until is not None and time.time() < self.new_session_until
        fresh = [
            a
            async for a in hook.alist_activities(
                self.session_id, created_after=watch.cursor, new_session=new_session
            )
        ]
        return session, fresh

    async def on_kill(self) -> None:
        """Runs (Airflow >= 3.3) when a user kills the deferred task: stop the session as configured."""
        if self.on_kill_action == "keep":
            self.log.info("Task killed; keeping Jules session %s as configured.", self.session_id)
            return
        from airflow_provider_jules.hooks.jules import JulesHook

        hook = JulesHook(self.jules_conn_id)
        try:
            if self.on_kill_action == "delete":
                await hook.adelete_session(self.session_id)
            else:
                await hook.aarchive_session(self.session_id)
            self.log.info("Task killed; %sd Jules session %s.", self.on_kill_action, self.session_id)
        except Exception as exc:
            self.log.warning("Could not %s Jules session %s: %s", self.on_kill_action, self.session_id, exc)
        finally:
            await hook.aclose()


#: The names of the serialized kwargs: the constructor's parameters, in order.
_PARAMETERS = tuple(inspect.signature(JulesSessionTrigger.__init__).parameters)[1:]
