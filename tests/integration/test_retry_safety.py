"""Retry-safe creation, bad input, and errors no retry can fix: operator level, against the simulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_jules._compat import AirflowException, AirflowFailException, TaskDeferred
from airflow_provider_jules.operators.jules import (
    JulesApprovePlanOperator,
    JulesCreateSessionOperator,
    JulesDeleteSessionOperator,
    JulesGetSessionOperator,
    JulesSendMessageOperator,
    run_marker,
)
from airflow_provider_jules.sensors.jules import JulesSessionSensor
from tests.faults.harness import FakeStore, FakeTI


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_provider_jules.client._base as base
    import airflow_provider_jules.operators.jules as ops
    from airflow_provider_jules.client.retry import RetryPolicy

    monkeypatch.setattr(base, "RetryPolicy", lambda: RetryPolicy(initial_wait=0.001, max_wait=0.01))
    monkeypatch.setattr(ops, "RECONCILE_WAITS", (0.01, 0.01))


def context(ti: FakeTI, store: FakeStore | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ti": ti}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def create_op(**kwargs: Any) -> JulesCreateSessionOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.02)
    return JulesCreateSessionOperator(
        task_id="fix", prompt="Fix the flaky tests", source="bobalover/boba", **kwargs
    )


def sessions_with(sim: Any, marker: str) -> list[dict[str, Any]]:
    found = []
    for archived in ("false", "true"):
        for s in sim_list(sim, archived):
            if marker in s.get("title", ""):
                found.append(s)
    return found


def sim_list(sim: Any, archived: str) -> list[dict[str, Any]]:
    import httpx

    r = httpx.get(
        f"{sim.url}/v1alpha/sessions",
        params={"pageSize": 100, "filter": f"archived = {archived}"},
        headers={"x-goog-api-key": sim.api_key},
    )
    return r.json().get("sessions", [])


@pytest.mark.parametrize("with_store", [True, False], ids=["task_state_store", "title_marker"])
def test_retry_after_a_worker_crash_adopts_the_session(sim, fast, with_store, capfd):
    ti, store = FakeTI("d_crash", f"r_{with_store}", "fix"), FakeStore() if with_store else None
    first = create_op(deferrable=True)
    with pytest.raises(TaskDeferred):  # created, then the worker "dies" while deferred
        first.execute(context(ti, store))
    ti.try_number = 2
    result = create_op().execute(context(ti, store))
    marker = run_marker("d_crash", f"r_{with_store}", "fix", -1)
    assert [s["id"] for s in sessions_with(sim, marker)] == [result["session_id"]]
    assert result["outcome"] == "completed"
    assert len(sim.requests("create_session")) == 1
    assert "created by an earlier attempt" in "".join(capfd.readouterr())


def test_failed_earlier_session_is_not_adopted(sim, fast, capfd):
    ti, store = FakeTI("d_failed", "r", "fix"), FakeStore()
    with pytest.raises(AirflowException, match="outcome 'failed'"):
        JulesCreateSessionOperator(
            task_id="fix",
            prompt="Upgrade sim:scenario=failure",
            source="bobalover/boba",
            deferrable=False,
            poll_interval=0.02,
        ).execute(context(ti, store))
    failed_id = store.data["jules_session_id"]
    ti.try_number = 2
    result = create_op().execute(context(ti, store))
    assert len(sim.requests("create_session")) == 2
    assert result["session_id"] != failed_id and store.data["jules_session_id"] == result["session_id"]
    assert f"Session {failed_id} of an earlier attempt FAILED; creating a new one" in "".join(
        capfd.readouterr()
    )


def test_deleted_earlier_session_is_not_adopted(sim, fast, capfd):
    ti, store = FakeTI("d_deleted", "r", "fix"), FakeStore()
    with pytest.raises(TaskDeferred):
        create_op(deferrable=True).execute(context(ti, store))
    JulesDeleteSessionOperator(task_id="del", session_id=store.data["jules_session_id"]).execute(
        context(FakeTI("x", "x", "del"), None)
    )
    ti.try_number = 2
    create_op().execute(context(ti, store))
    assert len(sim.requests("create_session")) == 2
    assert "was deleted; creating a new one" in "".join(capfd.readouterr())


def test_adoption_can_be_switched_off(sim, fast):
    ti, store = FakeTI("d_off", "r", "fix"), FakeStore()
    with pytest.raises(TaskDeferred):
        create_op(deferrable=True, adopt_existing_session=False).execute(context(ti, store))
    ti.try_number = 2
    create_op(adopt_existing_session=False).execute(context(ti, store))
    assert len(sim.requests("create_session")) == 2


@pytest.mark.parametrize("with_store", [True, False], ids=["task_state_store", "title_marker"])
def test_ambiguous_create_is_reconciled_not_repeated(sim, fast, with_store):
    """The create stores the session but answers 500: the operator finds it by its marker."""
    sim.inject(route="create_session", status=500, count=1, store=True)
    ti, store = FakeTI("d_amb", f"r_{with_store}", "fix"), FakeStore() if with_store else None
    result = create_op().execute(context(ti, store))
    assert result["outcome"] == "completed"
    assert len(sim.requests("create_session")) == 1
    assert len(sessions_with(sim, run_marker("d_amb", f"r_{with_store}", "fix", -1))) == 1


def test_ambiguous_create_not_visible_fails_retryably_without_a_second_create(sim, fast):
    sim.inject(route="create_session", status=500, count=1, store=False)
    ti = FakeTI("d_amb2", "r", "fix")
    with pytest.raises(AirflowException) as info:
        create_op().execute(context(ti, None))
    assert not isinstance(info.value, AirflowFailException)  # the retry will look again, then create
    assert len(sim.requests("create_session")) == 1
    ti.try_number = 2
    assert create_op().execute(context(ti, None))["outcome"] == "completed"
    assert len(sim.requests("create_session")) == 2


# ----------------------------------------------------------------------------------------- bad input
BAD_INPUT = [
    ("empty prompt", lambda: create_op_kw(prompt=""), "prompt"),
    ("whitespace prompt", lambda: create_op_kw(prompt="  \n "), "prompt"),
    ("malformed source", lambda: create_op_kw(source="not a repo!"), "source"),
    ("path in source", lambda: create_op_kw(source="../../sessions/1"), "source"),
    ("unknown automation mode", lambda: create_op_kw(automation_mode="MANUAL"), "automation_mode"),
    ("zero poll interval", lambda: create_op_kw(poll_interval=0), "poll_interval"),
    ("negative poll interval", lambda: create_op_kw(poll_interval=-5), "poll_interval"),
    ("zero timeout", lambda: create_op_kw(timeout=0), "timeout"),
    ("negative stall timeout", lambda: create_op_kw(stall_timeout=-1), "stall_timeout"),
    ("unknown feedback policy", lambda: create_op_kw(on_user_feedback="ignore"), "on_user_feedback"),
    ("reply without text", lambda: create_op_kw(on_user_feedback="reply"), "auto_reply"),
    ("unknown timeout action", lambda: create_op_kw(on_timeout="cancel"), "on_timeout"),
    (
        "session id with path",
        lambda: JulesGetSessionOperator(task_id="g", session_id="1/../../sources"),
        "session_id",
    ),
    (
        "session id with query",
        lambda: JulesSendMessageOperator(task_id="s", session_id="1?x=2", prompt="hi"),
        "session_id",
    ),
    ("empty message", lambda: JulesSendMessageOperator(task_id="s", session_id="1", prompt=" "), "prompt"),
    (
        "approve bad id",
        lambda: JulesApprovePlanOperator(task_id="a", session_id="sessions/1/x"),
        "session_id",
    ),
    (
        "sensor bad id",
        lambda: JulesSessionSensor(task_id="w", session_id="", target_states=["COMPLETED"]),
        "session_id",
    ),
    (
        "sensor no targets",
        lambda: JulesSessionSensor(task_id="w", session_id="1", target_states=[]),
        "target_states",
    ),
]


def create_op_kw(**kwargs: Any) -> JulesCreateSessionOperator:
    base: dict[str, Any] = {
        "task_id": "fix",
        "prompt": "Fix it",
        "source": "bobalover/boba",
        "deferrable": False,
    }
    return JulesCreateSessionOperator(**{**base, **kwargs})


@pytest.mark.parametrize(("case", "build", "field"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_fails_before_any_request(sim, case, build, field):
    with pytest.raises(AirflowFailException) as info:
        build().execute(context(FakeTI("d_bad", "r", "t"), FakeStore()))
    assert field in str(info.value)
    assert sim.requests() == []


@pytest.mark.parametrize(
    ("conn", "fragment"),
    [
        ({"conn_type": "jules", "host": "http://127.0.0.1:9"}, "password field"),
        ({"conn_type": "jules", "host": "http://jules.example.com", "password": "k" * 12}, "plain http"),
    ],
    ids=["missing api key", "non-loopback http"],
)
def test_bad_connection_fails_before_any_request(sim, monkeypatch, conn, fragment):
    monkeypatch.setenv("AIRFLOW_CONN_JULES_BAD", json.dumps(conn))
    with pytest.raises(AirflowFailException, match=fragment):
        create_op_kw(jules_conn_id="jules_bad").execute(context(FakeTI("d_bad", "r", "t"), None))
    assert sim.requests() == []


def test_unknown_connection_id_names_the_fix(sim):
    with pytest.raises(AirflowFailException, match="AIRFLOW_CONN_NO_SUCH_JULES"):
        create_op_kw(jules_conn_id="no_such_jules").execute(context(FakeTI("d_bad", "r", "t"), None))
    assert sim.requests() == []


# ------------------------------------------------------------------------------- errors no retry fixes
@pytest.mark.parametrize(
    ("status", "body_status", "fragment"),
    [
        (401, "UNAUTHENTICATED", "API key"),
        (403, "PERMISSION_DENIED", "API key"),
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    ],
)
def test_errors_no_retry_can_fix_fail_the_task_at_once(sim, fast, status, body_status, fragment):
    sim.inject(route="create_session", status=status, count=1, message=f"refused: {body_status}")
    ti = FakeTI("d_fatal", "r", "t")
    with pytest.raises(AirflowFailException, match=fragment):
        create_op().execute(context(ti, None))
    assert len(sim.requests("create_session")) == 1


def test_quota_exhausted_is_failed_precondition_and_fails_fast(sim, fast):
    sim.replace_config(daily_quota=0)
    with pytest.raises(AirflowFailException, match="daily Jules session quota"):
        create_op().execute(context(FakeTI("d_quota", "r", "t"), None))


# --------------------------------------------------------------------------------------- large patches
def test_large_patch_goes_to_artifacts_path_and_the_result_keeps_its_uri(sim, fast, tmp_path):
    op = create_op(inline_patch_limit=100, artifacts_path=f"file://{tmp_path}/jules")
    result = op.execute(context(FakeTI("d_big", "manual__2026-01-01T00:00:00+00:00", "fix"), None))
    change_set = result["change_set"]
    assert change_set["patch"] is None and change_set["truncated"] is False
    assert change_set["patch_bytes"] > 100
    written = list((tmp_path / "jules").rglob("*.patch"))
    assert [p.name for p in written] == [f"{result['session_id']}.patch"]
    assert change_set["patch_uri"].endswith(f"/{result['session_id']}.patch")
    content = written[0].read_text()
    assert len(content.encode()) == change_set["patch_bytes"] and content.startswith("diff --git")
    assert ":" not in str(written[0].relative_to(tmp_path))  # run ids' colons are not put in paths


def test_large_patch_without_artifacts_path_is_truncated(sim, fast):
    result = create_op(inline_patch_limit=100).execute(context(FakeTI("d_trunc", "r", "fix"), None))
    change_set = result["change_set"]
    assert change_set["truncated"] is True and change_set["patch_uri"] is None
    assert len(change_set["patch"].encode()) <= 100 < change_set["patch_bytes"]
