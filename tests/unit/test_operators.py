"""Operator behaviour without Airflow's runtime: deferral, the event allow-list, cheap imports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest

from airflow_provider_jules._compat import AirflowException, AirflowFailException, TaskDeferred
from airflow_provider_jules.follower import SessionFollower
from airflow_provider_jules.operators.jules import (
    JulesCreateSessionOperator,
    JulesSendMessageOperator,
    JulesSessionError,
    run_marker,
)
from tests.fakes import FakeHook, install_hook, wait_options

SID = "14550388554331055113"


def context(try_number: int = 1) -> dict[str, Any]:
    ti = mock.MagicMock(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=try_number)
    return {"ti": ti}


def operator(monkeypatch: pytest.MonkeyPatch, hook: FakeHook, **kwargs: Any) -> JulesCreateSessionOperator:
    kwargs.setdefault("deferrable", True)
    install_hook(monkeypatch, hook)
    return JulesCreateSessionOperator(
        task_id="t", prompt="Fix it", source="acme/web", poll_interval=7, **kwargs
    )


def test_execute_creates_pushes_ids_and_defers_with_absolute_deadline(monkeypatch):
    hook = FakeHook(states=["QUEUED"])
    op = operator(monkeypatch, hook, timeout=3600)
    ctx = context()
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx)
    trigger = info.value.trigger
    _, kwargs = trigger.serialize()
    assert kwargs["session_id"] == SID
    assert before + 3600 <= kwargs["end_time"] <= time.time() + 3600
    assert kwargs["poll_interval"] == 7.0 and kwargs["target_states"] == ["COMPLETED"]
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON, no credential
    assert info.value.method_name == "execute_complete"
    # Backstop: slightly after the trigger's own deadline, so the clean timeout event wins.
    assert 3600 + 14 + 59 <= info.value.timeout.total_seconds() <= 3600 + 14 + 61
    ctx["ti"].xcom_push.assert_any_call(key="session_id", value=SID)
    ctx["ti"].xcom_push.assert_any_call(key="session_url", value=f"https://jules.google.com/session/{SID}")
    create = dict(c for c in hook.calls if c[0] == "create_session")["create_session"]
    assert create["starting_branch"] == "develop"  # the source's default branch
    assert create["automation_mode"] == "AUTO_CREATE_PR"
    assert create["title"] == f"Airflow d.t run r [{run_marker('d', 'r', 't', -1)}]"


def test_already_terminal_session_finishes_without_deferring(monkeypatch):
    hook = FakeHook(states=["COMPLETED"])
    op = operator(monkeypatch, hook)
    with mock.patch.object(JulesCreateSessionOperator, "defer") as defer:
        result = op.execute(context())
    defer.assert_not_called()
    assert result["outcome"] == "completed_without_changes"


@pytest.mark.parametrize(
    "event", [None, {}, {"status": "success", "session_id": SID}, {"status": "target"}, "x"]
)
def test_execute_complete_rejects_events_outside_the_allow_list(monkeypatch, event):
    op = operator(monkeypatch, FakeHook(states=["COMPLETED"]))
    with pytest.raises(AirflowException, match="Jules trigger"):
        op.execute_complete(context(), event=event)


def test_execute_complete_takes_the_session_id_from_the_event(monkeypatch):
    hook = FakeHook(states=["COMPLETED"])
    op = operator(monkeypatch, hook)  # a fresh instance, as on resume
    result = op.execute_complete(context(), event={"status": "target", "session_id": "777"})
    assert result["session_id"] == "777"
    assert ("get_session", "777") in hook.calls


def test_failed_event_raises_named_error_with_link(monkeypatch):
    hook = FakeHook(states=["FAILED"])
    with pytest.raises(JulesSessionError) as info:
        operator(monkeypatch, hook).execute_complete(
            context(), event={"status": "terminal", "session_id": SID}
        )
    assert info.value.outcome == "failed"
    assert f"https://jules.google.com/session/{SID}" in str(info.value)


def test_polling_error_event_is_retryable_api_error_is_not(monkeypatch):
    op = operator(monkeypatch, FakeHook(states=["IN_PROGRESS"]))
    with pytest.raises(AirflowException) as info:
        op.execute_complete(
            context(), event={"status": "error", "reason": "polling_errors", "session_id": SID}
        )
    assert not isinstance(info.value, AirflowFailException)
    assert "adopts the same session" in str(info.value)
    with pytest.raises(AirflowFailException):
        op.execute_complete(context(), event={"status": "error", "reason": "api_error", "session_id": SID})


def test_send_message_waits_only_after_the_session_changed(monkeypatch):
    hook = install_hook(monkeypatch, FakeHook(states=["COMPLETED"]))
    op = JulesSendMessageOperator(
        task_id="m", session_id=SID, prompt="More", wait_for_completion=True, deferrable=True, poll_interval=1
    )
    with pytest.raises(TaskDeferred) as info:
        op.execute(context())
    # The session still shows COMPLETED from before the message: not an end; the trigger waits for a change.
    assert info.value.trigger.serialize()[1]["settle_after"] == "2026-01-01T00:00:00Z"
    assert ("send_message", "More") in hook.calls


def test_operator_module_import_pulls_in_no_http_stack():
    code = (
        "import sys, json; import airflow.sdk; before = set(sys.modules);"
        "import airflow_provider_jules.operators.jules, airflow_provider_jules.sensors.jules;"
        "import airflow_provider_jules.decorators.jules, airflow_provider_jules.follower;"
        "import airflow_provider_jules.notifications.jules;"
        "print(json.dumps(sorted(set(sys.modules) - before)));"
        "print(json.dumps('requests' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    added = set(json.loads(lines[-2]))
    heavy = {"requests", "httpx", "tenacity", "urllib3"}
    ours = {
        "airflow_provider_jules.hooks.jules",
        "airflow_provider_jules.client.sync",
        "airflow_provider_jules.client.aio",
        "airflow_provider_jules.client.retry",
        "airflow_provider_jules.triggers.jules",
    }
    assert not added & heavy, added & heavy
    assert not added & ours, added & ours
    # requests is not loaded at all (httpx and tenacity are already imported by airflow.sdk itself)
    assert json.loads(lines[-1]) is False


@pytest.mark.parametrize(
    ("action", "call"), [("archive", "archive_session"), ("delete", "delete_session"), ("keep", None)]
)
def test_on_kill_in_the_worker_stops_the_followed_session_as_told(action, call):
    hook = FakeHook(states=["IN_PROGRESS"])
    task = JulesCreateSessionOperator(task_id="t", prompt="Fix it", source="acme/web")
    follower = SessionFollower(task, wait_options(on_kill_action=action), hook=hook, conn_id="jules_default")
    follower.followed = SID  # set by the wait, which a kill interrupts
    follower.on_kill()
    assert [c for c in hook.calls if c[0] in ("archive_session", "delete_session")] == (
        [(call, SID)] if call else []
    )


def test_on_kill_before_any_session_does_nothing(monkeypatch):
    hook = FakeHook(states=["IN_PROGRESS"])
    operator(monkeypatch, hook).on_kill()
    assert hook.calls == []


# ---------------------------------------------------------------------------------------------- the parts
def test_wait_options_are_checked_once_and_frozen():
    options = wait_options(poll_interval=timedelta(seconds=9), stall_timeout=timedelta(minutes=1))
    assert (options.poll_interval, options.stall_timeout, options.target_states) == (
        9.0,
        60.0,
        ("COMPLETED",),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 1.0  # type: ignore[misc]


def test_a_follower_defers_to_the_trigger_with_the_tasks_connection_and_options():
    hook = FakeHook(states=["IN_PROGRESS"])
    task = JulesCreateSessionOperator(task_id="t", prompt="Fix it", source="acme/web")
    follower = SessionFollower(task, wait_options(deferrable=True), hook=hook, conn_id="my_jules")
    assert follower.review is None  # no person in the loop: no review at all
    with pytest.raises(TaskDeferred) as info:
        follower.follow(context(), follower.new_watch(SID))
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["jules_conn_id"] == "my_jules" and kwargs["poll_interval"] == 7.0
    assert info.value.kwargs is None  # no review state to carry
    assert follower.followed == SID
