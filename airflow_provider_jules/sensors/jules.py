"""``JulesSessionSensor``: wait until a session reaches one of the target states, as any Airflow sensor.

A real :class:`~airflow.sdk.BaseSensorOperator`: ``poke_interval``, ``timeout``, ``mode="poke"|"reschedule"``,
``soft_fail``, ``exponential_backoff`` and ``max_wait`` behave as for every sensor. ``deferrable=True``
(default ``[operators] default_deferrable``) waits in the triggerer with the same
:class:`~airflow_provider_jules.triggers.jules.JulesSessionTrigger` as the operators, up to an absolute
deadline (``timeout`` from the first try). Every mode returns the result dict of
:mod:`airflow_provider_jules.results` as the task's XCom, e.g. the plan when waiting for
``AWAITING_PLAN_APPROVAL``. Reaching COMPLETED or FAILED when neither is a target fails the task with the
session's outcome (for example ``plan_not_approved`` after a silent completion, quirk Q15), or skips it with
``soft_fail``; running out of time raises ``AirflowSensorTimeout`` (skipped with ``soft_fail``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_jules._compat import AirflowException, AirflowSensorTimeout, AirflowSkipException
from airflow_provider_jules.client.errors import JulesConfigError, JulesError
from airflow_provider_jules.client.models import session_id
from airflow_provider_jules.failures import fail_fast
from airflow_provider_jules.follower import JulesConnectionMixin, SessionFollower, push_session
from airflow_provider_jules.links.jules import JulesPullRequestLink, JulesSessionLink
from airflow_provider_jules.options import WaitOptions, default_deferrable
from airflow_provider_jules.results import DEFAULT_INLINE_PATCH_LIMIT
from airflow_provider_jules.watch import EventStatus, Watch

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.sdk import Context

Json = dict[str, Any]


class JulesSessionSensor(JulesConnectionMixin, BaseSensorOperator):
    """Wait for a Jules session to reach one of ``target_states``.

    :param session_id: the session (templated).
    :param target_states: states that end the wait successfully (templated; default ``("COMPLETED",)``).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``); ``mode`` and
        ``exponential_backoff`` then do not apply (the trigger polls every ``poke_interval``).
    :param jules_conn_id: the Airflow connection (templated).
    :param poll_interval: deprecated alias of ``poke_interval``.
    :param on_timeout: what a timeout does to the session: ``keep`` (default: a sensor observes, it does
        not stop work), ``archive`` or ``delete``.
    :param on_kill_action: what killing the deferred task does to the session (default ``keep``).
    :param inline_patch_limit: bytes of patch kept inline in the result.
    :param artifacts_path: where a larger patch and Jules's media (screenshots) are written
        (ObjectStoragePath URL).
    :param max_poll_errors: consecutive failed polls tolerated (transient API errors never fail a poke
        before that).

    ``poke_interval``, ``timeout``, ``mode``, ``soft_fail``, ``exponential_backoff``, ``max_wait`` and the
    other arguments of :class:`~airflow.sdk.BaseSensorOperator` behave as for every Airflow sensor. Jules's
    questions (AWAITING_USER_FEEDBACK) do not end the wait unless that state is a target.
    """

    template_fields: Sequence[str] = ("session_id", "target_states", "jules_conn_id")
    operator_extra_links = (JulesSessionLink(), JulesPullRequestLink())

    def __init__(
        self,
        *,
        session_id: str,
        target_states: Sequence[str] = ("COMPLETED",),
        jules_conn_id: str = "jules_default",
        deferrable: bool | None = None,
        poll_interval: float | timedelta | None = None,
        on_timeout: str = "keep",
        on_kill_action: str = "keep",
        inline_patch_limit: int = DEFAULT_INLINE_PATCH_LIMIT,
        artifacts_path: str | None = None,
        max_poll_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            warnings.warn(
                "JulesSessionSensor(poll_interval=...) is deprecated: use poke_interval=..., as for every "
                "Airflow sensor.",
                DeprecationWarning,
                stacklevel=2,
            )
            if "poke_interval" in kwargs:
                raise JulesConfigError("Give poke_interval only (poll_interval is its deprecated alias).")
            kwargs["poke_interval"] = poll_interval
        super().__init__(**kwargs)
        self.session_id = session_id
        self.target_states = target_states
        self.jules_conn_id = jules_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.on_timeout = on_timeout
        self.on_kill_action = on_kill_action
        self.inline_patch_limit = inline_patch_limit
        self.artifacts_path = artifacts_path
        self.max_poll_errors = max_poll_errors
        self._following: _SensorFollower | None = None
        self._poke_watch: Watch | None = None
        self._pushed = False

    # ------------------------------------------------------------------------------------ called by Airflow
    def execute(self, context: Context) -> Any:
        sid, follower = self._follower()
        follower.followed = sid
        if not self.deferrable:
            return super().execute(context)  # poke or reschedule, with the sensor's own timeout rules
        watch = follower.new_watch(sid)
        event = follower.poll_once(watch)
        self._push_read_session(context, follower)
        if event is None:
            follower.defer(watch)
        return follower.finish(context, event)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        follower = self._following or self._follower()[1]
        watch = self._poke_watch
        if watch is None:
            # The sensor's own timeout rules (poke and reschedule): the watch has no deadline of its own.
            watch = self._poke_watch = follower.new_watch(session_id(self.session_id))
            watch.end_time = None
            # Reschedule mode runs each poke in a new process, without the cursor of the last one: log
            # Jules's latest activity instead of the whole history at every poke.
            follower.latest_only = self.reschedule
        event = follower.poll_once(watch)
        follower.latest_only = False
        self._push_read_session(context, follower)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=follower.finish(context, event))

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, jules_state: Json | None = None
    ) -> Json:
        """Resume after the trigger: check the event against the allow-list; the session id comes from it."""
        return self._follower()[1].resume(context, event, jules_state)

    def on_kill(self) -> None:
        """The worker-side kill: the session gets ``on_kill_action`` (default ``keep``), best effort."""
        if self._following is not None:
            self._following.on_kill()

    # ------------------------------------------------------------------------------------ the follower
    def _follower(self) -> tuple[str, _SensorFollower]:
        """The session id and the sensor's follower, its arguments checked before any request."""
        try:
            sid = session_id(self.session_id)
            states = self.target_states
            if isinstance(states, str) or not states or not all(isinstance(s, str) and s for s in states):
                raise JulesConfigError(
                    "target_states must be a non-empty list of states, e.g. ['AWAITING_PLAN_APPROVAL'], "
                    f"got {states!r}."
                )
            options = WaitOptions.check(
                target_states=states,
                poll_interval=self.poke_interval,
                poll_name="poke_interval",
                timeout=self.timeout,
                on_timeout=self.on_timeout,
                on_kill_action=self.on_kill_action,
                deferrable=self.deferrable,
                inline_patch_limit=self.inline_patch_limit,
                max_poll_errors=self.max_poll_errors,
                artifacts_path=self.artifacts_path,
            )
            follower = _SensorFollower(self, options, hook=self.hook, conn_id=self.jules_conn_id)
        except (JulesError, ValueError) as exc:
            raise fail_fast(exc) from exc
        follower.soft_fail = self.soft_fail
        self._following = follower
        return sid, follower

    def _push_read_session(self, context: Context, follower: SessionFollower) -> None:
        """The session's id and links to XCom once per process, from the poll's own read (no extra
        request; a reschedule clears the XComs, so each poke process pushes them again)."""
        if not self._pushed and follower.last_session is not None:
            push_session(context, follower.last_session, self.hook)
            self._pushed = True


class _SensorFollower(SessionFollower):
    """A sensor observes: questions do not end the wait, nothing is answered, nothing is reviewed; running
    out of time is a sensor timeout, and ``soft_fail`` turns a failure into a skip."""

    soft_fail = False
    latest_only = False  # log only the latest activity of a poll (reschedule mode's first poke)

    def log_activities(self, activities: Iterable[Json]) -> None:
        super().log_activities(list(activities)[-1:] if self.latest_only else activities)

    def judge(self, context: Context, status: str, result: Json) -> Json:
        if status == EventStatus.TIMEOUT:
            targets = list(self.options.target_states)
            message = f"Jules session {result['session_id']} did not reach {targets} in time."
            if self.soft_fail:
                raise AirflowSkipException(message + " Skipping (soft_fail=True).")
            raise AirflowSensorTimeout(message)
        try:
            return super().judge(context, status, result)
        except AirflowSkipException:
            raise
        except AirflowException as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"{exc} Skipping (soft_fail=True).") from exc
            raise
