"""The wait for a person's answer on Airflow 3.1 and 3.2: the standard provider's ``HITLTrigger``, settled.

On those versions a Required Actions form is a deferral to ``HITLTrigger``, which fires as soon as the answer
is in the metadata DB. An answer given within a few seconds of the form opening (a script, a bot) can make
the trigger fire before the scheduler has handled the executor's "success" event of the workload that
deferred; the scheduler then sees that event for a task instance of the same try that is already back in
``scheduled``/``queued``/``running`` and fails it as "state changed externally" (measured by
``tests/system/test_hitl_fast_answer.py``: 6 of 24 tasks on Airflow 3.1.8; apache/airflow#72716).

``JulesHITLTrigger`` is ``HITLTrigger`` plus one rule: it yields its event no earlier than ``not_before`` (the
form's opening plus :func:`settle_seconds`), by which time the deferring workload's exit has been handled.
That exit reaches the scheduler late by design: the task's supervisor often sees its task's sockets close
before the process is reaped, and then sleeps a full ``[workers] min_heartbeat_interval`` (5 s by default)
before it notices the exit and reports it (measured on Airflow 3.1.8: the executor's event arrived 5.5 s after
"Pausing task as DEFERRED", twice in three runs). A person rarely answers that fast; an answer from a script
takes effect some seconds later instead of losing the task. On Airflow >= 3.3 the provider parks the task in
``awaiting_input`` instead (no trigger), and this class is not used: the API server resumes the task itself
(docs "People in the loop").

This module imports the standard provider: import it only where the standard provider is present.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import TriggerEvent

#: Seconds added to ``[workers] min_heartbeat_interval`` for the scheduler's loop to handle the deferring
#: workload's exit once its supervisor reports it (docs "People in the loop").
SETTLE_MARGIN_S = 5.0
#: The longest hold, whatever ``not_before`` says (a clock skewed between worker and triggerer).
MAX_HOLD_S = 30.0


def settle_seconds() -> float:
    """Seconds after a form opens before its answer may resume the task (Airflow 3.1/3.2): the worker's
    ``[workers] min_heartbeat_interval`` (the longest its supervisor may take to notice that the deferring
    task exited) plus :data:`SETTLE_MARGIN_S`, at most :data:`MAX_HOLD_S`; 10 s with Airflow's defaults."""
    from airflow.configuration import conf

    interval = conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0)
    return min(MAX_HOLD_S, max(0.0, interval) + SETTLE_MARGIN_S)


class JulesHITLTrigger(HITLTrigger):  # type: ignore[misc,unused-ignore]
    """``HITLTrigger`` that fires no earlier than ``not_before`` (a timezone-aware datetime, or None)."""

    def __init__(self, *, not_before: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.not_before = not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "not_before": self.not_before}

    def hold_seconds(self, now: datetime | None = None) -> float:
        """How long an event must still wait: 0 once ``not_before`` has passed, at most :data:`MAX_HOLD_S`."""
        if self.not_before is None:
            return 0.0
        now = now or datetime.now(timezone.utc)
        return min(MAX_HOLD_S, max(0.0, (self.not_before - now).total_seconds()))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            hold = self.hold_seconds()
            if hold > 0:
                self.log.info(
                    "[HITL] the form was answered soon after it opened; resuming the task in %.1f s, "
                    "once the scheduler has handled the deferral",
                    hold,
                )
                await asyncio.sleep(hold)
            yield event
            return
