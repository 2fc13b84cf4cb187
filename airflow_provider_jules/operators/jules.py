"""Operators that put Jules into a DAG.

``JulesCreateSessionOperator`` creates a session (or adopts the one an earlier attempt of the same task
instance created), pushes ``session_id`` and ``session_url`` at once, then waits: deferred in the triggerer
(``deferrable=True``), or polling in the worker, with the same outcome rules either way. It returns the result
dict of :mod:`airflow_provider_jules.results` and pushes ``pull_request_url``.

This module is imported at every DAG parse: it must not import requests, httpx or tenacity. The hook, the
client and the trigger's HTTP side load only when a task runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_jules._compat import AirflowException
from airflow_provider_jules._validation import optional_string
from airflow_provider_jules.client.errors import JulesConfigError, JulesError, JulesNotFoundError
from airflow_provider_jules.client.models import session_id, source_name
from airflow_provider_jules.links.jules import JulesPullRequestLink, JulesSessionLink
from airflow_provider_jules.marker import marked_title, run_marker, series_of
from airflow_provider_jules.results import DEFAULT_INLINE_PATCH_LIMIT, Outcome, build_result
from airflow_provider_jules.review import DEFAULT_MAX_REVIEW_ROUNDS, DEFAULT_PLAN_REVIEW_TIMEOUT
from airflow_provider_jules.session_wait import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    NEW_SESSION_GRACE,
    JulesConnectionMixin,
    JulesSessionError,
    SessionWaitMixin,
    choice,
    default_deferrable,
    fail_fast,
    final_error,
    flag,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    _OperatorBase = BaseOperator
else:
    _OperatorBase = object

Json = dict[str, Any]

__all__ = [
    "JulesApprovePlanOperator",
    "JulesCreateSessionOperator",
    "JulesDeleteSessionOperator",
    "JulesGetSessionOperator",
    "JulesListSourcesOperator",
    "JulesSendMessageOperator",
    "JulesSessionError",
    "run_marker",
]

#: Sessions (newest first) a marker search looks at: 5 pages of 100 (see docs "Retries, restarts and ...").
MARKER_SEARCH_LIMIT = 500
#: Seconds between the listings that look for the session of an ambiguous create.
RECONCILE_WAITS = (2.0, 4.0)
STATE_KEY = "jules_session_id"  # task_state_store key (Airflow >= 3.3); renaming it breaks in-flight retries
SERIES_KEY = "jules_session_series"  # the max_tries of the try that stored STATE_KEY (a clear changes it)
#: A ``prompt`` ending in one of these is a file next to the DAG (or in ``template_searchpath``).
PROMPT_FILE_EXTENSIONS = (".md", ".txt", ".jinja")


class _JulesBase(JulesConnectionMixin, BaseOperator):
    """Shared base: the connection (``jules_conn_id``, templated) and the hook."""

    def __init__(self, *, jules_conn_id: str = "jules_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.jules_conn_id = jules_conn_id


class _JulesSessionBase(_JulesBase):
    """Operators about one session carry the "Jules Session" and "Jules Pull Request" links."""

    operator_extra_links = (JulesSessionLink(), JulesPullRequestLink())


class _JulesWaitingBase(SessionWaitMixin, _JulesSessionBase):
    """The arguments of every operator that follows a session; the logic is in :mod:`..session_wait`.

    :param wait_for_completion: wait for the session to finish before the task ends.
    :param deferrable: free the worker slot while waiting (defaults to ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls of the session.
    :param timeout: how long to wait (seconds or timedelta, at most 7 days), enforced as an absolute
        deadline by the trigger.
    :param stall_timeout: fail with ``timed_out`` when nothing moves for this long (quirk Q17). None: off.
    :param on_timeout: what to do with the session on timeout: ``archive`` (default: it stops working and
        keeps its history), ``delete`` or ``keep``.
    :param on_kill_action: what to do with the session when the task is killed: archive, delete or keep.
    :param on_user_feedback: when Jules asks a question: ``fail`` (default), ``wait`` (for an answer given
        elsewhere), ``reply`` (answer each question once with ``auto_reply`` and keep waiting) or ``ask``
        (show each question once on Airflow's Required Actions page, send the person's answer, keep
        waiting; needs the standard provider's human-in-the-loop, see docs "People in the loop").
    :param auto_reply: the answer sent with ``on_user_feedback="reply"``.
    :param question_timeout: with ``"ask"``, how long a question may wait for an answer (seconds or
        timedelta; None: until ``timeout``). Past it the task fails with outcome ``awaiting_user_feedback``
        and the session gets ``on_timeout``.
    :param review: ``"hitl"``: when Jules completes with a change, a person reviews it on the Required
        Actions page: Approve (the task succeeds), Request changes (the message goes to Jules, which works
        again; the new change comes back for review) or Reject. The result's ``review`` lists the rounds.
    :param review_timeout: how long a change review may wait (None: until ``timeout``).
    :param on_reject: what a Reject does to the session: ``archive`` (default), ``delete`` or ``keep``.
    :param on_reject_task: what a Reject does to the task: ``fail`` (default, without retries) or ``skip``.
    :param max_review_rounds: change reviews at most (default 3); changes requested in the last one fail the
        task, without sending them.
    :param on_no_changes: what a ``completed_without_changes`` outcome does to the task: ``succeed``
        (default, with a warning), ``skip`` (the result is still pushed, then the task is skipped, so
        its downstream tasks skip too) or ``fail`` (at once, without retries).
    :param artifacts_path: ObjectStoragePath URL (``file://...``, ``s3://...``) where a patch larger than
        ``inline_patch_limit`` is written; its URI goes to ``change_set.patch_uri``.
    :param inline_patch_limit: bytes of patch kept inline in the XCom result.
    :param max_poll_errors: consecutive failed polls tolerated before the task fails (they never count as a
        session failure).

    With ``outlets=[Asset(...)]``, each asset event carries ``extra`` = ``{session_id, url, outcome,
    pull_request_url, files_changed}``.
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
        on_no_changes: str = "succeed",
        artifacts_path: str | None = None,
        inline_patch_limit: int = DEFAULT_INLINE_PATCH_LIMIT,
        max_poll_errors: int = 5,
        question_timeout: float | timedelta | None = None,
        review: str | None = None,
        review_timeout: float | timedelta | None = None,
        on_reject: str = "archive",
        on_reject_task: str = "fail",
        max_review_rounds: int = DEFAULT_MAX_REVIEW_ROUNDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.question_timeout = question_timeout
        self.review = review
        self.review_timeout = review_timeout
        self.on_reject = on_reject
        self.on_reject_task = on_reject_task
        self.max_review_rounds = max_review_rounds
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.on_timeout = on_timeout
        self.on_kill_action = on_kill_action
        self.on_user_feedback = on_user_feedback
        self.auto_reply = auto_reply
        self.on_no_changes = on_no_changes
        self.artifacts_path = artifacts_path
        self.inline_patch_limit = inline_patch_limit
        self.max_poll_errors = max_poll_errors
        self._followed_session = None


class _PromptFileMixin(_OperatorBase):
    """A ``prompt`` ending in ``.md``, ``.txt`` or ``.jinja`` is a file in the DAG's folder (or
    ``template_searchpath``), read and rendered with Jinja, as ``.sql`` files are for SQL operators.

    A value with whitespace that names no such file is inline text that merely ends like a file name
    ("... and update README.md"): it is rendered as it is, never looked up.
    """

    template_ext: Sequence[str] = PROMPT_FILE_EXTENSIONS

    def _read_prompt_file(self, env: Any, name: str) -> str:
        """The file's text, or :class:`JulesConfigError` naming where it was looked for."""
        try:
            return str(env.loader.get_source(env, name)[0])
        except Exception:
            raise JulesConfigError(
                f"Prompt file {name!r} was not found next to the DAG file or in the DAG's "
                "template_searchpath: check the name, or set template_searchpath on the DAG."
            ) from None

    def _names_prompt_file(self, value: object, env: Any = None) -> bool:
        if env is None:
            env = self.get_template_env()
        if not isinstance(value, str) or not value.endswith(tuple(self.template_ext)) or "\n" in value:
            return False
        if not any(c.isspace() for c in value):
            return True
        try:
            env.loader.get_source(env, value)
        except Exception:
            return False
        return True

    def resolve_template_files(self) -> None:
        env = self.get_template_env()
        for field in self.template_fields:
            content = getattr(self, field, None)
            if isinstance(content, str) and self._names_prompt_file(content, env):
                try:
                    setattr(self, field, self._read_prompt_file(env, content))
                except JulesConfigError as exc:  # at parse time: logged; the task fails when it runs
                    self.log.warning("%s", exc)
        self.prepare_template()

    def render_template(
        self, content: Any, context: Context, jinja_env: Any = None, seen_oids: Any = None
    ) -> Any:
        env = jinja_env or self.get_template_env()
        if isinstance(content, str) and content.endswith(tuple(self.template_ext)):
            if not self._names_prompt_file(content, env):
                return self._render(env.from_string(content), context)
            self._read_prompt_file(env, content)  # a clear error instead of jinja2's TemplateNotFound
        return super().render_template(content, context, env, seen_oids)


def _stored_session(store: Any, series: int | None) -> str | None:
    """The session id kept in the task state store by an earlier try of the same series."""
    if store is None:
        return None
    value = store.get(STATE_KEY)
    if not value:
        return None
    stored_series = store.get(SERIES_KEY)
    if stored_series is not None and stored_series != series:
        return None  # kept from before a clear: this series starts over
    return str(value)


class JulesCreateSessionOperator(_PromptFileMixin, _JulesWaitingBase):
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
    :param review_plan: ``"hitl"`` (with ``require_plan_approval=True``): the plan goes to the Required
        Actions page with Approve / Reject; Approve approves it and the task follows Jules to the end.
    :param plan_review_timeout: how long the plan form stays open (default 8 minutes: inside Jules's
        approval window of about 10 minutes, past which the session completes without doing anything, Q15).

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
        "jules_conn_id",
    )
    template_fields_renderers = {"prompt": "md"}
    _owns_session_history = True

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
        review_plan: str | None = None,
        plan_review_timeout: float | timedelta | None = DEFAULT_PLAN_REVIEW_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.review_plan = review_plan
        self.plan_review_timeout = plan_review_timeout
        self.prompt = prompt
        self.source = source
        self.starting_branch = starting_branch
        self.title = title
        self.require_plan_approval = require_plan_approval
        self.auto_create_pr = auto_create_pr
        self.automation_mode = automation_mode
        self.adopt_existing_session = adopt_existing_session

    def _validate(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise JulesConfigError("prompt must be a non-empty string: tell Jules what to do.")
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

            choice("automation_mode", self.automation_mode, sorted(AUTOMATION_MODES))
        optional_string("title", self.title)
        for name in ("require_plan_approval", "auto_create_pr", "adopt_existing_session"):
            flag(name, getattr(self, name))
        if not self.wait_for_completion and self.on_user_feedback == "reply":
            raise JulesConfigError('on_user_feedback="reply" needs wait_for_completion=True.')
        self._validate_wait_args()

    def execute(self, context: Context) -> Json | None:
        try:
            self._validate()
            session, created_now = self._create_or_adopt(context)
        except (JulesError, ValueError) as exc:
            raise fail_fast(exc) from exc
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
        return run_marker(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), series_of(ti))

    def _title(self, context: Context, marker: str) -> str:
        if self.title and self.title.strip():
            base = self.title.strip()
        else:
            ti = context["ti"]
            map_index = getattr(ti, "map_index", -1)
            mapped = "" if map_index in (None, -1) else f"[{map_index}]"
            base = f"Airflow {ti.dag_id}.{ti.task_id}{mapped} run {ti.run_id}"
        return marked_title(base, marker)

    def _create_or_adopt(self, context: Context) -> tuple[Json, bool]:
        marker = self._marker(context)
        store: Any = context.get("task_state_store")  # Airflow >= 3.3
        ti = context["ti"]
        series = series_of(ti)
        if self.adopt_existing_session:
            adopted = self._find_earlier_session(
                store, marker, try_number=getattr(ti, "try_number", 1), series=series
            )
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
            store.set(SERIES_KEY, series)
        return session, True

    def _default_branch(self, source: str) -> str:
        from airflow_provider_jules.client.models import default_branch

        branch = default_branch(self.hook.get_source(source))
        if not branch:
            raise JulesConfigError(
                f"Source {source} reports no default branch: set starting_branch explicitly."
            )
        return str(branch)

    def _find_earlier_session(
        self, store: Any, marker: str, *, try_number: int, series: int | None
    ) -> Json | None:
        """The session an earlier try of this task instance created, if it is worth adopting.

        Only tries of the same series count: a clear starts a new series (Airflow sets ``max_tries`` anew),
        so a cleared task creates a new session while a retry adopts (see docs "Retries, restarts and
        idempotency").
        """
        candidate: Json | None = None
        stored = _stored_session(store, series)
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
            capped = False
            for index, session in enumerate(self.hook.list_sessions(page_size=100)):
                if marker in str(session.get("title") or ""):
                    found.append(session)
                if index >= MARKER_SEARCH_LIMIT - 1:
                    capped = True
                    break
            if found:
                return max(found, key=lambda s: str(s.get("createTime") or ""))
            if capped:
                self.log.warning(
                    "Looked for marker %s in the %d most recent sessions only (the search's cap); an "
                    "older session of this task instance would not be found.",
                    marker,
                    MARKER_SEARCH_LIMIT,
                )
        return None


def _ambiguous(exc: JulesError) -> bool:
    """A create whose outcome is unknown: a 5xx, or a transport failure after the request was sent."""
    from airflow_provider_jules.client.errors import JulesServerError, JulesTransportError

    if isinstance(exc, JulesServerError):
        return True
    return isinstance(exc, JulesTransportError) and exc.reached_server


class JulesSendMessageOperator(_PromptFileMixin, _JulesWaitingBase):
    """Send a message to a session (e.g. answer Jules's question, or ask for more work).

    :param session_id: the session (templated), e.g. ``{{ ti.xcom_pull('create', key='session_id') }}``.
    :param prompt: the message (templated).
    :param wait_for_completion: then wait for the session to complete (default False).
    """

    template_fields: Sequence[str] = ("session_id", "prompt", "auto_reply", "artifacts_path", "jules_conn_id")
    template_fields_renderers = {"prompt": "md"}

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
            raise fail_fast(exc) from exc
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

    template_fields: Sequence[str] = ("session_id", "auto_reply", "artifacts_path", "jules_conn_id")

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
                raise final_error(
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
            raise fail_fast(exc) from exc
        self._push_session(context, session)
        self.log.info("Approved the plan of Jules session %s.", sid)
        if not self.wait_for_completion:
            return None
        return self._wait(context, self._new_watch(sid, settle_after=session.get("updateTime")))


class JulesGetSessionOperator(_JulesSessionBase):
    """Return the result dict of an existing session (outcome ``running`` while it still works)."""

    template_fields: Sequence[str] = ("session_id", "jules_conn_id")

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
            raise fail_fast(exc) from exc
        self._push_session(context, session)
        return build_result(session, activities, inline_patch_limit=self.inline_patch_limit)


class JulesDeleteSessionOperator(_JulesBase):
    """Delete a session. A session that is already gone counts as deleted (so a retry is harmless)."""

    template_fields: Sequence[str] = ("session_id", "jules_conn_id")

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
            raise fail_fast(exc) from exc


class JulesListSourcesOperator(_JulesBase):
    """Return the names of the connected sources (``sources/github/owner/repo``), ready for ``.expand``.

    :param filter: the API's AIP-160 filter, e.g.
        ``name=sources/github/acme/web OR name=sources/github/acme/api``.
    """

    template_fields: Sequence[str] = ("filter", "jules_conn_id")

    def __init__(self, *, filter: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter = filter

    def execute(self, context: Context) -> list[str]:
        try:
            names = [
                str(s["name"]) for s in self.hook.list_sources(filter=self.filter or None) if s.get("name")
            ]
        except (JulesError, ValueError) as exc:
            raise fail_fast(exc) from exc
        self.log.info("%d Jules source(s) found.", len(names))
        return names
