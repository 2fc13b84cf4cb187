"""Capture what a release stores for a task in flight (issue #19 item 8), into ``release-<version>.json``.

Run once per release from the repository root, on that release's code:
``.venv/bin/python -m tests.stored_state.capture``. It runs each scenario against the simulator on
loopback and writes, for each step that parks a task, what Airflow keeps: the trigger's classpath and
kwargs (the triggerer's DB row), the ``next_kwargs`` of the method the task resumes in (``jules_state``),
the task state store and the XComs. ``tests/integration/test_stored_state.py`` resumes the current code
from every one of them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import tests.conftest  # noqa: F401 - a private AIRFLOW_HOME before Airflow is imported
from tests.stored_state.harness import (
    Json,
    Parked,
    Store,
    StoreTI,
    answer,
    catching_forms,
    context,
    first_event,
    park,
    trigger_from,
)

HERE = Path(__file__).resolve().parent
FEEDBACK = "Update the client sim:scenario=user_feedback"

#: name -> (operator class, kwargs): the tasks whose stored state is captured.
TASKS: dict[str, tuple[str, Json]] = {
    "create": ("JulesCreateSessionOperator", {"prompt": "Fix the flaky tests"}),
    "review": ("JulesCreateSessionOperator", {"prompt": "Fix the flaky tests", "review": "hitl"}),
    "ask": ("JulesCreateSessionOperator", {"prompt": FEEDBACK, "on_user_feedback": "ask"}),
    "plan": (
        "JulesCreateSessionOperator",
        {"prompt": "Add a health check endpoint", "require_plan_approval": True, "review_plan": "hitl"},
    ),
}
COMMON: Json = {"source": "bobalover/boba", "deferrable": True, "poll_interval": 0.05}


def build(name: str, try_number: int = 1, store: Store | None = None) -> tuple[Any, StoreTI, Store, Json]:
    from airflow_provider_jules.operators import jules as ops

    cls, kwargs = TASKS[name]
    op = getattr(ops, cls)(task_id=name, **COMMON, **kwargs)
    ti, store = StoreTI(name, try_number), store or Store()
    return op, ti, store, context(ti, store)


def step(parked: Parked, ti: StoreTI, store: Store) -> Json:
    return {**parked.as_json(), "xcom": dict(ti.xcom), "task_state_store": dict(store.data)}


def until_parked_on_a_form(
    op: Any, ctx: Json, forms: Any, parked: Parked, steps: list[Json], ti: Any, st: Any
) -> Parked:
    """Follow trigger deferrals (running each trigger to its event) until the task waits for a person."""
    for _ in range(20):
        if parked.trigger is None:
            return parked
        event = first_event(trigger_from(parked.trigger))
        steps[-1]["event"] = event
        kwargs = parked.kwargs or {}
        parked = park(lambda e=event, k=kwargs: op.execute_complete(ctx, event=e, **k), forms)
        steps.append(step(parked, ti, st))
    raise AssertionError("no form opened")


def form_scenario(name: str, forms: Any, answers: list[tuple[str, str]]) -> list[Json]:
    """Run task ``name`` until it waits for a person, then give each answer in turn; every parking step."""
    op, ti, st, ctx = build(name)
    steps = [step(park(lambda: op.execute(ctx), forms), ti, st)]
    parked = until_parked_on_a_form(op, ctx, forms, Parked(**_parked(steps[0])), steps, ti, st)
    for option, message in answers:
        kwargs = parked.kwargs or {}
        parked = park(
            lambda o=option, m=message, k=kwargs: op.resume_from_person(ctx, event=answer(o, m), **k), forms
        )
        steps.append(step(parked, ti, st))
    return steps


def capture() -> Json:
    from airflow_provider_jules import __version__
    from airflow_provider_jules.simulator import SimulatorConfig, run_simulator

    out: Json = {"release": __version__, "captured_at": time.time(), "tasks": TASKS, "common": COMMON}
    config = SimulatorConfig(api_key="sim-key-capture", speed=400.0, seed=7, approval_timeout=7200.0)
    with run_simulator(config) as sim, pytest.MonkeyPatch.context() as mp, catching_forms(mp) as forms:
        os.environ["AIRFLOW_CONN_JULES_DEFAULT"] = sim.conn_json
        scenarios: Json = {}

        # A plain deferred create: the trigger row, the task state store (session id, series), the XComs.
        op, ti, st, ctx = build("create")
        steps = [step(park(lambda: op.execute(ctx), forms), ti, st)]

        # A deferrable sensor following that session while it runs.
        from airflow_provider_jules.sensors.jules import JulesSessionSensor

        sid = ti.xcom["session_id"]
        sensor = JulesSessionSensor(task_id="wait", session_id=sid, deferrable=True, poke_interval=0.05)
        sti, sst = StoreTI("wait"), Store()
        scenarios["sensor"] = [step(park(lambda: sensor.execute(context(sti, sst)), forms), sti, sst)]

        steps[0]["event"] = first_event(trigger_from(steps[0]["trigger"]))
        scenarios["create"] = steps

        # Change review: the form of round 1, then "Request changes" parks the task on the trigger with
        # the rounds in jules_state (and in the task state store). A question, answered. A plan form.
        scenarios["review"] = form_scenario("review", forms, [("Request changes", "Add a test.")])
        scenarios["ask"] = form_scenario("ask", forms, [("Send answer", "Yes, please.")])
        scenarios["plan"] = form_scenario("plan", forms, [])
        out["scenarios"] = scenarios
        assert sim.api_key not in json.dumps(out, default=str), "the API key would be stored"
    return out


def _parked(s: Json) -> Json:
    return {
        "method_name": s["method_name"],
        "kwargs": s["kwargs"],
        "trigger": tuple(s["trigger"]) if s["trigger"] else None,
        "form": s["form"],
    }


def main() -> None:
    data = capture()
    path = HERE / f"release-{data['release']}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {path} ({sum(len(s) for s in data['scenarios'].values())} steps)")


if __name__ == "__main__":
    main()
