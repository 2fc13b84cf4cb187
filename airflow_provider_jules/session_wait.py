"""The wait room: following a Jules session from a task, written once for the operators, the sensor and
``@task.jules``.

:class:`JulesConnectionMixin` holds the connection and the hook; :class:`SessionWaitMixin` holds the
operator-side wait-and-finish: one poll in the worker, then defer to
:class:`~airflow_provider_jules.triggers.jules.JulesSessionTrigger` (or keep polling in the worker), resume
from the trigger's event, build the result (:mod:`airflow_provider_jules.results`), judge it (success,
failure, skip), push the XComs and the asset-event extras, and clean up. The pure state machine of a wait is
:class:`~airflow_provider_jules._waiting.Watch`, shared with the trigger.

Imported at every DAG parse (through the operators and the sensor): no requests, httpx or tenacity here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_jules._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    conf,
)
from airflow_provider_jules._validation import boolean, duration, integer, optional_string
from airflow_provider_jules._waiting import (
    CLEANUP_ACTIONS,
    MAX_POLLS_IN_WORKER,
    Watch,
    activities_after,
    cursor_after,
    is_fatal,
    is_fatal_poll_error,
    validate_event,
)
from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import activity_kind
from airflow_provider_jules.links.jules import PULL_REQUEST_URL_KEY, SESSION_URL_KEY
from airflow_provider_jules.results import (
    Outcome,
    build_result,
    format_activity,
    pull_request_url,
    session_url,
)

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_jules.hooks.jules import JulesHook

    _OperatorBase = BaseOperator
else:
    _OperatorBase = object

Json = dict[str, Any]

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = timedelta(hours=4)
#: The longest wait any duration argument may ask for (timeout, stall_timeout, poll_interval, ...).
MAX_DURATION = timedelta(days=7)
#: Seconds a 404 on a new session's activities counts as eventual consistency (quirk Q18).
NEW_SESSION_GRACE = 120.0
FEEDBACK_POLICIES = ("fail", "wait", "reply")
#: What a ``completed_without_changes`` outcome does to the task.
NO_CHANGES_POLICIES = ("succeed", "skip", "fail")
#: Outcomes that fail the task even when the wait reached its target state.
FAILING_OUTCOMES = frozenset({Outcome.FAILED.value, Outcome.TIMED_OUT.value, Outcome.PLAN_NOT_APPROVED.value})
#: Outcomes that a retry cannot change (it would adopt the same, finished session): they fail at once.
FINAL_OUTCOMES = frozenset({Outcome.PLAN_NOT_APPROVED.value})
#: The keys of the ``extra`` of every asset event a Jules task emits for its ``outlets``.
ASSET_EXTRA_KEYS = ("session_id", "url", "outcome", "pull_request_url", "files_changed")


def default_deferrable() -> bool:
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class JulesSessionError(AirflowException):
    """A Jules session ended with an outcome that fails the task; carries the outcome and the session link."""

    def __init__(self, outcome: str, detail: str, *, session_id: str, url: str | None) -> None:
        self.outcome = outcome
        self.session_id = session_id
        self.url = url
        where = f" Open {url} to see the session." if url else ""
        super().__init__(f"Jules session {session_id} ended with outcome '{outcome}': {detail}{where}")


def seconds(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """A duration argument as seconds: positive, finite, at most :data:`MAX_DURATION` (7 days)."""
    return duration(name, value, allow_none=allow_none, maximum=MAX_DURATION.total_seconds())


def choice(name: str, value: object, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise JulesConfigError(f"{name} must be one of {options}, got {value!r}.")
    return str(value)


def flag(name: str, value: object) -> bool:
    """A boolean argument that is a boolean (``"false"`` is a non-empty string, hence true in Python)."""
    return bool(boolean(name, value))


def fail_fast(exc: BaseException) -> BaseException:
    """Errors no retry can fix (bad input, bad key, quota) fail the task at once, without burning retries."""
    if is_fatal(exc):
        failed: BaseException = AirflowFailException(str(exc))
        return failed
    return exc


def final_error(outcome: str, detail: str, *, session_id: str, url: str | None) -> AirflowFailException:
    """A :class:`JulesSessionError` that no retry can fix, raised as AirflowFailException."""
    return AirflowFailException(str(JulesSessionError(outcome, detail, session_id=session_id, url=url)))


class JulesConnectionMixin(_OperatorBase):
    """The connection (``jules_conn_id``, templated by the classes that use it) and the hook."""

    jules_conn_id: str

    @cached_property
    def hook(self) -> JulesHook:
        from airflow_provider_jules.hooks.jules import JulesHook

        return JulesHook(self.jules_conn_id)

    def _push_session(self, context: Context, session: Json) -> None:
        """XCom the session's id and links at once: the extra links work while the task is deferred."""
        ti = context["ti"]
        ti.xcom_push(key="session_id", value=session["id"])
        # Checked URLs only (a session link to jules.google.com, an https PR link); None when one fails.
        ti.xcom_push(key=SESSION_URL_KEY, value=session_url(session))
        # None until Jules opens a PR: the link stays empty instead of logging a missing XCom.
        ti.xcom_push(key=PULL_REQUEST_URL_KEY, value=pull_request_url(session))


class SessionWaitMixin(JulesConnectionMixin):
    """Follow one session until it is done, then judge its result; see the module docstring.

    The class that mixes it in sets these attributes (see ``_JulesWaitingBase`` in the operators module):
    ``deferrable``, ``timeout``, ``stall_timeout``, ``on_timeout``, ``on_kill_action``, ``on_user_feedback``,
    ``auto_reply``, ``on_no_changes``, ``artifacts_path``, ``inline_patch_limit``, ``max_poll_errors``; and
    overrides :meth:`_poll_seconds`, :meth:`_target_states` or :meth:`_stop_on_feedback` where it differs.
    """

    deferrable: bool
    timeout: Any
    stall_timeout: float | timedelta | None
    on_timeout: str
    on_kill_action: str
    on_user_feedback: str
    auto_reply: str | None
    on_no_changes: str
    artifacts_path: str | None
    inline_patch_limit: int
    max_poll_errors: int
    _followed_session: str | None = None

    # ------------------------------------------------------------------------------------ validation
    def _poll_seconds(self) -> float:
        return seconds("poll_interval", getattr(self, "poll_interval", DEFAULT_POLL_INTERVAL)) or 1.0

    def _validate_wait_args(self) -> None:
        """Checked in execute (after Jinja rendering), before any request."""
        self._poll_seconds()
        seconds("timeout", self.timeout)
        seconds("stall_timeout", self.stall_timeout, allow_none=True)
        choice("on_timeout", self.on_timeout, CLEANUP_ACTIONS)
        choice("on_kill_action", self.on_kill_action, CLEANUP_ACTIONS)
        choice("on_user_feedback", self.on_user_feedback, FEEDBACK_POLICIES)
        choice("on_no_changes", self.on_no_changes, NO_CHANGES_POLICIES)
        flag("wait_for_completion", getattr(self, "wait_for_completion", True))
        flag("deferrable", self.deferrable)
        if self.on_user_feedback == "reply" and not (
            isinstance(self.auto_reply, str) and self.auto_reply.strip()
        ):
            raise JulesConfigError('on_user_feedback="reply" needs auto_reply: the answer to send to Jules.')
        integer("inline_patch_limit", self.inline_patch_limit, minimum=0)
        integer("max_poll_errors", self.max_poll_errors, minimum=1, maximum=1_000_000)
        optional_string("auto_reply", self.auto_reply)
        optional_string("artifacts_path", self.artifacts_path)

    # ------------------------------------------------------------------------------------ waiting
    def _target_states(self) -> list[str]:
        return ["COMPLETED"]

    def _stop_on_feedback(self) -> bool:
        return self.on_user_feedback != "wait"

    def _new_watch(self, sid: str, *, settle_after: str | None = None) -> Watch:
        now = time.time()
        return Watch(
            session_id=sid,
            target_states=self._target_states(),
            stop_on_feedback=self._stop_on_feedback(),
            end_time=now + (seconds("timeout", self.timeout) or 0),
            stall_timeout=seconds("stall_timeout", self.stall_timeout, allow_none=True),
            last_progress_at=now,
            settle_after=settle_after,
            max_poll_errors=self.max_poll_errors,
        )

    def _poll_once(self, watch: Watch, new_session_until: float | None) -> Json | None:
        """One poll with the sync client, judged by the same :class:`Watch` the trigger uses."""
        try:
            session = self.hook.get_session(watch.session_id)
            new_session = new_session_until is not None and time.time() < new_session_until
            fresh = list(
                self.hook.list_activities(
                    watch.session_id, created_after=watch.cursor, new_session=new_session
                )
            )
        except Exception as exc:
            self.log.warning("Polling Jules session %s failed: %s", watch.session_id, exc)
            return watch.observe_error(exc, time.time(), fatal=is_fatal_poll_error(exc))
        watch.observe_activities(fresh)
        self._log_activities(fresh)
        return watch.observe_session(session, time.time())

    def _log_activities(self, activities: Iterable[Json]) -> None:
        for activity in activities:
            line = format_activity(activity)
            if line:
                self.log.info("[Jules] %s", line)

    def _defer_to_trigger(self, watch: Watch, *, new_session_until: float | None = None) -> NoReturn:
        """Hand the wait to the triggerer; the task resumes in :meth:`execute_complete`."""
        from airflow_provider_jules.triggers.jules import JulesSessionTrigger

        poll_interval = self._poll_seconds()
        remaining = max(0.0, (watch.end_time or time.time()) - time.time())
        self.defer(
            trigger=JulesSessionTrigger(
                **watch.kwargs(),
                jules_conn_id=self.jules_conn_id,
                poll_interval=poll_interval,
                on_kill_action=self.on_kill_action,
                new_session_until=new_session_until,
            ),
            method_name="execute_complete",
            # A backstop only: the trigger's own deadline fires first and ends in a clean timeout event.
            timeout=timedelta(seconds=remaining + 2 * poll_interval + 60),
        )

    def _wait(self, context: Context, watch: Watch, *, new_session_until: float | None = None) -> Json:
        """Wait for ``watch`` to end: one poll here, then defer, or keep polling in the worker."""
        self._followed_session = watch.session_id
        poll_interval = self._poll_seconds()
        event = self._poll_once(watch, new_session_until)
        if event is None and self.deferrable:
            self._defer_to_trigger(watch, new_session_until=new_session_until)
        for _ in range(MAX_POLLS_IN_WORKER):
            if event is not None:
                return self._finish(context, event)
            time.sleep(watch.sleep_for(poll_interval, time.time()))
            event = self._poll_once(watch, new_session_until)
        return self._finish(
            context, watch.event("error", reason="polling_errors", message="poll limit reached")
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Json:
        """Resume after the trigger: check the event against the allow-list; the session id comes from it."""
        try:
            checked = validate_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        return self._finish(context, checked)

    # ------------------------------------------------------------------------------------ finishing
    def _read_session(self, sid: str) -> tuple[Json, list[Json]]:
        try:
            session = self.hook.get_session(sid)
            # The session exists (just read): a 404 on its activities is eventual consistency (Q18).
            activities = list(self.hook.list_activities(sid, new_session=True))
        except Exception as exc:
            raise fail_fast(exc) from exc
        return session, activities

    def _finish(self, context: Context, event: Json) -> Json:
        sid = event["session_id"]
        self._followed_session = sid
        status = event["status"]
        if status == "error":
            message = f"Following Jules session {sid} failed ({event.get('reason')}): {event.get('message')}"
            if event.get("reason") == "api_error":
                raise AirflowFailException(message)
            raise AirflowException(message + ". A retry of this task adopts the same session.")
        session, activities = self._read_session(sid)
        # What the wait ended before streaming (a deadline or a stall during failed polls): logged now, so
        # every activity of the session reaches the task log at least once.
        unseen = activities_after(activities, event.get("cursor"))
        self._log_activities(unseen)
        event = {**event, "cursor": cursor_after(unseen, event.get("cursor"))}
        if status == "needs_input" and self.on_user_feedback == "reply":
            return self._reply_and_wait(context, event, session, activities)
        timed_out = status == "timeout"
        result = self._result(context, session, activities, event)
        if timed_out:
            self._cleanup(sid, self.on_timeout, why="timed out")
        return self._judge(context, status, result)

    def _result(self, context: Context, session: Json, activities: list[Json], event: Json) -> Json:
        """The result dict of a finished wait; its pull request URL goes to XCom for the extra link."""
        result = build_result(
            session,
            activities,
            timed_out=event["status"] == "timeout",
            timeout_reason=str(event.get("message") or "") or None,
            inline_patch_limit=self.inline_patch_limit,
            write_patch=(
                self._patch_writer(context, str(event["session_id"])) if self.artifacts_path else None
            ),
        )
        if result["pull_request_url"]:
            context["ti"].xcom_push(key=PULL_REQUEST_URL_KEY, value=result["pull_request_url"])
        return result

    def _judge(self, context: Context, status: str, result: Json) -> Json:
        """Success (the result), a skip or a failure, from the event's status and the result's outcome."""
        outcome = result["outcome"]
        sid = result["session_id"]
        url = result["url"]
        if status == "target" and outcome not in FAILING_OUTCOMES:
            if outcome == Outcome.COMPLETED_WITHOUT_CHANGES.value:
                self._no_changes(context, result)
            self.log.info(
                "Jules session %s: outcome %s; pull request %s", sid, outcome, result["pull_request_url"]
            )
            self._record_asset_events(context, result)
            return result
        error = JulesSessionError(outcome, self._failure_detail(result), session_id=sid, url=url)
        if outcome in FINAL_OUTCOMES:
            # A retry would adopt the same session and meet the same end: fail without burning retries.
            raise AirflowFailException(str(error)) from error
        raise error

    def _no_changes(self, context: Context, result: Json) -> None:
        """``on_no_changes``: a session that completed without a change succeeds, skips or fails."""
        sid = result["session_id"]
        text = f"Jules session {sid} completed without producing a change or a pull request."
        if self.on_no_changes == "skip":
            # The result stays readable by downstream tasks (e.g. a report with trigger_rule all_done).
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowSkipException(text + ' Skipping (on_no_changes="skip").')
        if self.on_no_changes == "fail":
            # Nothing a retry can change: the same session would be adopted and judged the same.
            raise final_error(
                Outcome.COMPLETED_WITHOUT_CHANGES.value,
                'it produced no change and no pull request (on_no_changes="fail").',
                session_id=sid,
                url=result["url"],
            )
        self.log.warning(text)

    def _record_asset_events(self, context: Context, result: Json) -> None:
        """Each asset outlet's event says which session and pull request produced it."""
        outlets = [o for o in getattr(self, "outlets", None) or [] if _is_asset(o)]
        if not outlets:
            return
        change_set = result.get("change_set") or {}
        extra = {
            "session_id": result["session_id"],
            "url": result["url"],
            "outcome": result["outcome"],
            "pull_request_url": result["pull_request_url"],
            "files_changed": list(change_set.get("files_changed") or []),
        }
        events = context["outlet_events"]
        for outlet in outlets:
            events[outlet].extra.update(extra)

    def _failure_detail(self, result: Json) -> str:
        outcome = result["outcome"]
        if outcome == Outcome.AWAITING_USER_FEEDBACK.value:
            return (
                f"Jules asks: {result['last_agent_message'] or '(no question text)'} Answer it with "
                'JulesSendMessageOperator, or set on_user_feedback="reply" or "wait".'
            )
        if outcome == Outcome.PLAN_NOT_APPROVED.value:
            return (
                "the session completed without its plan ever being approved, so nothing was delivered "
                "(quirk Q15). Approve plans with JulesApprovePlanOperator, "
                "or leave require_plan_approval=False."
            )
        if outcome == Outcome.AWAITING_PLAN_APPROVAL.value:
            return "Jules is waiting for its plan to be approved; approve it with JulesApprovePlanOperator."
        return str(
            result["failure_reason"]
            or f"the session is {result['state']}, which this task does not wait for."
        )

    def _reply_and_wait(self, context: Context, event: Json, session: Json, activities: list[Json]) -> Json:
        """Answer the current question once (never twice), then keep waiting with the same deadlines."""
        question = next((a for a in reversed(activities) if activity_kind(a) == "agentMessaged"), None)
        answered = question is None or any(
            activity_kind(a) == "userMessaged" for a in activities[activities.index(question) + 1 :]
        )
        sid = event["session_id"]
        if answered:
            self.log.info("Jules session %s: the current question was already answered; waiting.", sid)
        else:
            text = question["agentMessaged"].get("agentMessage", "") if question else ""
            self.log.info("Jules asks: %s -- replying with auto_reply.", text[:500])
            try:
                self.hook.send_message(sid, str(self.auto_reply))
            except Exception as exc:
                raise fail_fast(exc) from exc
        watch = Watch.resume(event, settle_after=session.get("updateTime"))
        watch.max_poll_errors = self.max_poll_errors
        return self._wait(context, watch)

    def _patch_writer(self, context: Context, sid: str) -> Any:
        def write(patch: str) -> str:
            from airflow.sdk import ObjectStoragePath

            ti = context["ti"]
            map_index = getattr(ti, "map_index", -1)
            suffix = "" if map_index in (None, -1) else f"-{map_index}"
            name = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{suffix}/{sid}.patch".replace(":", "_")
            path = ObjectStoragePath(str(self.artifacts_path).rstrip("/") + "/" + name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(patch)
            self.log.info("The patch (%d bytes) was written to %s", len(patch.encode()), path)
            return str(path)

        return write

    def _cleanup(self, sid: str, action: str, *, why: str) -> None:
        """Archive, delete or keep a session; best effort, never raises."""
        if action == "keep":
            self.log.info("Keeping Jules session %s (%s).", sid, why)
            return
        try:
            if action == "delete":
                self.hook.delete_session(sid)
            else:
                self.hook.archive_session(sid)
            self.log.info("Jules session %s %s; %sd it.", sid, why, action)
        except Exception as exc:
            self.log.warning("Could not %s Jules session %s: %s", action, sid, exc)

    def on_kill(self) -> None:
        """The worker-side kill (non-deferrable wait): stop the session as configured, best effort."""
        if self._followed_session:
            self._cleanup(self._followed_session, self.on_kill_action, why="task killed")


def _is_asset(outlet: object) -> bool:
    """A concrete asset (an ``Asset``; aliases and other outlets carry no event of their own here)."""
    from airflow.sdk import Asset

    return isinstance(outlet, Asset)
