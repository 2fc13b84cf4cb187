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

from airflow_provider_jules import history
from airflow_provider_jules import review as rv
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
FEEDBACK_POLICIES = ("fail", "wait", "reply", "ask")
#: What a ``completed_without_changes`` outcome does to the task.
NO_CHANGES_POLICIES = ("succeed", "skip", "fail")
#: Outcomes that fail the task even when the wait reached its target state.
FAILING_OUTCOMES = frozenset({Outcome.FAILED.value, Outcome.TIMED_OUT.value, Outcome.PLAN_NOT_APPROVED.value})
#: Outcomes that a retry cannot change (it would adopt the same, finished session): they fail at once.
FINAL_OUTCOMES = frozenset({Outcome.PLAN_NOT_APPROVED.value})
#: Waits resumed without a new request (the session still showed an answered one) before the task gives up.
MAX_IDLE_REWAITS = 20
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
    _last_session: Json | None = None  # the session as the last successful poll read it
    # A person in the loop (see :mod:`airflow_provider_jules.review`); the sensor sets none of them.
    question_timeout: float | timedelta | None = None
    review: str | None = None
    review_timeout: float | timedelta | None = None
    on_reject: str = "archive"
    on_reject_task: str = "fail"
    max_review_rounds: int = rv.DEFAULT_MAX_REVIEW_ROUNDS
    review_plan: str | None = None
    plan_review_timeout: float | timedelta | None = rv.DEFAULT_PLAN_REVIEW_TIMEOUT

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
        self._validate_review_args()

    def _validate_review_args(self) -> None:
        """The person-in-the-loop arguments; "ask" and "hitl" need Airflow's human-in-the-loop feature."""
        seconds("question_timeout", self.question_timeout, allow_none=True)
        seconds("review_timeout", self.review_timeout, allow_none=True)
        seconds("plan_review_timeout", self.plan_review_timeout, allow_none=True)
        if self.review not in rv.REVIEW_POLICIES:
            raise JulesConfigError(f'review must be None or "hitl", got {self.review!r}.')
        if self.review_plan not in rv.REVIEW_POLICIES:
            raise JulesConfigError(f'review_plan must be None or "hitl", got {self.review_plan!r}.')
        choice("on_reject", self.on_reject, rv.ON_REJECT_ACTIONS)
        choice("on_reject_task", self.on_reject_task, rv.ON_REJECT_TASK)
        integer("max_review_rounds", self.max_review_rounds, minimum=1, maximum=50)
        if self.review_plan == rv.HITL and not getattr(self, "require_plan_approval", False):
            raise JulesConfigError('review_plan="hitl" needs require_plan_approval=True.')
        if self._person_steps() and not getattr(self, "wait_for_completion", True):
            raise JulesConfigError(
                'on_user_feedback="ask", review="hitl" and review_plan="hitl" need wait_for_completion=True.'
            )
        if self._person_steps():
            missing = rv.hitl_missing()
            if missing:
                raise JulesConfigError(missing)

    def _person_steps(self) -> bool:
        return self.on_user_feedback == rv.ASK or self.review == rv.HITL or self.review_plan == rv.HITL

    # ------------------------------------------------------------------------------------ waiting
    def _target_states(self) -> list[str]:
        if self.review_plan == rv.HITL:
            return ["COMPLETED", "AWAITING_PLAN_APPROVAL"]
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
        self._last_session = session
        watch.observe_activities(fresh)
        self._log_activities(fresh)
        return watch.observe_session(session, time.time())

    def _log_activities(self, activities: Iterable[Json]) -> None:
        for activity in activities:
            line = format_activity(activity)
            if line:
                self.log.info("[Jules] %s", line)

    def _defer_to_trigger(
        self, watch: Watch, *, new_session_until: float | None = None, state: Json | None = None
    ) -> NoReturn:
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
            kwargs={"jules_state": state} if state else None,
            # A backstop only: the trigger's own deadline fires first and ends in a clean timeout event.
            timeout=timedelta(seconds=remaining + 2 * poll_interval + 60),
        )

    def _wait(
        self,
        context: Context,
        watch: Watch,
        *,
        new_session_until: float | None = None,
        state: Json | None = None,
    ) -> Json:
        """Wait for ``watch`` to end: one poll here, then defer, or keep polling in the worker.

        ``state`` is the person-in-the-loop state (:mod:`..review`), carried through the deferral.
        """
        self._followed_session = watch.session_id
        poll_interval = self._poll_seconds()
        event = self._poll_once(watch, new_session_until)
        if event is None and self.deferrable:
            self._defer_to_trigger(watch, new_session_until=new_session_until, state=state)
        for _ in range(MAX_POLLS_IN_WORKER):
            if event is not None:
                return self._finish(context, event, state)
            time.sleep(watch.sleep_for(poll_interval, time.time()))
            event = self._poll_once(watch, new_session_until)
        return self._finish(
            context, watch.event("error", reason="polling_errors", message="poll limit reached"), state
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, jules_state: Json | None = None
    ) -> Json:
        """Resume after the trigger: check the event against the allow-list; the session id comes from it."""
        try:
            checked = validate_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        return self._finish(context, checked, jules_state)

    # ------------------------------------------------------------------------------------ finishing
    def _read_session(self, sid: str) -> tuple[Json, list[Json]]:
        try:
            session = self.hook.get_session(sid)
            # The session exists (just read): a 404 on its activities is eventual consistency (Q18).
            activities = list(self.hook.list_activities(sid, new_session=True))
        except Exception as exc:
            raise fail_fast(exc) from exc
        return session, activities

    def _finish(self, context: Context, event: Json, state: Json | None = None) -> Json:
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
        if self._person_steps():
            state = state if state is not None else self._initial_state(context, sid)
            if status == "needs_input" and self.on_user_feedback == rv.ASK:
                return self._ask(context, event, session, activities, state)
            if (
                status == "target"
                and self.review_plan == rv.HITL
                and session.get("state") == "AWAITING_PLAN_APPROVAL"
            ):
                return self._open_plan_review(context, event, session, activities, state)
        timed_out = status == "timeout"
        result = self._result(context, session, activities, event)
        if state is not None:
            result["review"] = list(state.get("rounds") or [])
        if timed_out:
            self._cleanup(sid, self.on_timeout, why="timed out")
        if (
            status == "target"
            and self.review == rv.HITL
            and result["outcome"] == Outcome.COMPLETED.value
            and state is not None
        ):
            return self._open_change_review(context, event, session, activities, result, state)
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
        question = history.last_question(activities)
        answered = question is None or history.question_answered(activities, history.activity_id(question))
        sid = event["session_id"]
        if answered:
            self.log.info("Jules session %s: the current question was already answered; waiting.", sid)
        else:
            text = history.question_text(question)
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

    # ------------------------------------------------------------------------------------ people in the loop
    #: True when every completion of the session belongs to this task (it created the session): a retry
    #: can then count the change requests already sent from the session's history.
    _owns_session_history: bool = False

    def _initial_state(self, context: Context, sid: str) -> Json:
        """The person-in-the-loop state of a fresh try: the review rounds kept in the task state store
        (Airflow >= 3.3) by an earlier try that followed the same session."""
        rounds: list[Json] = []
        store: Any = context.get("task_state_store")
        if store is not None:
            try:
                kept = store.get(rv.ROUNDS_KEY)
            except Exception as exc:  # the store is a help for retries, never a reason to fail
                self.log.warning("Could not read the review rounds from the task state store: %s", exc)
                kept = None
            if (
                isinstance(kept, dict)
                and kept.get("session_id") == sid
                and isinstance(kept.get("rounds"), list)
            ):
                rounds = list(kept["rounds"])
        return {"rounds": rounds, "forms": 0}

    def _save_rounds(self, context: Context, sid: str, rounds: list[Json]) -> None:
        store: Any = context.get("task_state_store")
        if store is None:
            return
        try:
            store.set(rv.ROUNDS_KEY, {"session_id": sid, "rounds": rounds})
        except Exception as exc:
            self.log.warning("Could not keep the review rounds in the task state store: %s", exc)

    def _snapshot(self, session: Json, activities: list[Json]) -> Json:
        """A result dict for a form (no patch file written, no XCom pushed)."""
        return build_result(session, activities, inline_patch_limit=self.inline_patch_limit)

    def _person_timeout(self, own: float | timedelta | None, event: Json) -> float | None:
        """A form's timeout: its own, cut to what is left of the task's overall ``timeout``."""
        values = [v for v in (seconds("form timeout", own, allow_none=True),) if v is not None]
        end_time = event.get("end_time")
        if isinstance(end_time, (int, float)):
            values.append(max(1.0, float(end_time) - time.time()))
        return min(values) if values else None

    def _open(self, context: Context, state: Json, request: str, result: Json, timeout: float | None) -> Json:
        """Show ``request`` to a person (Required Actions) and wait for the answer in resume_from_person."""
        forms = int(state.get("forms") or 0) + 1
        if forms > rv.MAX_FORMS:
            raise AirflowFailException(
                f"Jules session {result['session_id']}: {rv.MAX_FORMS} forms were opened for this task; "
                "giving up (every loop is bounded)."
            )
        state = {**state, "forms": forms}
        self.log.info("Waiting for a person on the Required Actions page:\n%s", request)
        context["ti"].xcom_push(key=rv.REQUEST_XCOM_KEY, value=request)
        options = rv.form_options(
            ask=self.on_user_feedback == rv.ASK,
            review=self.review == rv.HITL,
            review_plan=self.review_plan == rv.HITL,
        )
        params = rv.form_params(ask=self.on_user_feedback == rv.ASK, review=self.review == rv.HITL)
        rv.open_form(
            self,
            context,
            rv.build_form(request, result, options, params),
            method_name="resume_from_person",
            kwargs={"jules_state": state},
            timeout_seconds=timeout,
            poke_interval=min(5.0, self._poll_seconds()),
        )

    def _rewait(
        self,
        context: Context,
        event: Json,
        session: Json,
        state: Json,
        *,
        target_states: list[str] | None = None,
    ) -> Json:
        """Follow the session again with the same deadlines and cursor, once it moved on from ``session``."""
        watch = Watch.resume(event, settle_after=session.get("updateTime"))
        watch.max_poll_errors = self.max_poll_errors
        if target_states is not None:
            watch.target_states = list(target_states)
        kept = {k: v for k, v in state.items() if k in ("rounds", "forms", "plan_done", "idle")}
        return self._wait(context, watch, state=kept)

    def _idle_rewait(self, state: Json, sid: str) -> Json:
        """Count a wait resumed without a new request (already answered): bounded, never a silent loop."""
        idle = int(state.get("idle") or 0) + 1
        if idle > MAX_IDLE_REWAITS:
            raise AirflowException(
                f"Jules session {sid} kept showing a request that was already answered ({idle} times); "
                "giving up. A retry of this task adopts the same session."
            )
        return {**state, "idle": idle}

    def _ask(self, context: Context, event: Json, session: Json, activities: list[Json], state: Json) -> Json:
        """``on_user_feedback="ask"``: show Jules's question (once) and wait for the person's answer."""
        sid = event["session_id"]
        question = history.last_question(activities)
        qid = history.activity_id(question) if question else None
        if question is None or history.question_answered(activities, qid):
            self.log.info("Jules session %s: the current question was already answered; waiting.", sid)
            return self._rewait(context, event, session, self._idle_rewait(state, sid))
        result = self._snapshot(session, activities)
        request = rv.question_markdown(result, history.question_text(question))
        state = {**state, "step": "question", "event": event, "question_id": qid}
        return self._open(context, state, request, result, self._person_timeout(self.question_timeout, event))

    def _open_change_review(
        self, context: Context, event: Json, session: Json, activities: list[Json], result: Json, state: Json
    ) -> Json:
        """``review="hitl"``: show the finished change for review (Approve, Request changes, Reject)."""
        sid = event["session_id"]
        sent, latest_answered = history.completions_answered(activities)
        if latest_answered:
            self.log.info("Jules session %s: changes were already requested for this change; waiting.", sid)
            state = self._idle_rewait(state, sid)
            return self._rewait(context, event, session, state, target_states=["COMPLETED"])
        rounds = list(state.get("rounds") or [])
        done = max(len(rounds), sent if self._owns_session_history else 0)
        number = done + 1
        request = rv.change_markdown(result, round_number=number, max_rounds=self.max_review_rounds)
        state = {**state, "step": "change", "event": event, "round": number}
        return self._open(context, state, request, result, self._person_timeout(self.review_timeout, event))

    def _open_plan_review(
        self, context: Context, event: Json, session: Json, activities: list[Json], state: Json
    ) -> Json:
        """``review_plan="hitl"``: show the plan (Approve, Reject) while Jules waits for approval."""
        result = self._snapshot(session, activities)
        state = {**state, "step": "plan", "event": event}
        timeout = self._person_timeout(self.plan_review_timeout, event)
        return self._open(context, state, rv.plan_review_markdown(result), result, timeout)

    def resume_from_person(
        self, context: Context, event: Any = None, jules_state: Json | None = None
    ) -> Json:
        """Resume after the person answered (or the form timed out): act on the answer, then follow Jules."""
        state = dict(jules_state or {})
        step = state.get("step")
        try:
            jules_event = validate_event(state.get("event"))
        except ValueError as exc:
            raise AirflowException(f"Resumed from a Required Actions form without its state: {exc}") from None
        if step not in ("question", "change", "plan"):
            raise AirflowException(f"Resumed from a Required Actions form of an unknown step {step!r}.")
        sid = jules_event["session_id"]
        self._followed_session = sid
        answer = rv.read_answer(event)
        session, activities = self._read_session(sid)
        who = answer.reviewer or "the reviewer"
        if answer.option is not None:
            self.log.info("%s chose %r on the %s form of Jules session %s.", who, answer.option, step, sid)
        if step == "question":
            return self._after_question(context, jules_event, session, activities, state, answer)
        if step == "plan":
            return self._after_plan(context, jules_event, session, activities, state, answer)
        return self._after_change(context, jules_event, session, activities, state, answer)

    def _after_question(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: Json,
        answer: rv.Answer,
    ) -> Json:
        sid = event["session_id"]
        qid = state.get("question_id")
        question = history.find(activities, qid)
        text = history.question_text(question) if question else "(the question is no longer in the session)"
        if answer.error is not None:
            if answer.timed_out:
                self._cleanup(sid, self.on_timeout, why="got no answer to its question in time")
                raise JulesSessionError(
                    Outcome.AWAITING_USER_FEEDBACK.value,
                    f"no one answered Jules's question before the question timeout. Jules asks: {text}",
                    session_id=sid,
                    url=session.get("url"),
                )
            raise AirflowException(f"The question form of Jules session {sid} failed: {answer.error}")
        if answer.option == rv.REJECT:
            return self._reject(context, sid, self._snapshot(session, activities), "Jules's question", answer)
        if history.question_answered(activities, qid):
            self.log.info("Jules session %s: the question was already answered; not sending it again.", sid)
            return self._rewait(context, event, session, state)
        if not answer.message:
            self.log.warning("The answer to Jules's question was empty; asking again.")
            result = self._snapshot(session, activities)
            timeout = self._person_timeout(self.question_timeout, event)
            return self._open(context, state, rv.question_markdown(result, text), result, timeout)
        try:
            self.hook.send_message(sid, answer.message)
        except Exception as exc:
            raise fail_fast(exc) from exc
        self.log.info("Sent the answer of %s to Jules session %s.", answer.reviewer or "the person", sid)
        return self._rewait(context, event, session, state)

    def _after_plan(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: Json,
        answer: rv.Answer,
    ) -> Json:
        sid = event["session_id"]
        if answer.error is not None:
            if answer.timed_out:
                self._cleanup(sid, self.on_timeout, why="got no plan review in time")
                raise final_error(
                    Outcome.PLAN_NOT_APPROVED.value,
                    "no one approved the plan before plan_review_timeout, which stays inside Jules's "
                    "approval window of about 10 minutes (quirk Q15).",
                    session_id=sid,
                    url=session.get("url"),
                )
            raise AirflowException(f"The plan form of Jules session {sid} failed: {answer.error}")
        result = self._snapshot(session, activities)
        if answer.option == rv.REJECT:
            return self._reject(context, sid, result, "Jules's plan", answer)
        if answer.option != rv.APPROVE:
            self.log.warning("%r does not apply to a plan (Approve or Reject); asking again.", answer.option)
            timeout = self._person_timeout(self.plan_review_timeout, event)
            return self._open(context, state, rv.plan_review_markdown(result), result, timeout)
        if session.get("state") == "AWAITING_PLAN_APPROVAL" and history.plan_pending(activities):
            try:
                self.hook.approve_plan(sid)
            except Exception as exc:
                raise fail_fast(exc) from exc
            self.log.info("Approved the plan of Jules session %s (%s).", sid, answer.reviewer or "reviewer")
        elif result["outcome"] == Outcome.PLAN_NOT_APPROVED.value:
            raise final_error(
                Outcome.PLAN_NOT_APPROVED.value,
                "the plan was approved after Jules's approval window closed (quirk Q15).",
                session_id=sid,
                url=result["url"],
            )
        else:
            self.log.info("The plan of Jules session %s was already approved; not approving again.", sid)
        return self._rewait(
            context, event, session, {**state, "plan_done": True}, target_states=["COMPLETED"]
        )

    def _after_change(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: Json,
        answer: rv.Answer,
    ) -> Json:
        sid = event["session_id"]
        result = self._result(context, session, activities, event)
        rounds = list(state.get("rounds") or [])
        number = int(state.get("round") or len(rounds) + 1)
        result["review"] = rounds
        if answer.error is not None:
            if answer.timed_out:
                raise JulesSessionError(
                    result["outcome"],
                    f"no one answered review round {number} before the review timeout; the session and its "
                    "change are kept.",
                    session_id=sid,
                    url=result["url"],
                )
            raise AirflowException(f"The review form of Jules session {sid} failed: {answer.error}")

        def record(decision: str) -> list[Json]:
            kept = rv.record_round(
                rounds, decision=decision, answer=answer, result=result, round_number=number
            )
            self._save_rounds(context, sid, kept)
            result["review"] = kept
            return kept

        if answer.option == rv.APPROVE:
            record("approved")
            return self._judge(context, "target", result)
        if answer.option == rv.REJECT:
            record("rejected")
            return self._reject(context, sid, result, "Jules's change", answer)
        if not answer.message:
            self.log.warning("%r came without a message for Jules; asking again.", answer.option)
            request = rv.change_markdown(result, round_number=number, max_rounds=self.max_review_rounds)
            return self._open(
                context, state, request, result, self._person_timeout(self.review_timeout, event)
            )
        if number >= self.max_review_rounds:
            record("changes_requested")
            raise final_error(
                result["outcome"],
                f"review round {number} asked for changes, and max_review_rounds={self.max_review_rounds} is "
                f"reached: the feedback was not sent to Jules. Feedback: {answer.message[:2000]}",
                session_id=sid,
                url=result["url"],
            )
        kept = record("changes_requested")
        if history.completions_answered(activities)[1]:
            self.log.info("Jules session %s: the changes were already requested; not sending again.", sid)
        else:
            try:
                self.hook.send_message(sid, answer.message)
            except Exception as exc:
                raise fail_fast(exc) from exc
            self.log.info("Review round %d: sent the requested changes to Jules session %s.", number, sid)
        return self._rewait(context, event, session, {**state, "rounds": kept}, target_states=["COMPLETED"])

    def _reject(self, context: Context, sid: str, result: Json, what: str, answer: rv.Answer) -> Json:
        """Reject: the session is archived, deleted or kept (``on_reject``); the task fails or skips."""
        who = answer.reviewer or "the reviewer"
        self._cleanup(sid, self.on_reject, why=f"was rejected by {who}")
        text = f"Jules session {sid}: {who} rejected {what}."
        if answer.message:
            text += f" Comment: {answer.message[:2000]}"
        if self.on_reject_task == "skip":
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowSkipException(text + ' Skipping (on_reject_task="skip").')
        raise AirflowFailException(text)

    def on_kill(self) -> None:
        """The worker-side kill (non-deferrable wait): stop the session as configured, best effort."""
        if self._followed_session:
            self._cleanup(self._followed_session, self.on_kill_action, why="task killed")


def _is_asset(outlet: object) -> bool:
    """A concrete asset (an ``Asset``; aliases and other outlets carry no event of their own here)."""
    from airflow.sdk import Asset

    return isinstance(outlet, Asset)
