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

from airflow_provider_jules.client.errors import JulesConfigError, JulesError, JulesNotFoundError
from airflow_provider_jules.client.models import session_id
from airflow_provider_jules.failures import JulesSessionError, fail_fast, final_error
from airflow_provider_jules.follower import push_session
from airflow_provider_jules.links.urls import check_session_url, hosts_of
from airflow_provider_jules.marker import run_marker
from airflow_provider_jules.operators._base import (
    _JulesBase,
    _JulesSessionBase,
    _JulesWaitingBase,
    _PromptFileMixin,
)
from airflow_provider_jules.options import DEFAULT_PLAN_REVIEW_TIMEOUT, NEW_SESSION_GRACE
from airflow_provider_jules.results import DEFAULT_INLINE_PATCH_LIMIT, Outcome, build_result

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

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

#: Seconds between the listings that look for the session of an ambiguous create.
RECONCILE_WAITS = (2.0, 4.0)


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
    owns_session_history = True

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

    def execute(self, context: Context) -> Json | None:
        from airflow_provider_jules.operators._create import NewSession, SessionCreator

        try:
            request = NewSession.check(self, context)
            self.source = request.source  # normalized: sources/github/owner/repo
            follower = self._follower()
            adopt = self.adopt_existing_session
            creator = SessionCreator(self.hook, self.log, adopt=adopt, waits=RECONCILE_WAITS)
            session, created_now = creator.create_or_adopt(context, request)
        except (JulesError, ValueError) as exc:
            raise fail_fast(exc) from exc
        sid = session["id"]
        push_session(context, session, self.hook)
        self.log.info("Jules session %s: %s", sid, check_session_url(session.get("url"))[0] or "(no URL yet)")
        if not self.wait_for_completion:
            return follower.started(session)
        grace = time.time() + NEW_SESSION_GRACE if created_now else None
        return follower.follow(context, follower.new_watch(sid), new_session_until=grace)

    def get_openlineage_facets_on_complete(self, task_instance: object) -> OperatorLineage[Any, Any]:
        """The task's OpenLineage facets (docs "Lineage"): the repository and starting branch read, the pull
        request (or the branch) written, and the session in the run facets.

        Called by the OpenLineage provider, in the process that ran the task, once it succeeded, and, as
        its default for a failure, once it failed. OpenLineage is imported here only: without the
        provider nothing calls this, and a DAG that imports this module never loads OpenLineage.
        """
        from airflow_provider_jules.lineage import session_lineage
        from airflow_provider_jules.lineage.facets import operator_lineage

        following = self._following
        lineage = session_lineage(
            following.last_result if following is not None else None,
            following.last_session if following is not None else None,
            source=self.source,
            starting_branch=self.starting_branch,
        )
        return operator_lineage(lineage)


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
            follower = self._follower()
            # The state before the message: the wait ignores it until the session changes (Q16).
            session = self.hook.get_session(sid)
            self.hook.send_message(sid, self.prompt)
        except (JulesError, ValueError) as exc:
            raise fail_fast(exc) from exc
        push_session(context, session, self.hook)
        before = session.get("updateTime")
        self.log.info("Message sent to Jules session %s.", sid)
        if not self.wait_for_completion:
            return None
        return follower.follow(context, follower.new_watch(sid, settle_after=before))


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
            follower = self._follower()
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
        push_session(context, session, self.hook)
        self.log.info("Approved the plan of Jules session %s.", sid)
        if not self.wait_for_completion:
            return None
        return follower.follow(context, follower.new_watch(sid, settle_after=session.get("updateTime")))


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
        push_session(context, session, self.hook)
        return build_result(
            session,
            activities,
            inline_patch_limit=self.inline_patch_limit,
            pull_request_hosts=hosts_of(self.hook),
        )


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
