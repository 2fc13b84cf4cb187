"""JulesHITLTrigger (issue #21 item 4): the standard provider's HITLTrigger, holding its event until the form
has been open settle_seconds(), so that an immediate answer cannot race the scheduler's handling of the
deferral.

The class is used on Airflow 3.1 / 3.2 only, but the standard provider ships HITLTrigger on every version, so
these tests run on both (the triggerer runs the trigger's own code either way)."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_jules.triggers.hitl import MAX_HOLD_S, SETTLE_MARGIN_S, JulesHITLTrigger, settle_seconds

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
HOLD_S = 3.0  # a settle time for these tests (the trigger holds until its not_before, whatever made it)


def trigger(not_before: datetime | None) -> JulesHITLTrigger:
    return JulesHITLTrigger(
        not_before=not_before,
        ti_id="0199-ti",
        options=["Send answer"],
        params={},
        defaults=None,
        multiple=False,
        timeout_datetime=None,
        poke_interval=0.01,
    )


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The form is already answered; the returned list collects every asyncio.sleep the trigger asks for."""
    reply = SimpleNamespace(
        response_received=True,
        chosen_options=["Send answer"],
        params_input={},
        responded_at=NOW,
        responded_by_user=SimpleNamespace(id="alice", name="Alice"),
    )
    monkeypatch.setattr(
        "airflow.providers.standard.triggers.hitl.get_hitl_detail_content_detail", lambda ti_id: reply
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return slept


def events(t: JulesHITLTrigger) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in t.run()]

    return asyncio.run(collect())


def test_an_answer_before_the_settle_time_is_held_until_then(answered: list[float]) -> None:
    start = datetime.now(timezone.utc)
    [event] = events(trigger(start + timedelta(seconds=HOLD_S)))
    elapsed = (datetime.now(timezone.utc) - start).total_seconds()  # however slow the machine is
    assert event.payload["chosen_options"] == ["Send answer"]
    assert event.payload["responded_by_user"] == {"id": "alice", "name": "Alice"}
    [hold] = [s for s in answered if s > 0]  # one hold, and no poke: the answer was there at the first look
    assert HOLD_S - elapsed <= hold <= HOLD_S, (hold, elapsed)


def test_an_answer_after_the_settle_time_fires_at_once(answered: list[float]) -> None:
    [event] = events(trigger(datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert event.payload["chosen_options"] == ["Send answer"]
    assert [s for s in answered if s > 0] == []  # (a sleep(0) is a yield to the loop, not a hold)
    [event] = events(trigger(None))  # no settle time: HITLTrigger's own behaviour
    assert event.payload["chosen_options"] == ["Send answer"] and [s for s in answered if s > 0] == []


def test_the_hold_is_bounded_whatever_the_clocks_say() -> None:
    t = trigger(NOW + timedelta(hours=1))
    assert t.hold_seconds(now=NOW) == MAX_HOLD_S
    assert t.hold_seconds(now=NOW + timedelta(hours=2)) == 0.0
    assert trigger(None).hold_seconds(now=NOW) == 0.0


def test_it_serializes_to_itself_for_the_triggerer() -> None:
    not_before = NOW + timedelta(seconds=HOLD_S)
    classpath, kwargs = trigger(not_before).serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is JulesHITLTrigger
    again = cls(**kwargs)  # what the triggerer does with the stored kwargs
    assert again.not_before == not_before and again.ti_id == "0199-ti" and again.poke_interval == 0.01
    assert again.serialize() == (classpath, kwargs)


def test_the_settle_time_follows_the_workers_heartbeat_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deferring task's supervisor may sleep a whole ``[workers] min_heartbeat_interval`` before it
    notices the task's exit: the settle time is that interval plus a margin, bounded."""
    monkeypatch.delenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", raising=False)
    assert settle_seconds() == 5.0 + SETTLE_MARGIN_S == 10.0  # Airflow's default interval, 5 s
    monkeypatch.setenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "12")
    assert settle_seconds() == 12.0 + SETTLE_MARGIN_S
    monkeypatch.setenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "600")
    assert settle_seconds() == MAX_HOLD_S
