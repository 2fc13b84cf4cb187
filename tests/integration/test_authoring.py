"""Airflow-native authoring (issue #10) end to end with dag.test() against the simulator.

The sensor as every Airflow sensor (poke, reschedule, deferrable), ``@task.jules`` with ``.expand()``, prompt
files, a templated connection id, ``on_no_changes``, asset-event extras, and the rule that a clear starts a
new session while a retry adopts the earlier one.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.fakes import install_hook
from tests.integration.conftest import REPO, complete_after_reads, load_dag_module, run_dag

SENSOR_MODES = ["poke", "reschedule", "deferrable"]


@pytest.fixture(scope="module")
def dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / "tests" / "dags" / "jules_authoring_dags.py")


@pytest.fixture(params=SENSOR_MODES)
def sensor_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def prompts_sent(sim: Any) -> list[str]:
    return [r["json"]["prompt"] for r in sim.requests("create_session")]


# ----------------------------------------------------------------------------------------------- the sensor
def test_sensor_returns_the_result_when_the_target_is_reached(dags, sim, sensor_mode):
    run = run_dag(getattr(dags, f"jules_sensor_target_{sensor_mode}"))
    assert (run.state, run.task_states) == ("success", {"create": "success", "wait": "success"})
    result = run.xcom("wait")
    assert result["outcome"] == "completed" and result["state"] == "COMPLETED"
    assert result["session_id"] == run.xcom("create", "session_id")
    assert result["pull_request_url"].startswith("https://github.com/")
    # The session's id and link, for the extra links, pushed from the sensor's own reads.
    assert run.xcom("wait", "session_id") == result["session_id"]
    assert run.xcom("wait", "session_url") == result["url"]


def test_sensor_fails_with_the_outcome_on_a_terminal_state_that_is_not_a_target(
    dags, sim, sensor_mode, capfd
):
    run = run_dag(getattr(dags, f"jules_sensor_terminal_{sensor_mode}"))
    assert run.task_states == {"create": "success", "wait": "failed"}
    assert "ended with outcome 'failed'" in "".join(capfd.readouterr())


def test_sensor_soft_fail_on_timeout_skips(dags, sim, sensor_mode):
    run = run_dag(getattr(dags, f"jules_sensor_soft_timeout_{sensor_mode}"))
    assert run.task_states == {"create": "success", "wait": "skipped"}


def test_sensor_timeout_is_an_airflow_sensor_timeout(dags, sim, sensor_mode, capfd):
    run = run_dag(getattr(dags, f"jules_sensor_hard_timeout_{sensor_mode}"))
    assert run.task_states == {"create": "success", "wait": "failed"}
    assert "AirflowSensorTimeout" in "".join(capfd.readouterr())


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sensor_exponential_backoff_spaces_the_pokes_out(dags, sim, mode, capfd):
    with complete_after_reads(sim, 5):  # the sensor reads the session once a poke
        run = run_dag(getattr(dags, f"jules_sensor_backoff_{mode}"))
    assert run.task_states == {"create": "success", "wait": "success"}
    # Airflow's own backoff (poke_interval=1): 1 s, 1 s, then 2-3 s, then 4-7 s; Airflow logs each one
    # only when exponential_backoff is on, and without it every interval would be poke_interval.
    logged = re.findall(rf"new {mode} interval is ([0-9.]+)", "".join(capfd.readouterr()))
    intervals = [float(x) for x in logged]
    assert len(intervals) >= 3, intervals
    assert min(intervals) >= 1 and max(intervals) >= 2, intervals


def test_sensor_deferrable_trigger_polls_every_poke_interval(monkeypatch, dags):
    from airflow_provider_jules._compat import TaskDeferred

    sensor = dags.jules_sensor_target_deferrable.task_dict["wait"]
    assert sensor.poke_interval == 0.05 and sensor.deferrable is True
    from unittest import mock

    sensor.session_id = "123"
    hook = mock.MagicMock()
    hook.get_session.return_value = {
        "id": "123",
        "state": "IN_PROGRESS",
        "updateTime": "2026-01-01T00:00:00Z",
    }
    hook.list_activities.return_value = []
    install_hook(monkeypatch, hook)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"ti": mock.MagicMock()})
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["poll_interval"] == 0.05 and kwargs["target_states"] == ["COMPLETED"]
    assert kwargs["end_time"] is not None


# ----------------------------------------------------------------------------------------------- @task.jules
def test_task_jules_expand_creates_one_session_per_input_with_the_returned_prompts(dags, sim):
    run = run_dag(dags.jules_decorator_expand)
    assert run.state == "success"
    assert {k: v for k, v in run.task_states.items() if k.startswith("fix")} == {
        "fix[0]": "success",
        "fix[1]": "success",
        "fix[2]": "success",
    }
    assert sorted(prompts_sent(sim)) == [f"Fix issue #{n}: Flaky test number {n}" for n in (11, 12, 13)]
    assert sim.sessions_created == 3
    results = [run.xcom("fix", map_index=i) for i in range(3)]
    assert {r["outcome"] for r in results} == {"completed"}
    assert len({r["session_id"] for r in results}) == 3
    sources = {r["json"]["sourceContext"]["source"] for r in sim.requests("create_session")}
    assert sources == {"sources/github/bobalover/boba"}  # the templated source, rendered


def test_task_jules_with_an_empty_or_non_string_prompt_fails_before_any_request(dags, sim, capfd):
    run = run_dag(dags.jules_decorator_bad_prompt)
    # retries=2 on "empty": an error no retry can fix fails at once.
    assert run.task_states == {"empty": "failed", "not_a_string": "failed"}
    assert sim.requests() == []
    out = "".join(capfd.readouterr())
    assert "must return the prompt, a non-empty string; it returned an empty string" in out
    assert "it returned a value of type dict" in out


# ----------------------------------------------------------------------------------------------- prompt files
def test_a_markdown_prompt_file_reaches_the_api_rendered(dags, sim):
    run = run_dag(dags.jules_prompt_file)
    assert run.task_states == {"from_file": "success", "inline": "success"}
    prompts = prompts_sent(sim)
    assert (
        "# Fix the flaky tests in bobalover/boba\n\n"
        "Make the tests under `tests/integration` deterministic. Keep production code unchanged."
    ) in prompts
    # Inline text that merely ends like a file name is sent as it is.
    assert "Update the install steps in README.md" in prompts


def test_a_missing_prompt_file_fails_with_a_clear_error_before_any_request(dags, sim, capfd):
    run = run_dag(dags.jules_prompt_file_missing)
    assert run.task_states == {"missing": "failed"}
    assert sim.requests() == []
    assert "Prompt file 'prompts/missing.md' was not found" in "".join(capfd.readouterr())


def test_a_templated_jules_conn_id_is_honoured(dags, sim, monkeypatch):
    # The default connection points at a dead port: only the templated one reaches the simulator.
    monkeypatch.setenv(
        "AIRFLOW_CONN_JULES_DEFAULT",
        json.dumps({"conn_type": "jules", "host": "http://127.0.0.1:9", "password": "wrong-key"}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_JULES_SECOND_ACCOUNT", sim.conn_json)
    run = run_dag(dags.jules_templated_conn)
    assert run.task_states == {"create": "success"}
    assert sim.sessions_created == 1


# -------------------------------------------------------------------------------------------- on_no_changes
def test_on_no_changes_succeed_succeeds_with_a_warning(dags, sim, capfd):
    run = run_dag(dags.jules_no_changes_succeed)
    assert run.task_states == {"create": "success", "review": "success"}
    assert run.xcom("create")["outcome"] == "completed_without_changes"
    assert "completed without producing a change or a pull request" in "".join(capfd.readouterr())


def test_on_no_changes_skip_pushes_the_result_then_skips_downstream(dags, sim):
    run = run_dag(dags.jules_no_changes_skip)
    assert run.task_states == {"create": "skipped", "review": "skipped"}
    assert run.xcom("create")["outcome"] == "completed_without_changes"


def test_on_no_changes_fail_fails_without_burning_retries(dags, sim, capfd):
    run = run_dag(dags.jules_no_changes_fail)
    assert run.task_states == {"create": "failed", "review": "upstream_failed"}
    assert sim.sessions_created == 1  # retries=1, never used
    assert "outcome 'completed_without_changes'" in "".join(capfd.readouterr())


# ----------------------------------------------------------------------------------------------- outlets
def test_asset_events_carry_the_session_and_pull_request(dags, sim):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    run = run_dag(dags.jules_outlets)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri="jules://tests/pull-request").one()
        event = session.query(AssetEvent).filter_by(asset_id=asset.id).order_by(AssetEvent.id.desc()).first()
        extra = dict(event.extra)
    assert extra == {
        "session_id": result["session_id"],
        "url": result["url"],
        "outcome": "completed",
        "pull_request_url": result["pull_request_url"],
        "files_changed": result["change_set"]["files_changed"],
    }
    assert extra["files_changed"] and extra["pull_request_url"].startswith("https://github.com/")


# ------------------------------------------------------------------------------------------- clear vs retry
def _clear_and_run_again(dag: Any, run_id: str, task_id: str) -> str:
    """What the UI's "Clear" and ``airflow tasks clear`` do (clear_task_instances), then what the scheduler
    does with a cleared task instance (a new try number, scheduled, run)."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    def load(session: Any) -> Any:
        return session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id, task_id=task_id).one()

    with create_session() as session:
        clear_task_instances([load(session)], session)
    with create_session() as session:
        ti = load(session)
        # The scheduler starts the queued run again, then schedules the cleared task instance.
        ti.dag_run.state = DagRunState.RUNNING
        ti.dag_run.start_date = timezone.utcnow()
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        _run_task(ti=ti, task=dag.task_dict[task_id], run_triggerer=True)
    with create_session() as session:
        return str(load(session).state)


def test_clearing_a_successful_task_creates_a_new_session(dags, sim):
    run = run_dag(dags.jules_clear)
    assert run.task_states == {"create": "success"}
    first = run.xcom("create")["session_id"]
    assert _clear_and_run_again(dags.jules_clear, run.run_id, "create") == "success"
    assert sim.sessions_created == 2
    second = run.xcom("create")["session_id"]
    assert second != first
    titles = [r["json"]["title"] for r in sim.requests("create_session")]
    assert titles[0] != titles[1]  # a new marker: the cleared task's retries adopt the new session


def test_a_retry_after_a_failed_try_adopts_the_session_of_the_earlier_try(dags, sim, monkeypatch, capfd):
    monkeypatch.setenv(
        "AIRFLOW_CONN_JULES_ONE_ATTEMPT",
        json.dumps({**json.loads(sim.conn_json), "extra": {"max_attempts": 1}}),
    )
    sim.inject("get_session", status=503, count=1)  # the first poll fails: the first try fails, retryably
    run = run_dag(dags.jules_retry)
    assert run.task_states == {"create": "success"}
    assert sim.sessions_created == 1
    sid = run.xcom("create")["session_id"]
    # Both tries followed the one session: every read of a session was a read of that one.
    assert {r["path"].rsplit("/", 1)[-1] for r in sim.requests("get_session")} == {sid}
    assert "created by an earlier attempt of this task" in "".join(capfd.readouterr())
