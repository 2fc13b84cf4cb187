"""JulesFixNotifier through dag.test() against the simulator (issue #20): one session per failure, the
daily cap, secrets never sent, a slow API never holding the failed task, nothing for a success."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.integration.conftest import REPO, load_dag_module, run_dag

PASSWORD = "S3cr3t-Pa55-9f2c1e"
DAG_FILE = "tests/dags/jules_fix_dags.py"


pytestmark = pytest.mark.usefixtures("failure_callbacks_get_the_exception")


@pytest.fixture(scope="module")
def fix_dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / DAG_FILE)


@pytest.fixture
def fsim(sim: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    conn = {"conn_type": "postgres", "host": "db.internal", "login": "etl", "password": PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", json.dumps(conn))
    sim.reset()
    return sim


def creates(sim: Any) -> list[dict[str, Any]]:
    return [r["json"] for r in sim.requests("create_session") if r["status"] == 200]


def test_one_failure_opens_one_session_with_what_jules_needs(fix_dags: Any, fsim: Any) -> None:
    result = run_dag(fix_dags.jules_fix_value_error)

    assert result.state == "failed" and result.task_states == {"extract": "failed"}
    [body] = creates(fsim)
    prompt, title = body["prompt"], body["title"]
    assert title.startswith("[jules-fix ") and "Fix jules_fix_value_error.extract: ValueError" in title
    for needed in (
        "DAG id: jules_fix_value_error",
        "Task id: extract",
        f"Run id: {result.run_id}",
        "Try number: 1",
        f"DAG file: {DAG_FILE}",
        "Exception: ValueError: no rows in s3://bucket/orders.csv",
        f"Innermost frame in the DAG's code: {DAG_FILE}, function load_rows",
        'raise ValueError(f"no rows in {path}")',  # the traceback
    ):
        assert needed in prompt, needed
    assert body["sourceContext"]["source"] == "sources/github/myorg/myrepo"
    assert body["automationMode"] == "AUTO_CREATE_PR"
    link = result.xcom("extract", "jules_fix")
    sig = title.split()[1].rstrip("]")
    assert link == {
        "session_id": link["session_id"],
        "url": f"https://jules.google.com/session/{link['session_id']}",
        "signature": sig,
        "new": True,
    }
    assert f"Failure signature: {sig}" in prompt


def test_extra_instructions_come_from_a_prompt_file_rendered_with_jinja(fix_dags: Any, fsim: Any) -> None:
    run_dag(fix_dags.jules_fix_prompt_file)

    [body] = creates(fsim)
    assert body["prompt"].endswith(
        "## Instructions from the DAG's owners\n"
        "Keep the public schema of jules_fix_prompt_file unchanged; add a regression test next to the DAG.\n"
    )


def test_the_same_failure_again_opens_nothing_and_points_at_the_first(fix_dags: Any, fsim: Any) -> None:
    first = run_dag(fix_dags.jules_fix_value_error)
    second = run_dag(fix_dags.jules_fix_value_error)

    assert first.run_id != second.run_id and second.state == "failed"
    assert len(creates(fsim)) == 1
    a, b = first.xcom("extract", "jules_fix"), second.xcom("extract", "jules_fix")
    assert a["new"] is True and b["new"] is False
    assert b["session_id"] == a["session_id"] and b["signature"] == a["signature"]


def test_three_different_failures_open_three_sessions(fix_dags: Any, fsim: Any) -> None:
    result = run_dag(fix_dags.jules_fix_three)

    assert set(result.task_states.values()) == {"failed"}
    titles = sorted(b["title"].split("] ", 1)[1] for b in creates(fsim))
    assert titles == [
        "Fix jules_fix_three.config: KeyError",
        "Fix jules_fix_three.divide: ZeroDivisionError",
        "Fix jules_fix_three.rows: ValueError",
    ]
    sigs = {result.xcom(t, "jules_fix")["signature"] for t in ("rows", "config", "divide")}
    assert len(sigs) == 3


def test_the_daily_cap_holds(fix_dags: Any, fsim: Any, capfd: pytest.CaptureFixture[str]) -> None:
    result = run_dag(fix_dags.jules_fix_capped)

    assert set(result.task_states.values()) == {"failed"} and len(result.task_states) == 3
    assert len(creates(fsim)) == 2
    linked = [t for t in ("rows", "config", "divide") if result.xcom(t, "jules_fix")]
    assert len(linked) == 2
    assert "max_sessions_per_day is 2" in "".join(capfd.readouterr())


def test_a_connection_password_in_the_exception_never_reaches_the_api(fix_dags: Any, fsim: Any) -> None:
    result = run_dag(fix_dags.jules_fix_secret)

    assert result.state == "failed"
    [body] = creates(fsim)
    sent = json.dumps(fsim.requests())
    assert PASSWORD not in sent
    assert "acct-123456" not in sent  # redact_patterns
    assert "PermissionError: login refused for postgresql://***@db.internal:5432/dw" in body["prompt"]
    assert "(password ***, account ***)" in body["prompt"]


def test_a_slow_api_never_holds_the_failed_task(fix_dags: Any, fsim: Any) -> None:
    fsim.set_faults(rules=[{"route": "*", "status": None, "latency_ms": 40_000, "count": None}])
    started = time.monotonic()
    result = run_dag(fix_dags.jules_fix_slow)
    elapsed = time.monotonic() - started

    assert result.state == "failed" and result.task_states == {"slow": "failed"}
    assert result.xcom("slow", "jules_fix") is None
    # time_budget=3: the run ends long before the API's 40 s answer (dag.test() itself takes a few seconds).
    assert elapsed < 3 + 15, elapsed


def test_a_successful_task_opens_nothing(fix_dags: Any, fsim: Any) -> None:
    result = run_dag(fix_dags.jules_fix_success)

    assert result.state == "success"
    assert fsim.requests() == []


def test_retries_open_one_session_after_the_last_try(fix_dags: Any, fsim: Any) -> None:
    result = run_dag(fix_dags.jules_fix_retries)

    assert result.task_states == {"flaky": "failed"}
    [body] = creates(fsim)
    assert "Try number: 3" in body["prompt"]
    assert len(fsim.requests("list_sessions")) == 2  # one callback: a look before and one after the create


def test_no_source_and_no_git_bundle_opens_nothing(
    fix_dags: Any, fsim: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(fix_dags.jules_fix_no_source)

    assert result.state == "failed"
    assert fsim.requests() == []
    assert "the notifier has no `source` and the DAG does not come from a git DAG bundle" in "".join(
        capfd.readouterr()
    )


def test_the_jules_fix_link_reads_the_failed_tasks_xcom(fix_dags: Any, fsim: Any) -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey

    from airflow_provider_jules.links.jules import JulesFixLink

    result = run_dag(fix_dags.jules_fix_value_error)
    link = JulesFixLink()

    url = link.get_link(None, ti_key=TaskInstanceKey("jules_fix_value_error", "extract", result.run_id, 1))
    assert url == result.xcom("extract", "jules_fix")["url"]
    assert link.get_link(None, ti_key=TaskInstanceKey("jules_fix_success", "fine", result.run_id, 1)) == ""


def test_a_dag_level_callback_opens_a_session_without_an_exception(
    fix_dags: Any, fsim: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(fix_dags.jules_fix_dag_level)

    assert result.state == "failed"
    [body] = creates(fsim)
    assert "- Task id: broken" in body["prompt"]
    assert "- Exception: not available (this callback ran in Airflow's DAG processor" in body["prompt"]
    assert body["title"].endswith("Fix jules_fix_dag_level.broken: failure")
    # A DAG-level callback cannot store an XCom: the session's URL is in its log line instead.
    assert result.xcom("broken", "jules_fix") is None
    out = "".join(capfd.readouterr())
    assert "Jules fix session " in out and "https://jules.google.com/session/" in out


def test_a_notifier_on_the_task_and_on_the_dag_opens_one_session(
    fix_dags: Any, fsim: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(fix_dags.jules_fix_both)

    assert result.state == "failed"
    [body] = creates(fsim)  # the task's callback, with the exception
    assert body["title"].endswith("Fix jules_fix_both.twice: KeyError")
    link = result.xcom("twice", "jules_fix")
    out = "".join(capfd.readouterr())
    assert f"Jules fix session {link['session_id']} (already open for this failure" in out  # the DAG's


def test_two_workers_failing_at_the_same_moment_leave_one_open_session(fsim: Any) -> None:
    import threading

    from airflow_provider_jules.fixes.flow import _hook
    from airflow_provider_jules.fixes.requester import Budget, FixPolicy, FixRequest, FixRequester

    request = FixRequest(
        signature="0123456789abcdef",
        title="[jules-fix 0123456789abcdef] Fix etl.load: ValueError",
        prompt="fix it",
        source="sources/github/myorg/myrepo",
        starting_branch="main",
        auto_create_pr=True,
        require_plan_approval=False,
    )
    found: list[Any] = []
    looked = threading.Barrier(2)

    class LookingTogether(FixRequester):
        """Both workers finish their first look before either creates: each sees no session."""

        first = True

        def fix_sessions(self, step: str) -> list[Any]:
            sessions = super().fix_sessions(step)
            if self.first:
                self.first = False
                looked.wait(10)
            return sessions

    def worker() -> None:
        hook = _hook("jules_default", 15.0)
        requester = LookingTogether(hook, FixPolicy(10, 7 * 86400.0), Budget(15.0), logging.getLogger("w"))
        found.append(requester.request(request))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(creates(fsim)) == 2 and len(found) == 2
    assert found[0].session_id == found[1].session_id  # both point at the same (older) session
    assert sorted(f.new for f in found) == [False, True]
    [archived] = [r["path"] for r in fsim.requests("archive_session")]  # the younger twin, once
    assert archived.endswith(":archive") and found[0].session_id not in archived
    live = [
        s["id"]
        for s in _hook("jules_default", 15.0).list_sessions()
        if s.get("title", "").startswith("[jules-fix 0123456789abcdef]")
    ]
    assert live == [found[0].session_id]  # the younger twin is archived: out of the list
