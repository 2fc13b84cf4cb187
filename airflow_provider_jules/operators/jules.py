"""Operators that put Jules into a DAG.

``JulesCreateSessionOperator`` creates a session (or adopts the one an earlier attempt of the same task
instance created), pushes ``session_id`` and ``session_url`` at once, then waits: deferred in the triggerer
(``deferrable=True``), or polling in the worker, with the same outcome rules either way. It returns the result
dict of :mod:`airflow_provider_jules.results` and pushes ``pull_request_url``.

This module is imported at every DAG parse: it must not import requests, httpx or tenacity. The hook, the
client and the trigger's HTTP side load only when a task runs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_jules._compat import AirflowException, AirflowFailException, conf
from airflow_provider_jules._waiting import (
    CLEANUP_ACTIONS,
    MAX_POLLS_IN_WORKER,
    Watch,
    is_fatal,
    is_fatal_poll_error,
    validate_event,
)
from airflow_provider_jules.client.errors import JulesConfigError, JulesError, JulesNotFoundError
from airflow_provider_jules.client.models import activity_kind, session_id, source_name
from airflow_provider_jules.links.jules import (
    PULL_REQUEST_URL_KEY,
    SESSION_URL_KEY,
    JulesPullRequestLink,
    JulesSessionLink,
)
from airflow_provider_jules.results import DEFAULT_INLINE_PATCH_LIMIT, Outcome, build_result, format_activity

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_jules.hooks.jules import JulesHook

Json = dict[str, Any]

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = timedelta(hours=4)
#: Seconds a 404 on a new session's activities counts as eventual consistency (quirk Q18).
NEW_SESSION_GRACE = 120.0
FEEDBACK_POLICIES = ("fail", "wait", "reply")
#: Outcomes that fail the task even when the wait reached its target state.
FAILING_OUTCOMES = frozenset({Outcome.FAILED.value, Outcome.TIMED_OUT.value, Outcome.PLAN_NOT_APPROVED.value})
#: Seconds between the listings that look for the session of an ambiguous create.
RECONCILE_WAITS = (2.0, 4.0)
#: Outcomes that a retry cannot change (it would adopt the same, finished session): they fail at once.
FINAL_OUTCOMES = frozenset({Outcome.PLAN_NOT_APPROVED.value})
STATE_KEY = "jules_session_id"  # task_state_store key (Airflow >= 3.3); renaming it breaks in-flight retries


def _default_deferrable() -> bool:
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class JulesSessionError(AirflowException):
    """A Jules session ended with an outcome that fails the task; carries the outcome and the session link."""

    def __init__(self, outcome: str, detail: str, *, session_id: str, url: str | None) -> None:
        self.outcome = outcome
        self.session_id = session_id
        self.url = url
        where = f" Open {url} to see the session." if url else ""
        super().__init__(f"Jules session {session_id} ended with outcome '{outcome}': {detail}{where}")


def _seconds(name: str, value: float | timedelta | None, *, allow_none: bool = False) -> float | None:
    from airflow_provider_jules._validation import duration

    return duration(name, value, allow_none=allow_none)


def _choice(name: str, value: str, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise JulesConfigError(f"{name} must be one of {options}, got {value!r}.")
    return value


def _fail_fast(exc: BaseException) -> BaseException:
    """Errors no retry can fix (bad input, bad key, quota) fail the task at once, without burning retries."""
    if is_fatal(exc):
        failed: BaseException = AirflowFailException(str(exc))
        return failed
    return exc


class _JulesBase(BaseOperator):
    """Shared base: the connection and the hook."""

    def __init__(self, *, jules_conn_id: str = "jules_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.jules_conn_id = jules_conn_id

    @cached_property
    def hook(self) -> JulesHook:
        from airflow_provider_jules.hooks.jules import JulesHook

        return JulesHook(self.jules_conn_id)

    def _push_session(self, context: Context, session: Json) -> None:
        """XCom the session's id and links at once: the extra links work while the task is deferred."""
        from airflow_provider_jules.results import pull_request_url, session_url

        ti = context["ti"]
        ti.xcom_push(key="session_id", value=session["id"])
        # Checked URLs only (a session link to jules.google.com, an https PR link); None when one fails.
        ti.xcom_push(key=SESSION_URL_KEY, value=session_url(session))
        # None until Jules opens a PR: the link stays empty instead of logging a missing XCom.
        ti.xcom_push(key=PULL_REQUEST_URL_KEY, value=pull_request_url(session))


class _JulesSessionBase(_JulesBase):
    """Operators about one session carry the "Jules Session" and "Jules Pull Request" links."""

    operator_extra_links = (JulesSessionLink(), JulesPullRequestLink())


class _JulesWaitingBase(_JulesSessionBase):
    """The wait-and-finish logic, written once for every operator that follows a session.

    :param wait_for_completion: wait for the session to finish before the task ends.
    :param deferrable: free the worker slot while waiting (defaults to ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls of the session.
    :param timeout: how long to wait (seconds or timedelta), enforced as an absolute deadline by the trigger.
    :param stall_timeout: fail with ``timed_out`` when nothing moves for this long (quirk Q17). None: off.
    :param on_timeout: what to do with the session on timeout: ``archive`` (default: it stops working and
        keeps its history), ``delete`` or ``keep``.
    :param on_kill_action: what to do with the session when the task is killed: archive, delete or keep.
    :param on_user_feedback: when Jules asks a question: ``fail`` (default), ``wait`` (for an answer given
        elsewhere) or ``reply`` (answer each question once with ``auto_reply`` and keep waiting).
    :param auto_reply: the answer sent with ``on_user_feedback="reply"``.
    :param artifacts_path: ObjectStoragePath URL (``file://...``, ``s3://...``) where a patch larger than
        ``inline_patch_limit`` is written; its URI goes to ``change_set.patch_uri``.
    :param inline_patch_limit: bytes of patch kept inline in the XCom result.
    :param max_poll_errors: consecutive failed polls tolerated before the task fails (they never count as a
        session failure).
    """

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        stall_timeout: float | timedelta | None = None,
        on_timeout: str = "archive",
        on_kill_action: str = "archive",
        on_user_feedback: str = "fail",
        auto_reply: str | None = None,
        artifacts_path: str | None = None,
        inline_patch_limit: int = DEFAULT_INLINE_PATCH_LIMIT,
        max_poll_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.on_timeout = on_timeout
        self.on_kill_action = on_kill_action
        self.on_user_feedback = on_user_feedback
        self.auto_reply = auto_reply
        self.artifacts_path = artifacts_path
        self.inline_patch_limit = inline_patch_limit
        self.max_poll_errors = max_poll_errors
        self._followed_session: str | None = None

    # ------------------------------------------------------------------------------------ validation
    def _validate_wait_args(self) -> None:
        """Checked in execute (after Jinja rendering), before any request."""
        _seconds("poll_interval", self.poll_interval)
        _seconds("timeout", self.timeout)
        _seconds("stall_timeout", self.stall_timeout, allow_none=True)
        _choice("on_timeout", self.on_timeout, CLEANUP_ACTIONS)
        _choice("on_kill_action", self.on_kill_action, CLEANUP_ACTIONS)
        _choice("on_user_feedback", self.on_user_feedback, FEEDBACK_POLICIES)
        if self.on_user_feedback == "reply" and not (
            isinstance(self.auto_reply, str) and self.auto_reply.strip()
        ):
            raise JulesConfigError('on_user_feedback="reply" needs auto_reply: the answer to send to Jules.')
        from airflow_provider_jules._validation import boolean, integer, optional_string

        integer("inline_patch_limit", self.inline_patch_limit, minimum=0)
        integer("max_poll_errors", self.max_poll_errors, minimum=1, maximum=1_000_000)
        boolean("wait_for_completion", self.wait_for_completion)
        boolean("deferrable", self.deferrable)
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
            end_time=now + (_seconds("timeout", self.timeout) or 0),
            stall_timeout=_seconds("stall_timeout", self.stall_timeout, allow_none=True),
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
        for activity in fresh:
            line = format_activity(activity)
            if line:
                self.log.info("[Jules] %s", line)
        return watch.observe_session(session, time.time())

    def _wait(self, context: Context, watch: Watch, *, new_session_until: float | None = None) -> Json:
        """Wait for ``watch`` to end: one poll here, then defer, or keep polling in the worker."""
        self._followed_session = watch.session_id
        poll_interval = _seconds("poll_interval", self.poll_interval) or DEFAULT_POLL_INTERVAL
        event = self._poll_once(watch, new_session_until)
        if event is None and self.deferrable:
            from airflow_provider_jules.triggers.jules import JulesSessionTrigger

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

    def _finish(self, context: Context, event: Json) -> Json:
        sid = event["session_id"]
        self._followed_session = sid
        status = event["status"]
        if status == "error":
            message = f"Following Jules session {sid} failed ({event.get('reason')}): {event.get('message')}"
            if event.get("reason") == "api_error":
                raise AirflowFailException(message)
            raise AirflowException(message + ". A retry of this task adopts the same session.")
        try:
            session = self.hook.get_session(sid)
            # The session exists (just read): a 404 on its activities is eventual consistency (Q18).
            activities = list(self.hook.list_activities(sid, new_session=True))
        except Exception as exc:
            raise _fail_fast(exc) from exc
        if status == "needs_input" and self.on_user_feedback == "reply":
            return self._reply_and_wait(context, event, session, activities)
        timed_out = status == "timeout"
        result = build_result(
            session,
            activities,
            timed_out=timed_out,
            timeout_reason=str(event.get("message") or "") or None,
            inline_patch_limit=self.inline_patch_limit,
            write_patch=self._patch_writer(context, sid) if self.artifacts_path else None,
        )
        if result["pull_request_url"]:
            context["ti"].xcom_push(key=PULL_REQUEST_URL_KEY, value=result["pull_request_url"])
        if timed_out:
            self._cleanup(sid, self.on_timeout, why="timed out")
        return self._judge(status, result)

    def _judge(self, status: str, result: Json) -> Json:
        outcome = result["outcome"]
        sid = result["session_id"]
        url = result["url"]
        if status == "target" and outcome not in FAILING_OUTCOMES:
            if outcome == Outcome.COMPLETED_WITHOUT_CHANGES.value:
                self.log.warning(
                    "Jules session %s completed without producing a change or a pull request.", sid
                )
            self.log.info(
                "Jules session %s: outcome %s; pull request %s", sid, outcome, result["pull_request_url"]
            )
            return result
        if outcome == Outcome.AWAITING_USER_FEEDBACK.value:
            detail = f"Jules asks: {result['last_agent_message'] or '(no question text)'}"
            detail += ' Answer it with JulesSendMessageOperator, or set on_user_feedback="reply" or "wait".'
        elif outcome == Outcome.PLAN_NOT_APPROVED.value:
            detail = (
                "the session completed without its plan ever being approved, so nothing was delivered "
                "(quirk Q15). Approve plans with JulesApprovePlanOperator, "
                "or leave require_plan_approval=False."
            )
        elif outcome == Outcome.AWAITING_PLAN_APPROVAL.value:
            detail = "Jules is waiting for its plan to be approved; approve it with JulesApprovePlanOperator."
        else:
            detail = (
                result["failure_reason"]
                or f"the session is {result['state']}, which this task does not wait for."
            )
        error = JulesSessionError(outcome, detail, session_id=sid, url=url)
        if outcome in FINAL_OUTCOMES:
            # A retry would adopt the same session and meet the same end: fail without burning retries.
            raise AirflowFailException(str(error)) from error
        raise error

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
                raise _fail_fast(exc) from exc
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


def _final_error(outcome: str, detail: str, *, session_id: str, url: str | None) -> AirflowFailException:
    """A :class:`JulesSessionError` that no retry can fix, raised as AirflowFailException."""
    return AirflowFailException(str(JulesSessionError(outcome, detail, session_id=session_id, url=url)))


def run_marker(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The deterministic marker of one task instance (all its tries), put in the session title."""
    key = f"{dag_id}\x1f{run_id}\x1f{task_id}\x1f{map_index if map_index is not None else -1}"
    return "airflow-" + hashlib.sha256(key.encode()).hexdigest()[:16]


class JulesCreateSessionOperator(_JulesWaitingBase):
    """Create a Jules session on a repository and (by default) wait until Jules is done.

    :param prompt: what Jules should do (templated).
    :param source: the repository: ``owner/repo``, ``github/owner/repo`` or ``sources/github/owner/repo``
        (templated); ``None`` creates a repoless session.
    :param starting_branch: branch to start from (templated); default: the source's default branch.
    :param title: session title (templated); default names the DAG, task and run. A marker of the task
        instance is always appended, so a retry can find the session its earlier attempt created.
    :param require_plan_approval: Jules waits for plan approval (JulesApprovePlanOperator, or the web app).
    :param auto_create_pr: let Jules open a pull request when it has a final patch (``AUTO_CREATE_PR``).
    :param automation_mode: the raw API value; overrides ``auto_create_pr`` when set.
    :param adopt_existing_session: on a retry, a restart or an ambiguous create, adopt the session an earlier
        attempt of this task instance created, instead of creating another (default True).

    Every parameter of the wait (``deferrable``, ``poll_interval``, ``timeout``, ``stall_timeout``,
    ``on_timeout``, ``on_user_feedback``, ``auto_reply``, ``artifacts_path``, ...) is described on the base
    class. Returns the result dict; pushes ``session_id``, ``session_url`` and ``pull_request_url``.
    """

    template_fields: Sequence[str] = (
        "prompt",
        "source",
        "starting_branch",
        "title",
        "auto_reply",
        "artifacts_path",
    )
    template_fields_renderers = {"prompt": "md"}

    def __init__(
        self,
        *,
        prompt: str,
        source: str | None,
        starting_branch: str | None = None,
        title: str | None = None,
        require_plan_approval: bool = False,
        auto_create_pr: bool = True,
        automation_mode: str | None = None,
        adopt_existing_session: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.source = source
        self.starting_branch = starting_branch
        self.title = title
        self.require_plan_approval = require_plan_approval
        self.auto_create_pr = auto_create_pr
        self.automation_mode = automation_mode
        self.adopt_existing_session = adopt_existing_session

    def _validate(self) -> None:
        from airflow_provider_jules._validation import boolean, optional_string

        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise JulesConfigError("prompt must be a non-empty string: tell Jules what to do.")
        optional_string("title", self.title)
        boolean("require_plan_approval", self.require_plan_approval)
        boolean("auto_create_pr", self.auto_create_pr)
        boolean("adopt_existing_session", self.adopt_existing_session)
        if self.source is not None:
            self.source = source_name(self.source)
        if self.starting_branch is not None and (
            not isinstance(self.starting_branch, str) or not self.starting_branch.strip()
        ):
            raise JulesConfigError("starting_branch must be a branch name, or None for the default branch.")
        if self.starting_branch is not None and self.source is None:
            raise JulesConfigError("starting_branch needs a source: name the repository in source.")
        if self.automation_mode is not None:
            from airflow_provider_jules.client.models import AUTOMATION_MODES

            _choice("automation_mode", self.automation_mode, sorted(AUTOMATION_MODES))
        if not self.wait_for_completion and self.on_user_feedback == "reply":
            raise JulesConfigError('on_user_feedback="reply" needs wait_for_completion=True.')
        self._validate_wait_args()

    def execute(self, context: Context) -> Json | None:
        try:
            self._validate()
            session, created_now = self._create_or_adopt(context)
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc
        sid = session["id"]
        self._push_session(context, session)
        self.log.info("Jules session %s: %s", sid, session.get("url") or "(no URL yet)")
        if not self.wait_for_completion:
            return build_result(session, [], inline_patch_limit=self.inline_patch_limit)
        grace = time.time() + NEW_SESSION_GRACE if created_now else None
        return self._wait(context, self._new_watch(sid), new_session_until=grace)

    # ------------------------------------------------------------------------------------ create / adopt
    def _marker(self, context: Context) -> str:
        ti = context["ti"]
        return run_marker(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))

    def _title(self, context: Context, marker: str) -> str:
        if self.title and self.title.strip():
            base = self.title.strip()
        else:
            ti = context["ti"]
            map_index = getattr(ti, "map_index", -1)
            mapped = "" if map_index in (None, -1) else f"[{map_index}]"
            base = f"Airflow {ti.dag_id}.{ti.task_id}{mapped} run {ti.run_id}"
        return f"{base} [{marker}]"

    def _create_or_adopt(self, context: Context) -> tuple[Json, bool]:
        marker = self._marker(context)
        store: Any = context.get("task_state_store")  # Airflow >= 3.3
        ti = context["ti"]
        if self.adopt_existing_session:
            adopted = self._find_earlier_session(store, marker, try_number=getattr(ti, "try_number", 1))
            if adopted is not None:
                return adopted, False
        branch = self.starting_branch
        if self.source is not None and branch is None:
            branch = self._default_branch(self.source)
        mode = self.automation_mode or ("AUTO_CREATE_PR" if self.auto_create_pr else None)
        try:
            session = self.hook.create_session(
                self.prompt,
                source=self.source,
                starting_branch=branch,
                title=self._title(context, marker),
                require_plan_approval=self.require_plan_approval or None,
                automation_mode=mode,
            )
        except JulesError as exc:
            if not _ambiguous(exc) or not self.adopt_existing_session:
                raise
            self.log.warning("Creating the session was ambiguous (%s); looking for it by its marker.", exc)
            found = self._find_by_marker(marker, attempts=3)
            if found is None:
                raise AirflowException(
                    f"Creating the Jules session was ambiguous ({exc}) and no session with marker "
                    f"{marker} is visible yet. Not creating another (that could duplicate it): the task's "
                    "retry will adopt the session if it exists, or create one if it does not."
                ) from exc
            self.log.info("Adopting session %s, created by the ambiguous call.", found["id"])
            session = found
        if store is not None:
            store.set(STATE_KEY, session["id"])
        return session, True

    def _default_branch(self, source: str) -> str:
        from airflow_provider_jules.client.models import default_branch

        branch = default_branch(self.hook.get_source(source))
        if not branch:
            raise JulesConfigError(
                f"Source {source} reports no default branch: set starting_branch explicitly."
            )
        return str(branch)

    def _find_earlier_session(self, store: Any, marker: str, *, try_number: int) -> Json | None:
        """The session an earlier attempt of this task instance created, if it is worth adopting."""
        candidate: Json | None = None
        stored = store.get(STATE_KEY) if store is not None else None
        if stored:
            try:
                candidate = self.hook.get_session(str(stored))
            except JulesNotFoundError:
                self.log.warning("Session %s of an earlier attempt was deleted; creating a new one.", stored)
                return None
        elif try_number > 1:
            candidate = self._find_by_marker(marker, attempts=1)
        if candidate is None:
            return None
        sid, state = candidate["id"], candidate.get("state")
        if state == "FAILED":
            self.log.warning("Session %s of an earlier attempt FAILED; creating a new one.", sid)
            return None
        if candidate.get("archived"):
            self.log.warning(
                "Session %s of an earlier attempt was archived (timed out or killed); creating a new one.",
                sid,
            )
            return None
        self.log.info(
            "Adopting session %s (state %s), created by an earlier attempt of this task.", sid, state
        )
        return candidate

    def _find_by_marker(self, marker: str, *, attempts: int) -> Json | None:
        """Newest visible session whose title carries ``marker`` (bounded: 5 pages of 100 per attempt)."""
        for attempt in range(attempts):
            if attempt:
                time.sleep(RECONCILE_WAITS[min(attempt, len(RECONCILE_WAITS)) - 1])
            found: list[Json] = []
            for index, session in enumerate(self.hook.list_sessions(page_size=100)):
                if marker in str(session.get("title") or ""):
                    found.append(session)
                if index >= 499:
                    break
            if found:
                return max(found, key=lambda s: str(s.get("createTime") or ""))
        return None


def _ambiguous(exc: JulesError) -> bool:
    """A create whose outcome is unknown: a 5xx, or a transport failure after the request was sent."""
    from airflow_provider_jules.client.errors import JulesServerError, JulesTransportError

    if isinstance(exc, JulesServerError):
        return True
    return isinstance(exc, JulesTransportError) and exc.reached_server


class JulesSendMessageOperator(_JulesWaitingBase):
    """Send a message to a session (e.g. answer Jules's question, or ask for more work).

    :param session_id: the session (templated), e.g. ``{{ ti.xcom_pull('create', key='session_id') }}``.
    :param prompt: the message (templated).
    :param wait_for_completion: then wait for the session to complete (default False).
    """

    template_fields: Sequence[str] = ("session_id", "prompt", "auto_reply", "artifacts_path")

    def __init__(
        self, *, session_id: str, prompt: str, wait_for_completion: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(wait_for_completion=wait_for_completion, **kwargs)
        self.session_id = session_id
        self.prompt = prompt

    def execute(self, context: Context) -> Json | None:
        try:
            sid = session_id(self.session_id)
            if not isinstance(self.prompt, str) or not self.prompt.strip():
                raise JulesConfigError("prompt (the message to send) must be a non-empty string.")
            self._validate_wait_args()
            # The state before the message: the wait ignores it until the session changes (Q16).
            session = self.hook.get_session(sid)
            self.hook.send_message(sid, self.prompt)
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc
        self._push_session(context, session)
        before = session.get("updateTime")
        self.log.info("Message sent to Jules session %s.", sid)
        if not self.wait_for_completion:
            return None
        return self._wait(context, self._new_watch(sid, settle_after=before))


class JulesApprovePlanOperator(_JulesWaitingBase):
    """Approve the plan of a session that waits for approval (AWAITING_PLAN_APPROVAL).

    Fails, without approving, when the session already ended (a plan left unapproved for about ten minutes
    makes the live API complete the session without delivering anything, quirk Q15).
    """

    template_fields: Sequence[str] = ("session_id", "auto_reply", "artifacts_path")

    def __init__(self, *, session_id: str, wait_for_completion: bool = False, **kwargs: Any) -> None:
        super().__init__(wait_for_completion=wait_for_completion, **kwargs)
        self.session_id = session_id

    def execute(self, context: Context) -> Json | None:
        try:
            sid = session_id(self.session_id)
            self._validate_wait_args()
            session = self.hook.get_session(sid)
            state = session.get("state")
            if state in ("COMPLETED", "FAILED"):
                raise _final_error(
                    Outcome.PLAN_NOT_APPROVED.value if state == "COMPLETED" else Outcome.FAILED.value,
                    f"the session is already {state}; its plan can no longer be approved.",
                    session_id=sid,
                    url=session.get("url"),
                )
            if state != "AWAITING_PLAN_APPROVAL":
                self.log.warning(
                    "Session %s is %s, not AWAITING_PLAN_APPROVAL; approving anyway.", sid, state
                )
            self.hook.approve_plan(sid)
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc
        self._push_session(context, session)
        self.log.info("Approved the plan of Jules session %s.", sid)
        if not self.wait_for_completion:
            return None
        return self._wait(context, self._new_watch(sid, settle_after=session.get("updateTime")))


class JulesGetSessionOperator(_JulesSessionBase):
    """Return the result dict of an existing session (outcome ``running`` while it still works)."""

    template_fields: Sequence[str] = ("session_id",)

    def __init__(
        self, *, session_id: str, inline_patch_limit: int = DEFAULT_INLINE_PATCH_LIMIT, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.session_id = session_id
        self.inline_patch_limit = inline_patch_limit

    def execute(self, context: Context) -> Json:
        try:
            sid = session_id(self.session_id)
            session = self.hook.get_session(sid)
            # The session exists (just read): a 404 on its activities is eventual consistency (Q18).
            activities = list(self.hook.list_activities(sid, new_session=True))
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc
        self._push_session(context, session)
        return build_result(session, activities, inline_patch_limit=self.inline_patch_limit)


class JulesDeleteSessionOperator(_JulesBase):
    """Delete a session. A session that is already gone counts as deleted (so a retry is harmless)."""

    template_fields: Sequence[str] = ("session_id",)

    def __init__(self, *, session_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_id = session_id

    def execute(self, context: Context) -> None:
        try:
            sid = session_id(self.session_id)
            self.hook.delete_session(sid)
            self.log.info("Deleted Jules session %s.", sid)
        except JulesNotFoundError:
            self.log.info("Jules session %s does not exist (already deleted).", self.session_id)
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc


class JulesListSourcesOperator(_JulesBase):
    """Return the names of the connected sources (``sources/github/owner/repo``), ready for ``.expand``.

    :param filter: the API's AIP-160 filter, e.g.
        ``name=sources/github/acme/web OR name=sources/github/acme/api``.
    """

    template_fields: Sequence[str] = ("filter",)

    def __init__(self, *, filter: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter = filter

    def execute(self, context: Context) -> list[str]:
        try:
            names = [
                str(s["name"]) for s in self.hook.list_sources(filter=self.filter or None) if s.get("name")
            ]
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc
        self.log.info("%d Jules source(s) found.", len(names))
        return names
