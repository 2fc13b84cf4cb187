"""``JulesSessionSensor``: wait until a session reaches one of the target states.

It uses the same trigger (deferrable) or the same :class:`~airflow_provider_jules._waiting.Watch` (in the
worker) and the same result builder as the operators, and returns the result dict, e.g. the plan when
waiting for ``AWAITING_PLAN_APPROVAL``. Reaching COMPLETED or FAILED when neither is a target fails the task
with the session's outcome (for example ``plan_not_approved`` after a silent completion, quirk Q15).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_jules.client.errors import JulesConfigError, JulesError
from airflow_provider_jules.client.models import session_id
from airflow_provider_jules.operators.jules import DEFAULT_POLL_INTERVAL, _fail_fast, _JulesWaitingBase

if TYPE_CHECKING:
    from airflow.sdk import Context

Json = dict[str, Any]


class JulesSessionSensor(_JulesWaitingBase):
    """Wait for a Jules session to reach one of ``target_states``.

    :param session_id: the session (templated).
    :param target_states: states that end the wait successfully (default: ``("COMPLETED",)``).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls.
    :param timeout: how long to wait before failing with outcome ``timed_out``.

    Jules's questions (AWAITING_USER_FEEDBACK) do not end the wait unless that state is a target, and a
    timeout keeps the session (``on_timeout="keep"``): a sensor observes, it does not stop work.
    """

    template_fields: Sequence[str] = ("session_id", "target_states")

    def __init__(
        self,
        *,
        session_id: str,
        target_states: Sequence[str] = ("COMPLETED",),
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = timedelta(days=1),
        on_timeout: str = "keep",
        on_kill_action: str = "keep",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            poll_interval=poll_interval,
            timeout=timeout,
            on_timeout=on_timeout,
            on_kill_action=on_kill_action,
            on_user_feedback="wait",
            **kwargs,
        )
        self.session_id = session_id
        self.target_states = target_states

    def _target_states(self) -> list[str]:
        return [str(s) for s in self.target_states]

    def _stop_on_feedback(self) -> bool:
        return False

    def execute(self, context: Context) -> Json:
        try:
            sid = session_id(self.session_id)
            if isinstance(self.target_states, str) or not self.target_states:
                raise JulesConfigError(
                    "target_states must be a non-empty list of states, e.g. ['AWAITING_PLAN_APPROVAL'], "
                    f"got {self.target_states!r}."
                )
            self._validate_wait_args()
            self._push_session(context, self.hook.get_session(sid))
        except (JulesError, ValueError) as exc:
            raise _fail_fast(exc) from exc
        return self._wait(context, self._new_watch(sid))
