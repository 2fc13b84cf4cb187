"""DAGs with a person in the loop (questions, change review, plan review), run with dag.test() against the
simulator by tests/integration/test_hitl_*.py. One DAG per case; the task is always ``create``."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG
from airflow.sdk.bases.notifier import BaseNotifier

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")
FEEDBACK = "Update the client sim:scenario=user_feedback"
#: The reviewers of the "team" DAGs (Airflow's HITLUser dicts).
TEAM = [{"id": "rita", "name": "Rita Reviewer"}, {"id": "sam", "name": "Sam"}]
#: Where RecordingNotifier writes (one JSON line per call), set by the tests.
NOTIFICATIONS_ENV = "JULES_TEST_NOTIFICATIONS"


class RecordingNotifier(BaseNotifier):
    """A notifier written as for Airflow's HITLOperator (``{{ task.subject }}`` in a templated field), which
    writes what it got to the file named by $JULES_TEST_NOTIFICATIONS."""

    template_fields = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def notify(self, context: Any) -> None:
        line = {
            "message": self.message,
            "jules_form": context["jules_form"],
            "task_subject": context["task"].subject,
            "task_id": context["ti"].task_id,
        }
        with open(os.environ[NOTIFICATIONS_ENV], "a") as out:
            out.write(json.dumps(line) + "\n")


class BrokenNotifier(BaseNotifier):
    """A notifier whose service is down."""

    def notify(self, context: Any) -> None:
        raise RuntimeError("the chat service is down")


def recording() -> RecordingNotifier:
    return RecordingNotifier(
        "{{ task.subject }} | {{ jules_form.kind }} {{ jules_form.round }} | {{ jules_form.form_url }} | "
        "{{ jules_form.session_url }}"
    )


ONE_SECOND = timedelta(seconds=1)

#: dag_id -> (prompt, operator kwargs)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "hitl_ask_one": (FEEDBACK, {"on_user_feedback": "ask"}),
    "hitl_ask_two": (FEEDBACK + " sim:questions=2", {"on_user_feedback": "ask"}),
    "hitl_ask_timeout": (
        FEEDBACK,
        {"on_user_feedback": "ask", "question_timeout": timedelta(seconds=1), "on_timeout": "keep"},
    ),
    "hitl_review": ("Fix the flaky tests", {"review": "hitl"}),
    "hitl_review_archive": ("Fix the flaky tests", {"review": "hitl", "on_reject": "archive"}),
    "hitl_review_skip": (
        "Fix the flaky tests",
        {"review": "hitl", "on_reject": "delete", "on_reject_task": "skip"},
    ),
    "hitl_review_rounds": ("Fix the flaky tests", {"review": "hitl", "max_review_rounds": 2}),
    "hitl_review_sync": ("Fix the flaky tests", {"review": "hitl", "deferrable": False}),
    "hitl_ask_and_review": (FEEDBACK, {"on_user_feedback": "ask", "review": "hitl"}),
    "hitl_plan": (
        "Add a health check endpoint",
        {"require_plan_approval": True, "review_plan": "hitl", "on_reject": "delete"},
    ),
    # Reviews in a team (issue #22): assigned reviewers, notifiers, a decision on timeout.
    "hitl_team": (
        FEEDBACK,
        {"on_user_feedback": "ask", "review": "hitl", "assigned_users": TEAM, "notifiers": [recording()]},
    ),
    "hitl_team_broken_notifier": (
        FEEDBACK,
        {
            "on_user_feedback": "ask",
            "review": "hitl",
            "assigned_users": TEAM[0],
            "notifiers": [BrokenNotifier(), recording()],
        },
    ),
    "hitl_review_timeout_fail": (
        "Fix the flaky tests",
        {"review": "hitl", "review_timeout": ONE_SECOND, "on_review_timeout": "fail"},
    ),
    "hitl_review_timeout_approve": (
        "Fix the flaky tests",
        {"review": "hitl", "review_timeout": ONE_SECOND, "on_review_timeout": "approve"},
    ),
    "hitl_review_timeout_reject": (
        "Fix the flaky tests",
        {"review": "hitl", "review_timeout": ONE_SECOND, "on_review_timeout": "reject", "on_reject": "keep"},
    ),
    "hitl_review_timeout_reject_skip": (
        "Fix the flaky tests",
        {
            "review": "hitl",
            "review_timeout": ONE_SECOND,
            "on_review_timeout": "reject",
            "on_reject": "delete",
            "on_reject_task": "skip",
        },
    ),
    "hitl_plan_timeout_approve": (
        "Add a health check endpoint",
        {
            "require_plan_approval": True,
            "review_plan": "hitl",
            "plan_review_timeout": ONE_SECOND,
            "on_review_timeout": "approve",
        },
    ),
    "hitl_plan_timeout_reject": (
        "Add a health check endpoint",
        {
            "require_plan_approval": True,
            "review_plan": "hitl",
            "plan_review_timeout": ONE_SECOND,
            "on_review_timeout": "reject",
            "on_reject": "delete",
        },
    ),
}

for dag_id, (prompt, extra) in CASES.items():
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        JulesCreateSessionOperator(
            task_id="create",
            prompt=prompt,
            source="bobalover/boba",
            **{"deferrable": True, "poll_interval": 0.05, **extra},
        )
    globals()[dag_id] = dag


with DAG("hitl_task_decorator", schedule=None, start_date=START, catchup=False) as decorated_dag:
    from airflow_provider_jules.decorators.jules import jules_task

    @jules_task(source="bobalover/boba", deferrable=True, poll_interval=0.05, review="hitl")
    def create() -> str:
        return "Fix the flaky tests"

    create()


with DAG("hitl_task_decorator_team", schedule=None, start_date=START, catchup=False) as decorated_team_dag:

    @jules_task(
        source="bobalover/boba",
        deferrable=True,
        poll_interval=0.05,
        review="hitl",
        assigned_users=TEAM,
        notifiers=recording(),
    )
    def create() -> str:
        return "Fix the flaky tests"

    create()


with DAG("hitl_send_message_review", schedule=None, start_date=START, catchup=False) as follow_up_dag:
    from airflow_provider_jules.operators.jules import JulesSendMessageOperator

    first = JulesCreateSessionOperator(
        task_id="create",
        prompt="Fix the flaky tests",
        source="bobalover/boba",
        deferrable=True,
        poll_interval=0.05,
    )
    follow_up = JulesSendMessageOperator(
        task_id="follow_up",
        session_id="{{ ti.xcom_pull(task_ids='create', key='session_id') }}",
        prompt="Please also add a regression test.",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.05,
        review="hitl",
    )
    first >> follow_up
