"""A person answering Required Actions forms during dag.test(), through Airflow's own HITL models.

dag.test() (Airflow >= 3.3) polls for the answer with ``time.sleep(1)`` in the main thread while a task waits
in ``awaiting_input``; the :class:`Responder` answers from that same thread, between two polls (SQLite allows
one writer: no second thread writes). It writes the response the way the Core API does (the HITL detail's
response columns, then ``handle_event_submit`` with the detail's own resume payload), and can run the
scheduler's own timeout sweep (``check_awaiting_input_timeouts``) for forms nobody answers.

Airflow 3.1's dag.test() cannot answer a human-in-the-loop task (its in-process trigger gets no HITL detail
from the test supervisor): the tests that answer forms exist only on Airflow >= 3.3 (see ``HITL_TESTS``).
"""

from __future__ import annotations

import logging
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any

import pytest


def airflow_at_least(major: int, minor: int) -> bool:
    import airflow

    return tuple(int(p) for p in airflow.__version__.split(".")[:2]) >= (major, minor)


#: Whether dag.test() can answer a Required Actions form here (Airflow >= 3.3).
HITL_TESTS = airflow_at_least(3, 3)


@dataclass
class Responder:
    """Answers each form the task opens, in order: ``(option, message)``; ``None`` lets it time out."""

    dag_id: str
    task_id: str
    answers: list[tuple[str, str] | None]
    reviewer: str = "alice"
    forms: list[dict[str, Any]] = field(default_factory=list)  # subject, body, options, users, request (XCom)
    swept: int = 0

    def __call__(self) -> None:
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils import timezone
        from airflow.utils.session import create_session

        with create_session() as session:
            ti = (
                session.query(TaskInstance)
                .filter_by(dag_id=self.dag_id, task_id=self.task_id, state="awaiting_input")
                .first()
            )
            if ti is None:
                return
            detail = session.get(HITLDetail, ti.id)
            if detail is None or detail.responded_at is not None:
                return
            request = (
                session.query(XComModel)
                .filter_by(dag_id=self.dag_id, run_id=ti.run_id, task_id=self.task_id, key="jules_request")
                .one_or_none()
            )
            if len(self.forms) == 0 or self.forms[-1].get("answered", True):
                self.forms.append(
                    {
                        "subject": detail.subject,
                        "body": detail.body,
                        "options": list(detail.options),
                        "params": dict(detail.params or {}),
                        "assigned_users": [dict(user) for user in detail.assigned_users],
                        "request": None if request is None else request.value,
                        "answered": False,
                    }
                )
            answer = self.answers[len([f for f in self.forms if f["answered"]])] if self.answers else None
            if answer is None:
                self._sweep_if_due(ti, session)
                return
            option, message = answer
            detail.responded_by = {"id": self.reviewer, "name": self.reviewer}
            detail.responded_at = timezone.utcnow()
            detail.chosen_options = [option]
            detail.params_input = {"message": message}
            session.add(detail)
            from airflow.models.trigger import handle_event_submit
            from airflow.triggers.base import TriggerEvent

            handle_event_submit(
                TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
            )
            self.forms[-1]["answered"] = True

    def _sweep_if_due(self, ti: Any, session: Any) -> None:
        """The scheduler's own timeout sweep, once the form's deadline passed (dag.test() runs none)."""
        from airflow.utils import timezone

        if ti.trigger_timeout is None or ti.trigger_timeout >= timezone.utcnow():
            return
        session.commit()
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        runner = types.SimpleNamespace(log=logging.getLogger("hitl-sweep"))
        SchedulerJobRunner.check_awaiting_input_timeouts(runner)  # type: ignore[arg-type]
        self.swept += 1
        self.forms[-1]["answered"] = True


def answer_during(monkeypatch: pytest.MonkeyPatch, responder: Responder) -> None:
    """Call ``responder`` from the main thread at each ``time.sleep`` (dag.test()'s poll for answers)."""
    real_sleep = time.sleep

    def sleep_and_answer(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            responder()
        real_sleep(min(seconds, 0.2) if seconds >= 1 else seconds)

    monkeypatch.setattr(time, "sleep", sleep_and_answer)


def activity_kinds(sim: Any, session_id: str) -> list[str]:
    from airflow_provider_jules.client.models import activity_kind
    from airflow_provider_jules.hooks.jules import JulesHook

    return [activity_kind(a) for a in JulesHook().list_activities(session_id)]
