"""One run of the fix notifier, in order: read the failure, choose the repository, write the redacted
request, find or open the session within the time budget, link it back on the failed task.

The Airflow-facing steps (the connection, the XCom, the log) run in the callback's own thread; only the HTTP
calls run in a helper thread, which the callback stops waiting for when the budget runs out (the task
process ends soon after, and nothing the helper does afterwards touches Airflow).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_jules.fixes import text
from airflow_provider_jules.fixes.report import FailureReport, read_failure
from airflow_provider_jules.fixes.requester import (
    Budget,
    FixPolicy,
    FixRequest,
    FixRequester,
    FixSession,
)
from airflow_provider_jules.links.jules import FIX_XCOM_KEY


class Settings(Protocol):
    """The rendered arguments of a
    :class:`~airflow_provider_jules.notifications.jules.JulesFixNotifier`."""

    source: str | None
    starting_branch: str | None
    jules_conn_id: str
    prompt: str | None
    auto_create_pr: bool
    require_plan_approval: bool
    max_sessions_per_day: int
    dedup_window: float
    time_budget: float
    log_tail_lines: int
    redact_patterns: list[str]


@dataclass
class _Outcome:
    session: FixSession | None = None
    error: BaseException | None = None
    done: bool = False


class FixFlow:
    def __init__(self, settings: Settings, log: Any, hook_factory: Any = None) -> None:
        self.settings = settings
        self.log = log
        self.hook_factory = hook_factory or _hook
        self.budget = Budget(settings.time_budget)

    def run(self, context: Any) -> FixSession | None:
        report = read_failure(context, log_tail_lines=self.settings.log_tail_lines)
        where = self.repository(report)
        if where is None:
            return None
        source, branch = where
        hook = self.hook_factory(self.settings.jules_conn_id, self.settings.time_budget)
        hook.client  # noqa: B018 - resolve the connection here, in the callback's thread (it masks the key)
        sig = text.signature(report)
        redact = text.Redactor(text.compile_patterns(self.settings.redact_patterns))
        request = FixRequest(
            signature=sig,
            title=redact(text.title(report, sig)),
            prompt=redact(text.prompt(report, sig, self.settings.prompt)),
            source=source,
            starting_branch=branch,
            auto_create_pr=self.settings.auto_create_pr,
            require_plan_approval=self.settings.require_plan_approval,
            task=f"{report.dag_id}.{report.task_id}",
            any_of_task=not report.exception_type,
        )
        policy = FixPolicy(self.settings.max_sessions_per_day, self.settings.dedup_window)
        session = self.within_budget(FixRequester(hook, policy, self.budget, self.log), request)
        if session is not None:
            self.link(context, session, report)
        return session

    def repository(self, report: FailureReport) -> tuple[str, str | None] | None:
        """The source and starting branch: the notifier's ``source``, else the DAG's git bundle on GitHub."""
        from airflow_provider_jules.client.models import source_name

        if self.settings.source:
            return source_name(self.settings.source), self.settings.starting_branch
        if report.bundle.repository:
            return (
                source_name(report.bundle.repository),
                self.settings.starting_branch or report.bundle.branch,
            )
        self.log.warning(
            "Jules fix: not opening a session for %s.%s: the notifier has no `source` and the DAG does not "
            "come from a git DAG bundle on GitHub. Set JulesFixNotifier(source='owner/repo').",
            report.dag_id,
            report.task_id,
        )
        return None

    def within_budget(self, requester: FixRequester, request: FixRequest) -> FixSession | None:
        outcome = _Outcome()

        def work() -> None:
            try:
                outcome.session = requester.request(request)
            except BaseException as exc:  # reported by the callback's thread
                outcome.error = exc
            finally:
                outcome.done = True

        thread = threading.Thread(target=work, name="jules-fix", daemon=True)
        thread.start()
        thread.join(self.budget.remaining())
        if not outcome.done:
            self.log.warning(
                "Jules fix: the Jules API did not finish within time_budget=%gs: no fix session is linked "
                "to this failure (a session may still be created; the next failure finds it).",
                self.settings.time_budget,
            )
            return None
        if outcome.error is not None:
            self.log.warning(
                "Jules fix: no fix session for this failure: %s: %s",
                type(outcome.error).__name__,
                outcome.error,
            )
            return None
        return outcome.session

    def link(self, context: Any, session: FixSession, report: FailureReport) -> None:
        """The log line and the ``jules_fix`` XCom on the failed task instance."""
        state = "opened" if session.new else "already open for this failure"
        self.log.info(
            "Jules fix session %s (%s, signature %s): %s",
            session.session_id,
            state,
            session.signature,
            session.url or "(no web link)",
        )
        ti = context.get("ti")
        try:
            ti.xcom_push(key=FIX_XCOM_KEY, value=session.as_xcom())
        except Exception as exc:
            self.log.warning(
                "Jules fix: the session could not be linked on %s.%s (%s: %s): a callback that runs outside "
                "the task's worker (a DAG-level callback, or a task failed from outside) cannot store XComs; "
                "the session's URL is in this log line above.",
                report.dag_id,
                report.task_id,
                type(exc).__name__,
                exc,
            )


def _hook(conn_id: str, time_budget: float) -> Any:
    """A hook whose every call, retries included, fits in the budget."""
    from airflow_provider_jules.client.retry import RetryPolicy
    from airflow_provider_jules.hooks.jules import JulesHook

    policy = RetryPolicy(
        max_attempts=3,
        initial_wait=0.5,
        max_wait=2.0,
        max_retry_after=time_budget / 2,
        max_elapsed=time_budget,
    )
    return JulesHook(conn_id, timeout=max(1.0, time_budget), retry_policy=policy)
