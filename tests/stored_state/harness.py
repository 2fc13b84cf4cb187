"""Drive the operators through the steps that store state, and catch what each step stores.

Used by ``capture.py`` (run once on a release, to write the fixtures) and by
``tests/integration/test_stored_state.py`` (the current code resumes from those fixtures). Only names that
Airflow itself calls or stores are used here (``execute``, ``execute_complete``, ``resume_from_person``,
``Trigger.serialize()``, the ``TaskDeferred``/``TaskAwaitingInput`` exceptions, ``task_state_store``, XCom),
so the harness works on any internal shape of the provider.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_jules._compat import TaskAwaitingInput, TaskDeferred

Json = dict[str, Any]


class StoreTI:
    """``context["ti"]`` and ``["task_instance"]``: records XCom pushes; has the ``id`` a HITL form needs."""

    def __init__(self, task_id: str, try_number: int = 1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "stored_state", "run_1", task_id, -1
        self.try_number = try_number
        self.max_tries = 0
        self.id = "0199aaaa-0000-7000-8000-000000000001"
        self.xcom: Json = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Store:
    """``task_state_store`` (Airflow >= 3.3): per task instance, survives retries."""

    def __init__(self, data: Json | None = None) -> None:
        self.data: Json = dict(data or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.data[key] = value


def context(ti: StoreTI, store: Store) -> Json:
    return {"ti": ti, "task_instance": ti, "task_state_store": store}


@dataclass
class Parked:
    """Where a step left the task: deferred to a trigger, or waiting for a person (a HITL form)."""

    method_name: str
    kwargs: Json | None
    trigger: tuple[str, Json] | None = None  # classpath, kwargs: what the triggerer's DB row keeps
    form: Json | None = None  # the HITL detail written (options, subject)

    def as_json(self) -> Json:
        return {
            "method_name": self.method_name,
            "kwargs": self.kwargs,
            "trigger": list(self.trigger) if self.trigger else None,
            "form": self.form,
        }


@dataclass
class Forms:
    written: list[Json] = field(default_factory=list)


@contextmanager
def catching_forms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Forms]:
    """Airflow's own ``upsert_hitl_detail`` replaced by a recorder (no DB row, no supervisor)."""
    forms = Forms()
    monkeypatch.setattr(
        "airflow.sdk.execution_time.hitl.upsert_hitl_detail", lambda **kw: forms.written.append(kw)
    )
    yield forms


def park(step: Callable[[], Any], forms: Forms) -> Parked:
    """Run ``step`` and return where it parked the task; fail if it returned instead."""
    before = len(forms.written)
    try:
        returned = step()
    except TaskDeferred as deferred:
        form = _form(forms, before)
        classpath, kwargs = deferred.trigger.serialize()
        if form is not None:  # Airflow 3.1 / 3.2: a form is a deferral to Airflow's HITLTrigger
            return Parked(deferred.method_name, deferred.kwargs, None, form)
        return Parked(deferred.method_name, deferred.kwargs, (classpath, dict(kwargs)), None)
    except BaseException as exc:  # TaskAwaitingInput is not an Exception
        if TaskAwaitingInput is not None and isinstance(exc, TaskAwaitingInput):
            return Parked(exc.method_name, exc.kwargs, None, _form(forms, before))  # Airflow >= 3.3
        raise
    raise AssertionError(f"the step returned instead of parking the task: {returned!r}")


def _form(forms: Forms, before: int) -> Json | None:
    if len(forms.written) == before:
        return None
    detail = forms.written[-1]
    return {"options": list(detail["options"]), "subject": detail["subject"]}


def trigger_from(stored: tuple[str, Json] | list[Any]) -> Any:
    classpath, kwargs = stored
    module, _, name = str(classpath).rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def first_event(trigger: Any, *, within: float = 60.0) -> Json:
    """Run a trigger as the triggerer does until its first event (bounded)."""

    async def run() -> Json:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    async def bounded() -> Json:
        return await asyncio.wait_for(run(), within)

    return asyncio.run(bounded())


def answer(option: str, message: str = "", reviewer: str = "alice") -> Json:
    """The resume event Airflow hands ``resume_from_person`` once a person answered a form."""
    from datetime import datetime, timezone

    return {
        "chosen_options": [option],
        "params_input": {"message": message} if message else {},
        "responded_by_user": {"id": "1", "name": reviewer},
        "responded_at": datetime.now(timezone.utc),
    }
