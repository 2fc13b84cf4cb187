"""Authoring surface without a DB: the sensor's arguments, the decorator's registration, prompt files,
templated fields, argument checks and the series marker (issue #10)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from airflow_provider_jules._compat import AirflowFailException, TaskDeferred
from airflow_provider_jules.follower import SessionFollower
from airflow_provider_jules.operators._create import SessionCreator
from airflow_provider_jules.operators.jules import (
    JulesApprovePlanOperator,
    JulesCreateSessionOperator,
    JulesDeleteSessionOperator,
    JulesGetSessionOperator,
    JulesListSourcesOperator,
    JulesSendMessageOperator,
    run_marker,
)
from airflow_provider_jules.sensors.jules import JulesSessionSensor
from tests.fakes import install_hook, wait_options


def test_sensor_takes_the_arguments_of_every_airflow_sensor():
    from airflow.sdk import BaseSensorOperator

    sensor = JulesSessionSensor(
        task_id="s",
        session_id="123",
        poke_interval=30,
        timeout=timedelta(minutes=5),
        mode="reschedule",
        soft_fail=True,
        exponential_backoff=True,
        max_wait=timedelta(minutes=2),
    )
    assert isinstance(sensor, BaseSensorOperator)
    assert (sensor.poke_interval, sensor.timeout, sensor.mode) == (30, 300, "reschedule")
    assert sensor.soft_fail and sensor.exponential_backoff and sensor.max_wait == timedelta(minutes=2)


def test_poll_interval_is_a_deprecated_alias_of_poke_interval():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sensor = JulesSessionSensor(task_id="s", session_id="123", poll_interval=7)
    assert sensor.poke_interval == 7
    (warning,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert "use poke_interval" in str(warning.message)


def test_poll_interval_and_poke_interval_together_are_refused():
    with pytest.raises(ValueError, match="poke_interval only"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        JulesSessionSensor(task_id="s", session_id="123", poll_interval=7, poke_interval=8)


def _hook(state: str) -> mock.MagicMock:
    hook = mock.MagicMock()
    hook.get_session.return_value = {
        "id": "123",
        "name": "sessions/123",
        "state": state,
        "url": "https://jules.google.com/session/123",
        "updateTime": "2026-01-01T00:00:00Z",
    }
    hook.list_activities.return_value = []
    return hook


def test_sensor_poke_returns_the_result_as_its_xcom(monkeypatch):
    sensor = JulesSessionSensor(task_id="s", session_id="123", target_states=["AWAITING_PLAN_APPROVAL"])
    install_hook(monkeypatch, _hook("AWAITING_PLAN_APPROVAL"))
    value = sensor.poke({"ti": mock.MagicMock()})
    assert value.is_done and value.xcom_value["outcome"] == "awaiting_plan_approval"


def test_sensor_poke_is_not_done_while_the_session_works(monkeypatch):
    sensor = JulesSessionSensor(task_id="s", session_id="123")
    install_hook(monkeypatch, _hook("IN_PROGRESS"))
    assert not sensor.poke({"ti": mock.MagicMock()})


@pytest.mark.parametrize("states", ["COMPLETED", [], [""]])
def test_sensor_rejects_bad_target_states_before_any_request(monkeypatch, states):
    sensor = JulesSessionSensor(task_id="s", session_id="123", target_states=states, deferrable=True)
    hook = _hook("IN_PROGRESS")
    install_hook(monkeypatch, hook)
    with pytest.raises(AirflowFailException, match="target_states"):
        sensor.execute({"ti": mock.MagicMock()})
    assert hook.method_calls == []


def test_deferrable_sensor_defers_to_the_trigger_with_an_absolute_deadline(monkeypatch):
    sensor = JulesSessionSensor(task_id="s", session_id="123", deferrable=True, poke_interval=9, timeout=60)
    install_hook(monkeypatch, _hook("IN_PROGRESS"))
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"ti": mock.MagicMock()})
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["poll_interval"] == 9 and kwargs["stop_on_feedback"] is False
    assert kwargs["on_kill_action"] == "keep"


def test_task_jules_is_registered_through_the_provider_info():
    from airflow.sdk import task

    from airflow_provider_jules.decorators.jules import jules_task
    from airflow_provider_jules.get_provider_info import get_provider_info

    assert {"name": "jules", "class-name": "airflow_provider_jules.decorators.jules.jules_task"} in (
        get_provider_info()["task-decorators"]
    )
    assert task.jules is jules_task


def test_airflow_providers_get_shows_the_decorator():
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "providers", "get", "airflow-provider-jules", "--full", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    (info,) = json.loads(out.stdout[out.stdout.index("[{") :])
    assert {"name": "jules", "class-name": "airflow_provider_jules.decorators.jules.jules_task"} in (
        info["task-decorators"]
    )


@pytest.mark.parametrize(
    "operator",
    [
        JulesCreateSessionOperator,
        JulesSendMessageOperator,
        JulesApprovePlanOperator,
        JulesGetSessionOperator,
        JulesDeleteSessionOperator,
        JulesListSourcesOperator,
        JulesSessionSensor,
    ],
)
def test_jules_conn_id_is_templated_everywhere(operator):
    assert "jules_conn_id" in operator.template_fields


def test_prompt_files_are_md_txt_and_jinja():
    for operator in (JulesCreateSessionOperator, JulesSendMessageOperator):
        assert tuple(operator.template_ext) == (".md", ".txt", ".jinja")


def test_the_series_changes_the_marker_a_retry_keeps_it():
    first = run_marker("d", "r", "t", -1, 2)
    assert run_marker("d", "r", "t", -1, 2) == first  # a retry: same max_tries
    assert run_marker("d", "r", "t", -1, 5) != first  # after a clear: max_tries set anew


def _create(**kwargs: Any) -> JulesCreateSessionOperator:
    return JulesCreateSessionOperator(task_id="t", prompt="Fix it", source="acme/web", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": 1e15}, "timeout"),
        ({"poll_interval": float("inf")}, "poll_interval"),
        ({"stall_timeout": float("nan")}, "stall_timeout"),
        ({"inline_patch_limit": True}, "inline_patch_limit"),
        ({"title": 123}, "title"),
        ({"require_plan_approval": "false"}, "require_plan_approval"),
        ({"auto_create_pr": 1}, "auto_create_pr"),
        ({"deferrable": "yes"}, "deferrable"),
        ({"on_no_changes": "ignore"}, "on_no_changes"),
        ({"max_poll_errors": True}, "max_poll_errors"),
    ],
)
def test_bad_arguments_fail_before_any_request_naming_the_argument(monkeypatch, kwargs, fragment):
    op = _create(**kwargs)
    hook = mock.MagicMock()
    install_hook(monkeypatch, hook)
    with pytest.raises(AirflowFailException, match=fragment):
        op.execute({"ti": mock.MagicMock()})
    assert hook.method_calls == []


def _activity(n: int) -> dict[str, Any]:
    return {
        "id": f"a{n}",
        "createTime": f"2026-01-01T00:00:0{n}.000000Z",
        "originator": "agent",
        "progressUpdated": {"title": f"Step {n}"},
    }


def test_a_wait_that_ends_before_streaming_logs_what_it_missed_once(capfd):
    """A deadline or stall during failed polls ends the wait before the stream caught up: the follower's
    finish logs the activities after the event's cursor, and only those."""
    op = _create(deferrable=True, stall_timeout=5, on_timeout="keep")
    hook = _hook("IN_PROGRESS")
    hook.list_activities.return_value = [_activity(1), _activity(2), _activity(3)]
    options = wait_options(deferrable=True, stall_timeout=5, on_timeout="keep")
    follower = SessionFollower(op, options, hook=hook, conn_id="jules_default")
    event = {
        "status": "timeout",
        "reason": "stall",
        "message": "stalled",
        "session_id": "123",
        "cursor": "2026-01-01T00:00:01.000000Z",  # activity 1 was streamed by the trigger
    }
    with pytest.raises(Exception, match="timed_out"):
        follower.resume({"ti": mock.MagicMock()}, event)
    out = "".join(capfd.readouterr())
    assert re.findall(r"\[Jules\] Progress: Step \d", out) == [
        "[Jules] Progress: Step 2",
        "[Jules] Progress: Step 3",
    ]


def test_parsing_a_dag_with_operators_does_not_load_the_decorator_machinery():
    """The import-cost benchmark's module (operators) and the sensor load nothing beyond what they use."""
    code = (
        "import sys, json; import airflow.sdk; before = set(sys.modules);"
        "import airflow_provider_jules.operators.jules, airflow_provider_jules.sensors.jules;"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "airflow.sdk.bases.decorator" not in added
    assert "airflow_provider_jules.decorators.jules" not in added


def test_a_marker_search_that_hits_its_cap_says_so(capfd):
    """Truncation is the documented behaviour of the marker search: it is logged, never silent."""
    op = _create()
    hook = mock.MagicMock()
    hook.list_sessions.return_value = iter(
        {"id": str(i), "title": f"Other task [airflow-{i:016x}]"} for i in range(600)
    )
    creator = SessionCreator(hook, op.log, adopt=True, waits=(0.0,))
    assert creator.find_by_marker("airflow-ffffffffffffffff", attempts=1) is None
    assert "in the 500 most recent sessions only" in "".join(capfd.readouterr())
