"""The base classes of the operators: the connection, the session links, the arguments of a wait (and the
task's :class:`~airflow_provider_jules.follower.SessionFollower`), and prompt files.

Imported at every DAG parse: no requests, httpx or tenacity here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_jules.client.errors import JulesConfigError, JulesError
from airflow_provider_jules.failures import fail_fast
from airflow_provider_jules.follower import JulesConnectionMixin, SessionFollower
from airflow_provider_jules.links.jules import JulesPullRequestLink, JulesSessionLink
from airflow_provider_jules.options import (
    DEFAULT_MAX_REVIEW_ROUNDS,
    DEFAULT_PLAN_REVIEW_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    HITL,
    WaitOptions,
    default_deferrable,
    hitl_users,
    notifier_list,
)
from airflow_provider_jules.results import DEFAULT_INLINE_PATCH_LIMIT

if TYPE_CHECKING:
    from airflow.sdk import Context

    _OperatorBase = BaseOperator
else:
    _OperatorBase = object

Json = dict[str, Any]
#: Airflow's ``HITLUser``: ``{"id": ..., "name": ...}`` (a TypedDict in ``airflow.sdk.execution_time.hitl``).
HITLUserDict = dict[str, str]

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


class _JulesWaitingBase(_JulesSessionBase):
    """The arguments of every operator that follows a session; the logic is in :mod:`..follower`.

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
    :param on_review_timeout: what a plan or change review that nobody answers before its timeout does:
        ``fail`` (default: the task fails), ``approve`` (as if approved) or ``reject`` (as if rejected:
        ``on_reject`` and ``on_reject_task`` apply). The result's ``review`` marks such a round
        ``"timed_out": true``. A question that times out always fails.
    :param assigned_users: who may answer the task's forms (questions, plan and change reviews), as for
        Airflow's ``HITLOperator``: one ``{"id": ..., "name": ...}`` dict (Airflow's ``HITLUser``; the id is
        the user's id in the auth manager, the username with the simple auth manager) or a list of them.
        Airflow's REST API refuses (403) an answer from anyone else, except under the simple auth manager's
        all-admins mode (see docs "People in the loop"). Default: anyone who may answer the DAG's forms.
    :param notifiers: Airflow notifiers (``BaseNotifier``, e.g. a Slack or SMTP notifier), one or a list,
        called once each time a form opens, as ``HITLOperator`` calls them; the context's ``jules_form``
        holds the form's subject, kind, round, the Jules session URL and the form's URL in the Airflow UI.
        A notifier that raises is logged and changes nothing else.
    :param on_no_changes: what a ``completed_without_changes`` outcome does to the task: ``succeed``
        (default, with a warning), ``skip`` (the result is still pushed, then the task is skipped, so
        its downstream tasks skip too) or ``fail`` (at once, without retries).
    :param artifacts_path: ObjectStoragePath URL (``file://...``, ``s3://...``) where a patch larger than
        ``inline_patch_limit`` is written (its URI goes to ``change_set.patch_uri``), and Jules's
        screenshots and other media artifacts (listed in the result's ``media``; without it they are only
        counted in ``media_dropped``).
    :param inline_patch_limit: bytes of patch kept inline in the XCom result.
    :param max_poll_errors: consecutive failed polls tolerated before the task fails (they never count as a
        session failure).

    With ``outlets=[Asset(...)]``, each asset event carries ``extra`` = ``{session_id, url, outcome,
    pull_request_url, files_changed}``.
    """

    # Arguments only JulesCreateSessionOperator takes (a plan exists only in a session the task created).
    review_plan: str | None = None
    plan_review_timeout: float | timedelta | None = DEFAULT_PLAN_REVIEW_TIMEOUT
    require_plan_approval: bool = False
    #: True when every completion of the session belongs to this task (it created the session): a retry
    #: can then count the change requests already sent from the session's history.
    owns_session_history: bool = False

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
        on_review_timeout: str = "fail",
        assigned_users: HITLUserDict | Sequence[HITLUserDict] | None = None,
        notifiers: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Checked here (they are not templated): a bad value is a clear DAG import error.
        self.assigned_users = hitl_users(assigned_users)
        self.notifiers = notifier_list(notifiers)
        self.on_review_timeout = on_review_timeout
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
        self._following: SessionFollower | None = None

    # ------------------------------------------------------------------------------------ called by Airflow
    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, jules_state: Json | None = None
    ) -> Json:
        """Resume after the trigger (see :meth:`SessionFollower.resume`)."""
        return self._follower().resume(context, event, jules_state)

    def resume_from_person(
        self, context: Context, event: Any = None, jules_state: Json | None = None
    ) -> Json:
        """Resume after a person answered on the Required Actions page (see :mod:`..review`)."""
        return self._follower().resume_from_person(context, event, jules_state)

    def on_kill(self) -> None:
        """The worker-side kill (non-deferrable wait): stop the session as configured, best effort."""
        if self._following is not None:
            self._following.on_kill()

    # ------------------------------------------------------------------------------------ the follower
    def _follower(self) -> SessionFollower:
        """The task's follower, its arguments checked (in execute: after rendering, before any request)."""
        from airflow_provider_jules.review import ReviewOptions  # loaded when a task runs, not at parse

        try:
            options = WaitOptions.check(
                target_states=["COMPLETED", "AWAITING_PLAN_APPROVAL"]
                if self.review_plan == HITL
                else ["COMPLETED"],
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                stall_timeout=self.stall_timeout,
                on_timeout=self.on_timeout,
                on_kill_action=self.on_kill_action,
                on_user_feedback=self.on_user_feedback,
                on_no_changes=self.on_no_changes,
                wait_for_completion=self.wait_for_completion,
                deferrable=self.deferrable,
                auto_reply=self.auto_reply,
                inline_patch_limit=self.inline_patch_limit,
                max_poll_errors=self.max_poll_errors,
                artifacts_path=self.artifacts_path,
            )
            review = ReviewOptions.check(
                on_user_feedback=options.on_user_feedback,
                wait_for_completion=self.wait_for_completion,
                require_plan_approval=self.require_plan_approval,
                question_timeout=self.question_timeout,
                review=self.review,
                review_timeout=self.review_timeout,
                plan_review_timeout=self.plan_review_timeout,
                review_plan=self.review_plan,
                on_reject=self.on_reject,
                on_reject_task=self.on_reject_task,
                max_review_rounds=self.max_review_rounds,
                on_review_timeout=self.on_review_timeout,
                assigned_users=self.assigned_users,
                notifiers=self.notifiers,
                owns_history=self.owns_session_history,
            )
            self._following = SessionFollower(
                self, options, hook=self.hook, conn_id=self.jules_conn_id, review=review
            )
        except (JulesError, ValueError) as exc:
            raise fail_fast(exc) from exc
        return self._following


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
