"""Fault injection against the simulator, with numbers (issue #5, item 4).

Randomized, seeded schedules of 429s with Retry-After, 5xx, latency, transient 404s, ambiguous creates,
worker crashes (task retries) and triggerer restarts, over at least 100 task instances. Each run counts
the sessions created for its task instance (exactly 1 is the only right answer, bar a replacement for a
session that FAILED), whether the outcome is the scenario's, and the activities never streamed to the
log. Prints ``runs=N duplicates=D wrong_outcomes=W lost_events=L`` and requires D = W = L = 0.

Control runs break the provider on purpose (no adoption, a dropped log line, failures judged as success)
and require the harness to see it: a suite that cannot fail proves nothing.

``JULES_FAULT_RUNS`` and ``JULES_FAULT_SEED`` change the number of runs and the seed (printed).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from airflow_provider_jules.client import _base, retry
from airflow_provider_jules.client.retry import RetryPolicy
from airflow_provider_jules.simulator import SimulatorConfig
from airflow_provider_jules.simulator.server import JulesSimulator, run_simulator
from tests.faults.harness import (
    Harness,
    Plan,
    fault_mix,
    iterate,
    make_plan,
    summarize,
    summary_line,
)

RUNS = int(os.environ.get("JULES_FAULT_RUNS", "120"))
SEED = int(os.environ.get("JULES_FAULT_SEED", "20260505"))
#: Retry-After is sent in whole seconds; the suite waits this fraction of what the client asks for.
RETRY_AFTER_SCALE = 0.01
#: Fault kinds that a full schedule must contain (checked when RUNS >= 100).
REQUIRED_KINDS = (
    "ambiguous_create:stored",
    "ambiguous_create:lost",
    "ambiguous_create:stored_hidden",
    "worker_crash:after_create",
    "worker_crash:mid_wait",
    "worker_crash:on_resume",
    "triggerer_restart",
    "transient_404",
    "polling_errors_event",
    "429+retry_after",
    "no_store",
    "store",
)


@pytest.fixture(scope="module")
def sim() -> Iterator[JulesSimulator]:
    # Fast clock: a 3-step session lasts ~0.2 s; the 60 s approval timeout (Q15) 0.12 s.
    config = SimulatorConfig(api_key="sim-key-faults", speed=500.0, seed=11, approval_timeout=60.0)
    with run_simulator(config) as simulator:
        yield simulator


class RetryAfterLog:
    def __init__(self) -> None:
        self.seen = 0
        self.ignored = 0


@pytest.fixture
def fast(sim: JulesSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[RetryAfterLog]:
    """The connection, tiny backoffs and reconciliation waits, and Retry-After honoured on a scaled clock."""
    monkeypatch.setenv("AIRFLOW_CONN_JULES_DEFAULT", sim.conn_json)
    monkeypatch.setattr(
        _base,
        "RetryPolicy",
        functools.partial(RetryPolicy, initial_wait=0.005, max_wait=0.02, max_attempts=6, max_elapsed=20.0),
    )
    monkeypatch.setattr("airflow_provider_jules.operators.jules.RECONCILE_WAITS", (0.01, 0.02))
    log = RetryAfterLog()
    real_wait = retry.wait_seconds

    def scaled_wait(exc: BaseException | None, attempt: int, policy: RetryPolicy) -> float:
        wait = real_wait(exc, attempt, policy)
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, (int, float)) and hint > 0:
            log.seen += 1
            log.ignored += wait < hint  # the client must wait at least what the server asked
            return wait * RETRY_AFTER_SCALE
        return wait

    monkeypatch.setattr(retry, "wait_seconds", scaled_wait)
    # Thousands of expected retry warnings would bury the summary; failures are reported per run instead.
    client_log = logging.getLogger("airflow_provider_jules.client")
    level = client_log.level
    client_log.setLevel(logging.ERROR)
    yield log
    client_log.setLevel(level)


@pytest.fixture
def harness(sim: JulesSimulator, fast: RetryAfterLog, request: pytest.FixtureRequest) -> Iterator[Harness]:
    from airflow_provider_jules.client import JulesClient

    client = JulesClient(sim.api_key, base_url=sim.url)
    with capture_logs() as events:
        yield Harness(sim, client, lambda: events, namespace=f"{request.node.name}_{time.monotonic_ns()}")
    client.close()


def _report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(text, flush=True)


def test_fault_injection_suite(
    harness: Harness,
    fast: RetryAfterLog,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    assert RUNS >= 100 or "JULES_FAULT_RUNS" in os.environ
    start = time.monotonic()
    reports = [harness.run(plan) for plan in iterate(RUNS, SEED)]
    elapsed = time.monotonic() - start
    totals = summarize(reports)
    line = summary_line(totals)
    mix = fault_mix(reports)
    bad = [r.describe() for r in reports if r.duplicates or r.wrong_outcome or r.lost_events]
    _report(capsys, f"\nfault injection: seed={SEED} elapsed={elapsed:.1f}s")
    _report(capsys, "fault mix: " + ", ".join(f"{k}={v}" for k, v in sorted(mix.items())))
    _report(capsys, f"retry-after: honoured {fast.seen - fast.ignored} of {fast.seen}")
    for text in bad:
        _report(capsys, "BAD RUN " + text)
    _report(capsys, line)
    record_property("fault_injection_summary", line)
    record_property("fault_injection_seed", SEED)

    assert totals["runs"] >= min(RUNS, 100)
    assert (totals["duplicates"], totals["wrong_outcomes"], totals["lost_events"]) == (0, 0, 0), (
        f"{line}; first bad runs (all printed above): {bad[:3]}"
    )
    # The schedule really exercised what it claims to (a silent harness proves nothing).
    assert fast.seen > 0 and fast.ignored == 0
    for kind in REQUIRED_KINDS if RUNS >= 100 else ():
        assert mix[kind] > 0, f"the schedule never produced {kind}"
    assert mix["retries"] > 0 and mix["triggerer_restarts_done"] > 0


# ---------------------------------------------------------------------------------------------- controls
def _control(harness: Harness, plans: list[Plan]) -> dict[str, int]:
    return summarize([harness.run(plan) for plan in plans])


def _plan(index: int, **changes: Any) -> Plan:
    import random

    plan = make_plan(index, random.Random(index))
    plan.rules, plan.transient_404_requests, plan.restarts = [], 0, []
    plan.ambiguous = plan.crash = None
    plan.poll_error_burst = plan.send_503 = False
    for key, value in changes.items():
        setattr(plan, key, value)
    return plan


def test_control_without_adoption_duplicates_are_detected(harness: Harness) -> None:
    """A provider that does not adopt (``adopt_existing_session=False``) creates duplicates: we see them."""
    from airflow_provider_jules.simulator import FaultRule

    plans = [
        _plan(1, scenario="happy", deferrable=True, crash="after_create", adopt=False),
        _plan(2, scenario="happy", deferrable=False, crash="mid_wait", crash_after_polls=2, adopt=False),
        _plan(
            3,
            scenario="happy",
            deferrable=True,
            ambiguous="stored",
            adopt=False,
            rules=[FaultRule(route="create_session", status=500, count=1, store=True)],
        ),
    ]
    totals = _control(harness, plans)
    assert totals["duplicates"] >= 3, totals


def test_control_dropped_log_line_is_a_lost_event(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trigger that forgets to stream one kind of activity loses events: we see them."""
    from airflow_provider_jules.results import format_activity

    def forgetful(activity: dict[str, Any]) -> str | None:
        return None if "planGenerated" in activity else format_activity(activity)

    # The trigger and the worker both write their lines through activity_log.log_activities.
    monkeypatch.setattr("airflow_provider_jules.activity_log.format_activity", forgetful)
    totals = _control(harness, [_plan(4, scenario="happy", deferrable=True)])
    assert totals["lost_events"] >= 1, totals


def test_control_failures_judged_as_success_are_wrong_outcomes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that lets a FAILED session pass gives wrong outcomes: we see them."""
    from airflow_provider_jules.follower import SessionFollower

    monkeypatch.setattr(SessionFollower, "judge", lambda self, status, result: result)
    totals = _control(harness, [_plan(5, scenario="failure", deferrable=False)])
    assert totals["wrong_outcomes"] == 1, totals


# ---------------------------------------------------------------------------------------------- found bugs
@pytest.mark.parametrize(
    "case",
    [
        # The worker dies right after create; the retry adopts the session (state store or marker) and its
        # first activities request meets the post-create 404 of quirk Q18: judged fatal, the task fails
        # for good while the session keeps running.
        "adopted_after_crash",
        # The attempt that created the session: 429s use up the client's attempts, the last failure is a
        # Q18 404, and the watch judges it fatal instead of a transient polling error.
        "q18_404_after_429s",
    ],
)
def test_q18_404_on_the_activities_of_a_live_session_is_not_fatal(harness: Harness, case: str) -> None:
    from airflow_provider_jules.simulator import FaultRule

    if case == "adopted_after_crash":
        plan = _plan(900, scenario="happy", deferrable=False, crash="after_create", transient_404_requests=1)
    else:
        plan = _plan(
            901,
            scenario="happy",
            deferrable=False,
            transient_404_requests=3,
            rules=[FaultRule(route="list_activities", status=429, count=3)],
        )
    report = harness.run(plan)
    assert (report.final_status, report.final_outcome, report.duplicates) == ("success", "completed", 0), (
        report.describe()
    )
