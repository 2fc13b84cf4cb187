"""The wait room: following a Jules session from a task, written once for the operators, the sensor and
``@task.jules``.

A task owns a :class:`SessionFollower` and calls it: one poll in the worker, then defer to
:class:`~airflow_provider_jules.triggers.jules.JulesSessionTrigger` (or keep polling in the worker), resume
from the trigger's event, build the result (:mod:`airflow_provider_jules.results`), judge it (success,
failure, skip), push the XComs and the asset-event extras, and clean up. Its arguments come checked, as
:class:`~airflow_provider_jules.options.WaitOptions`; a person in the loop is the
:class:`~airflow_provider_jules.review.ReviewFlow` it owns. The pure state machine of a wait is
:class:`~airflow_provider_jules.watch.Watch`, shared with the trigger.

Imported at every DAG parse (through the operators and the sensor): no requests, httpx or tenacity here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_jules import history
from airflow_provider_jules._compat import AirflowException, AirflowFailException, AirflowSkipException
from airflow_provider_jules.activity_log import log_activities
from airflow_provider_jules.failures import JulesSessionError, fail_fast, final_error
from airflow_provider_jules.links.jules import PULL_REQUEST_URL_KEY, SESSION_URL_KEY
from airflow_provider_jules.links.urls import hosts_of
from airflow_provider_jules.options import WaitOptions
from airflow_provider_jules.results import (
    Outcome,
    build_result,
    pull_request_url,
    session_url,
)
from airflow_provider_jules.watch import (
    MAX_POLLS_IN_WORKER,
    EventStatus,
    Watch,
    activities_after,
    cursor_after,
    is_fatal_poll_error,
    validate_event,
)

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_jules.hooks.jules import JulesHook
    from airflow_provider_jules.review import ReviewFlow, ReviewOptions, ReviewState

    _OperatorBase = BaseOperator
else:
    _OperatorBase = object

Json = dict[str, Any]

#: Outcomes that fail the task even when the wait reached its target state.
FAILING_OUTCOMES = frozenset({Outcome.FAILED.value, Outcome.TIMED_OUT.value, Outcome.PLAN_NOT_APPROVED.value})
#: Outcomes that a retry cannot change (it would adopt the same, finished session): they fail at once.
FINAL_OUTCOMES = frozenset({Outcome.PLAN_NOT_APPROVED.value})
#: The keys of the ``extra`` of every asset event a Jules task emits for its ``outlets``.
ASSET_EXTRA_KEYS = ("session_id", "url", "outcome", "pull_request_url", "files_changed")


class JulesConnectionMixin(_OperatorBase):
    """The connection (``jules_conn_id``, templated by the classes that use it) and the hook."""

    jules_conn_id: str

    @cached_property
    def hook(self) -> JulesHook:
        from airflow_provider_jules.hooks.jules import JulesHook

        return JulesHook(self.jules_conn_id)


def push_session(context: Context, session: Json, hook: object) -> None:
    """XCom the session's id and links at once: the extra links work while the task is deferred.

    ``hook`` is the task's :class:`~airflow_provider_jules.hooks.jules.JulesHook`: its connection may add
    pull request hosts (GitHub Enterprise) to github.com.
    """
    ti = context["ti"]
    ti.xcom_push(key="session_id", value=session["id"])
    # Checked URLs only (a session link to jules.google.com, a PR link to github.com or an added host);
    # None when one fails.
    ti.xcom_push(key=SESSION_URL_KEY, value=session_url(session))
    # None until Jules opens a PR: the link stays empty instead of logging a missing XCom.
    ti.xcom_push(key=PULL_REQUEST_URL_KEY, value=pull_request_url(session, hosts_of(hook)))


class SessionFollower:
    """Follow one session for ``task`` until it is done, then judge its result; see the module docstring.

    ``task`` is the operator or sensor that owns the follower: it defers (``task.defer``), logs
    (``task.log``) and names the asset outlets (``task.outlets``).
    """

    def __init__(
        self,
        task: BaseOperator,
        options: WaitOptions,
        *,
        hook: Any,
        conn_id: str,
        review: ReviewOptions | None = None,
    ) -> None:
        self.task = task
        self.options = options
        self.hook = hook
        self.conn_id = conn_id
        self.log = task.log
        self.followed: str | None = None  # the session the task follows (a kill stops it)
        self.last_session: Json | None = None  # the session as the last successful read saw it
        # The last result judged, success or not (or the snapshot of a task that does not wait): with
        # last_session, what the task's OpenLineage facets report (docs "Lineage").
        self.last_result: Json | None = None
        self.review_options = review
        # Only a task with a person in the loop reviews: the others never read or keep a review state.
        self.review: ReviewFlow | None = None
        if review is not None and review.person_steps:
            from airflow_provider_jules.review import ReviewFlow

            self.review = ReviewFlow(self, review)

    # ------------------------------------------------------------------------------------ waiting
    def new_watch(self, sid: str, *, settle_after: str | None = None) -> Watch:
        now = time.time()
        return Watch(
            session_id=sid,
            target_states=list(self.options.target_states),
            stop_on_feedback=self.options.stop_on_feedback,
            end_time=now + self.options.timeout,
            stall_timeout=self.options.stall_timeout,
            last_progress_at=now,
            settle_after=settle_after,
            max_poll_errors=self.options.max_poll_errors,
        )

    def poll_once(self, watch: Watch, new_session_until: float | None = None) -> Json | None:
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
        self.last_session = session
        watch.observe_activities(fresh)
        self.log_activities(fresh)
        return watch.observe_session(session, time.time())

    def log_activities(self, activities: Iterable[Json]) -> None:
        log_activities(self.log, activities)

    def defer(
        self, watch: Watch, *, new_session_until: float | None = None, state: ReviewState | None = None
    ) -> NoReturn:
        """Hand the wait to the triggerer; the task resumes in ``execute_complete``."""
        from airflow_provider_jules.triggers.jules import JulesSessionTrigger

        poll_interval = self.options.poll_interval
        remaining = max(0.0, (watch.end_time or time.time()) - time.time())
        stored = state.to_json() if state is not None else None
        self.task.defer(
            trigger=JulesSessionTrigger(
                **watch.kwargs(),
                jules_conn_id=self.conn_id,
                poll_interval=poll_interval,
                on_kill_action=self.options.on_kill_action,
                new_session_until=new_session_until,
            ),
            method_name="execute_complete",
            kwargs={"jules_state": stored} if stored else None,
            # A backstop only: the trigger's own deadline fires first and ends in a clean timeout event.
            timeout=timedelta(seconds=remaining + 2 * poll_interval + 60),
        )

    def follow(
        self,
        context: Context,
        watch: Watch,
        *,
        new_session_until: float | None = None,
        state: ReviewState | None = None,
    ) -> Json:
        """Wait for ``watch`` to end: one poll here, then defer, or keep polling in the worker.

        ``state`` is the person-in-the-loop state (:mod:`..review`), carried through the deferral.
        """
        self.followed = watch.session_id
        poll_interval = self.options.poll_interval
        event = self.poll_once(watch, new_session_until)
        if event is None and self.options.deferrable:
            self.defer(watch, new_session_until=new_session_until, state=state)
        for _ in range(MAX_POLLS_IN_WORKER):
            if event is not None:
                return self.finish(context, event, state)
            time.sleep(watch.sleep_for(poll_interval, time.time()))
            event = self.poll_once(watch, new_session_until)
        return self.finish(
            context,
            watch.event(EventStatus.ERROR, reason="polling_errors", message="poll limit reached"),
            state,
        )

    def rewait(
        self,
        context: Context,
        event: Json,
        session: Json,
        state: ReviewState | None,
        *,
        target_states: list[str] | None = None,
    ) -> Json:
        """Follow the session again with the same deadlines and cursor, once it moved on from ``session``."""
        watch = Watch.resume(event, settle_after=session.get("updateTime"))
        watch.max_poll_errors = self.options.max_poll_errors
        if target_states is not None:
            watch.target_states = list(target_states)
        return self.follow(context, watch, state=state.kept() if state is not None else None)

    def resume(self, context: Context, event: object, jules_state: Json | None = None) -> Json:
        """Resume after the trigger: check the event against the allow-list; the session id comes from it."""
        try:
            checked = validate_event(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        state = None
        if jules_state is not None:
            from airflow_provider_jules.review import ReviewState

            state = ReviewState.from_json(jules_state)
        return self.finish(context, checked, state)

    def resume_from_person(self, context: Context, event: object, jules_state: Json | None = None) -> Json:
        """Resume after a person answered a form (or it timed out)."""
        from airflow_provider_jules.review import ReviewFlow

        if self.review_options is None:
            raise AirflowException("Resumed from a Required Actions form, but this task has no review.")
        return ReviewFlow(self, self.review_options).resume(context, event, jules_state)

    # ------------------------------------------------------------------------------------ finishing
    def read_session(self, sid: str) -> tuple[Json, list[Json]]:
        try:
            session = self.hook.get_session(sid)
            # The session exists (just read): a 404 on its activities is eventual consistency (Q18).
            activities = list(self.hook.list_activities(sid, new_session=True))
        except Exception as exc:
            raise fail_fast(exc) from exc
        self.last_session = session
        return session, activities

    def finish(self, context: Context, event: Json, state: ReviewState | None = None) -> Json:
        sid = event["session_id"]
        self.followed = sid
        status = event["status"]
        if status == EventStatus.ERROR:
            message = f"Following Jules session {sid} failed ({event.get('reason')}): {event.get('message')}"
            if event.get("reason") == "api_error":
                raise AirflowFailException(message)
            raise AirflowException(message + ". A retry of this task adopts the same session.")
        session, activities = self.read_session(sid)
        # What the wait ended before streaming (a deadline or a stall during failed polls): logged now, so
        # every activity of the session reaches the task log at least once.
        unseen = activities_after(activities, event.get("cursor"))
        self.log_activities(unseen)
        event = {**event, "cursor": cursor_after(unseen, event.get("cursor"))}
        if status == EventStatus.NEEDS_INPUT and self.options.on_user_feedback == "reply":
            return self._reply_and_wait(context, event, session, activities)
        if self.review is not None:
            state = state if state is not None else self.review.initial_state(context, sid)
            opened = self.review.before_result(context, event, session, activities, state)
            if opened is not None:
                return opened
        result = self.result(context, session, activities, event)
        if state is not None:
            result["review"] = state.round_list
        if status == EventStatus.TIMEOUT:
            self.cleanup(sid, self.options.on_timeout, why="timed out")
        if self.review is not None and state is not None:
            opened = self.review.after_result(context, event, session, activities, result, state)
            if opened is not None:
                return opened
        return self.judge(context, status, result)

    def snapshot(self, session: Json, activities: list[Json]) -> Json:
        """A result dict for a form (no patch file written, no XCom pushed)."""
        limit, hosts = self.options.inline_patch_limit, hosts_of(self.hook)
        return build_result(session, activities, inline_patch_limit=limit, pull_request_hosts=hosts)

    def started(self, session: Json) -> Json:
        """The result of a task that does not wait: the session as it was created (outcome ``running``)."""
        self.last_session = session
        self.last_result = self.snapshot(session, [])
        return self.last_result

    def result(self, context: Context, session: Json, activities: list[Json], event: Json) -> Json:
        """The result dict of a finished wait; its pull request URL goes to XCom for the extra link."""
        path = self.options.artifacts_path
        sid = str(event["session_id"])
        result = build_result(
            session,
            activities,
            timed_out=event["status"] == EventStatus.TIMEOUT,
            timeout_reason=str(event.get("message") or "") or None,
            inline_patch_limit=self.options.inline_patch_limit,
            write_patch=patch_writer(self, context, path, sid) if path else None,
            write_media=media_writer(self, context, path, sid) if path else None,
            pull_request_hosts=hosts_of(self.hook),
        )
        if result["media_dropped"] and not path:
            self.log.info(
                "Jules session %s attached %d media files (screenshots); they are not kept: set "
                "artifacts_path to have them written and listed in the result and the review form.",
                sid,
                result["media_dropped"],
            )
        if result["pull_request_url"]:
            context["ti"].xcom_push(key=PULL_REQUEST_URL_KEY, value=result["pull_request_url"])
        return result

    def judge(self, context: Context, status: str, result: Json) -> Json:
        """Success (the result), a skip or a failure, from the event's status and the result's outcome."""
        self.last_result = result
        outcome = result["outcome"]
        sid = result["session_id"]
        url = result["url"]
        if status == EventStatus.TARGET and outcome not in FAILING_OUTCOMES:
            if outcome == Outcome.COMPLETED_WITHOUT_CHANGES.value:
                judge_no_changes(self.options.on_no_changes, self.log, context, result)
            self.log.info(
                "Jules session %s: outcome %s; pull request %s", sid, outcome, result["pull_request_url"]
            )
            record_asset_events(self.task, context, result)
            return result
        error = JulesSessionError(outcome, failure_detail(result), session_id=sid, url=url)
        if outcome in FINAL_OUTCOMES:
            # A retry would adopt the same session and meet the same end: fail without burning retries.
            raise AirflowFailException(str(error)) from error
        raise error

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
                self.hook.send_message(sid, str(self.options.auto_reply))
            except Exception as exc:
                raise fail_fast(exc) from exc
        return self.rewait(context, event, session, None)

    # ------------------------------------------------------------------------------------ cleaning up
    def cleanup(self, sid: str, action: str, *, why: str) -> None:
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
        if self.followed:
            self.cleanup(self.followed, self.options.on_kill_action, why="task killed")


def judge_no_changes(policy: str, log: Any, context: Context, result: Json) -> None:
    """``on_no_changes`` (``policy``): a session that completed without a change succeeds, skips or fails."""
    sid = result["session_id"]
    text = f"Jules session {sid} completed without producing a change or a pull request."
    if policy == "skip":
        # The result stays readable by downstream tasks (e.g. a report with trigger_rule all_done).
        context["ti"].xcom_push(key="return_value", value=result)
        raise AirflowSkipException(text + ' Skipping (on_no_changes="skip").')
    if policy == "fail":
        # Nothing a retry can change: the same session would be adopted and judged the same.
        raise final_error(
            Outcome.COMPLETED_WITHOUT_CHANGES.value,
            'it produced no change and no pull request (on_no_changes="fail").',
            session_id=sid,
            url=result["url"],
        )
    log.warning(text)


def failure_detail(result: Json) -> str:
    """Why a result fails the task, and what to do about it."""
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
        result["failure_reason"] or f"the session is {result['state']}, which this task does not wait for."
    )


def record_asset_events(task: BaseOperator, context: Context, result: Json) -> None:
    """Each asset outlet's event says which session and pull request produced it."""
    outlets = [o for o in task.outlets or [] if _is_asset(o)]
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


def _is_asset(outlet: object) -> bool:
    """A concrete asset (an ``Asset``; aliases and other outlets carry no event of their own here)."""
    from airflow.sdk import Asset

    return isinstance(outlet, Asset)


def task_folder(context: Context) -> str:
    """``<dag_id>/<run_id>/<task_id>[-<map_index>]`` (``:`` replaced by ``_``): where a task instance's
    artifacts go under ``artifacts_path``."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    suffix = "" if map_index in (None, -1) else f"-{map_index}"
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{suffix}".replace(":", "_")


def patch_writer(follower: SessionFollower, context: Context, root: str, sid: str) -> Callable[[str], str]:
    """Writes a patch too large for XCom under ``root`` (an ObjectStoragePath URL); returns its URI."""

    def write(patch: str) -> str:
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(str(root).rstrip("/") + "/" + f"{task_folder(context)}/{sid}.patch")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(patch)
        follower.log.info("The patch (%d bytes) was written to %s", len(patch.encode()), path)
        return str(path)

    return write


def media_writer(
    follower: SessionFollower, context: Context, root: str, sid: str
) -> Callable[[str, bytes], str]:
    """Writes a session's media file (its name made by :mod:`airflow_provider_jules.media`) to
    ``<root>/<task folder>/<session id>-media/<name>``; returns its URI. A file already there with the
    same size (an earlier attempt, an earlier review round) is kept as it is: each file is written once."""

    def write(name: str, data: bytes) -> str:
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(str(root).rstrip("/") + f"/{task_folder(context)}/{sid}-media/{name}")
        if path.exists() and path.stat().st_size == len(data):
            return str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        follower.log.info("Jules's media %s (%d bytes) was written to %s", name, len(data), path)
        return str(path)

    return write
