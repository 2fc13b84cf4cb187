"""System test: a change review with assigned reviewers and a notifier, answered through Airflow's public REST
API on real components (issue #22), with the simple auth manager's all-admins mode OFF (real users, tokens).

The same four components as tests/system/test_hitl_components.py (api-server, scheduler, dag-processor,
triggerer; SQLite, LocalExecutor), three users of the simple auth manager, all with the admin role (so the
refusal below is the assignment's, not the role's): ``rita`` is the assigned reviewer, ``sam`` and ``admin``
are not. The DAG: ``review="hitl"``, ``assigned_users`` = rita, and a notifier that writes what it gets to a
file. The test checks that the form carries the assigned user; that the notifier ran once, in the worker,
with the form's subject and both links (the form on this API server's base URL, and the Jules session);
that Airflow refuses (403) an answer from sam and from admin and records nothing; then approves as rita,
and the result names rita as the reviewer. Runs on Airflow 3.1 and 3.3: both enforce assigned users in
``PATCH .../hitlDetails`` (docs "People in the loop", "Reviews in a team").
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from airflow_provider_jules.simulator import JulesSimulator
from tests.system.harness import LOCAL_COMPONENTS, AirflowStack, airflow_stack, poll, simulator

pytestmark = pytest.mark.system

DAG_ID = "jules_assigned_review"
TASK = "fix"
RITA = {"id": "rita", "name": "Rita Reviewer"}
DAG_FILE = """
import json

import pendulum
from airflow.sdk import DAG
from airflow.sdk.bases.notifier import BaseNotifier
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator


class FileNotifier(BaseNotifier):
    template_fields = ("message",)

    def __init__(self, message):
        super().__init__()
        self.message = message

    def notify(self, context):
        with open({notifications!r}, "a") as out:
            out.write(json.dumps({{"message": self.message, "jules_form": context["jules_form"]}}) + "\\n")


with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    JulesCreateSessionOperator(
        task_id="{task}",
        prompt="Fix the flaky tests",
        source="bobalover/boba",
        deferrable=True,
        poll_interval=1,
        review="hitl",
        assigned_users={rita!r},
        notifiers=[FileNotifier("{{{{ task.subject }}}} -> {{{{ jules_form.form_url }}}}")],
    )
"""


@pytest.fixture(scope="module")
def assigned_sim() -> Iterator[JulesSimulator]:
    with simulator(speed=10.0, seed=7) as running:
        yield running.sim


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {user: secrets.token_urlsafe(12) for user in ("admin", "rita", "sam")}


@pytest.fixture(scope="module")
def assigned_stack(
    assigned_sim: JulesSimulator, passwords: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, Path]]:
    folder = tmp_path_factory.mktemp("assigned-dags")
    notifications = tmp_path_factory.mktemp("assigned-notifications") / "notifications.jsonl"
    dag_file = DAG_FILE.format(notifications=str(notifications), dag_id=DAG_ID, task=TASK, rita=RITA)
    (folder / f"{DAG_ID}.py").write_text(textwrap.dedent(dag_file))
    password_file = tmp_path_factory.mktemp("assigned-auth") / "passwords.json"
    password_file.write_text(json.dumps(passwords))
    extra = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,rita:admin,sam:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
    }
    with airflow_stack(assigned_sim, LOCAL_COMPONENTS, [("assigned-dags", folder)], extra) as stack:
        yield stack, notifications


def test_only_the_assigned_reviewer_can_answer_and_the_notifier_links_the_form(
    assigned_stack: tuple[AirflowStack, Path], assigned_sim: JulesSimulator, passwords: dict[str, str]
) -> None:
    stack, notifications = assigned_stack
    sim = assigned_sim
    with stack.logs_on_failure(lambda: f"simulator: {sim.stats()}"), stack.api() as api:
        stack.wait_healthy(api, login=("admin", passwords["admin"]))
        stack.unpause(api, DAG_ID, "assigned-dags")
        run_id = stack.trigger_run(api, DAG_ID)

        form, _ = stack.waiting_form(api, DAG_ID, run_id, TASK, "the change-review form")
        title = f"Airflow {DAG_ID}.{TASK} run {run_id}"
        assert form["subject"] == f"Review Jules's change (round 1 of 3): {title}", form["subject"]
        assert form["assigned_users"] == [RITA], form

        # The notifier ran once, in the worker, before the task waited: the form's subject and both links.
        run_path = quote(run_id, safe="")
        form_url = f"{stack.base_url}/dags/{DAG_ID}/runs/{run_path}/tasks/{TASK}/required_actions"
        [sent] = [json.loads(line) for line in notifications.read_text().splitlines()]
        assert sent["message"] == f"{form['subject']} -> {form_url}", sent
        assert sent["jules_form"]["kind"] == "change" and sent["jules_form"]["form_url"] == form_url
        session_url = sent["jules_form"]["session_url"]
        assert str(session_url).startswith("https://"), sent
        page = api.get(form_url.removeprefix(stack.base_url))
        assert page.status_code == 200 and "<html" in page.text.lower(), page.status_code  # the UI serves it

        # Not assigned: refused by Airflow (even with the admin role), and nothing is recorded.
        for user in ("sam", "admin"):
            with stack.api() as other:
                stack.log_in(other, user, passwords[user])
                refused = stack.answer_form(other, DAG_ID, run_id, TASK, ["Approve"], {"message": ""})
            assert refused.status_code == 403, (user, refused.status_code, refused.text)
            assert f"User={user} (id={user}) is not a respondent for the task" in refused.text
        assert stack.open_form(api, DAG_ID, run_id, TASK) is not None  # still waiting, unanswered

        # The assigned reviewer approves.
        with stack.api() as rita:
            stack.log_in(rita, "rita", passwords["rita"])
            response = stack.answer_form(rita, DAG_ID, run_id, TASK, ["Approve"], {"message": ""})
        assert response.status_code == 200, response.text
        assert response.json()["responded_by"] == {"id": "rita", "name": "rita"}, response.json()

        run = stack.wait_run(api, DAG_ID, run_id, timeout=180)
        assert run["state"] == "success", stack.task_instances(api, DAG_ID, run_id)
        result = stack.result(api, DAG_ID, run_id, TASK)
        assert result["url"] == session_url
        [entry] = result["review"]
        assert (entry["round"], entry["decision"], entry["reviewer"]) == (1, "approved", "rita"), entry
        assert "timed_out" not in entry
        assert sim.sessions_created == 1 and sim.requests("send_message") == []
        # Still one notification: a form opens once here.
        lines = poll("the notifications file", lambda: notifications.read_text().splitlines() or None, 5)
        assert len(lines) == 1, lines
