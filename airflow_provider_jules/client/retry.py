"""The one retry policy of both clients (tenacity policy objects, no hand-written loops).

What is retried:

* connection errors and timeouts: for idempotent calls always; for ``POST /sessions`` and ``:sendMessage``
  only when the request provably never reached the server (the connection could not be opened), because a
  second create would be a second session (quirk Q22: the API has no idempotency key);
* 429 RESOURCE_EXHAUSTED: always, create included (the server refused the call, nothing was created);
  the wait honours ``Retry-After`` (seconds or HTTP date) up to ``max_retry_after``;
* 5xx: idempotent calls only; a 5xx on create is ambiguous (the session may exist) and is left to the caller
  (the operator reconciles by listing, see docs "Retries, restarts and idempotency");
* 404 on the activities of a session created moments ago (Q18): only when the caller says the session is new.

Waits grow exponentially with jitter and a cap; the whole retry is bounded in attempts and elapsed time.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import tenacity

from airflow_provider_jules.client._core import Request, describe
from airflow_provider_jules.client.errors import (
    JulesNotFoundError,
    JulesRateLimitError,
    JulesServerError,
    JulesTransportError,
)

log = logging.getLogger("airflow_provider_jules.client")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a client tries. All durations in seconds."""

    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 30.0
    max_retry_after: float = 300.0
    max_elapsed: float = 600.0
    jitter: float = 0.5  # fraction of each backoff wait that is random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if min(self.initial_wait, self.max_wait, self.max_retry_after, self.max_elapsed) < 0:
            raise ValueError("RetryPolicy durations must be >= 0")


NO_RETRY = RetryPolicy(max_attempts=1)


def should_retry(
    exc: BaseException, request: Request, policy: RetryPolicy, *, tolerate_404: bool = False
) -> bool:
    """The retry decision for one failed attempt of ``request``."""
    if isinstance(exc, JulesRateLimitError):
        return exc.retry_after is None or exc.retry_after <= policy.max_retry_after
    if isinstance(exc, JulesTransportError):
        return request.idempotent or not exc.reached_server
    if isinstance(exc, JulesServerError):
        return request.idempotent
    if isinstance(exc, JulesNotFoundError):
        return tolerate_404 and request.route in ("list_activities", "get_activity")
    return False


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Exponential wait for the given 1-based attempt, capped, with part of it random."""
    base = min(policy.max_wait, policy.initial_wait * (2 ** max(0, attempt - 1)))
    r: float = (rng or random).random()
    return float(base * (1 - policy.jitter) + base * policy.jitter * r)


def wait_seconds(exc: BaseException | None, attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait after a failed attempt: the backoff, or the server's Retry-After if longer."""
    wait = backoff(attempt, policy)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, (int, float)):
        wait = max(wait, min(float(retry_after), policy.max_retry_after))
    return wait


def retry_kwargs(request: Request, policy: RetryPolicy, *, tolerate_404: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``tenacity.AsyncRetrying``."""

    def _retry(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return exc is not None and should_retry(exc, request, policy, tolerate_404=tolerate_404)

    def _wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return wait_seconds(exc, state.attempt_number, policy)

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "Jules API %s failed (%s); retry %d of %d in %.1f s",
            describe(request),
            exc,
            state.attempt_number,
            policy.max_attempts - 1,
            sleep,
        )

    return {
        "retry": _retry,
        "wait": _wait,
        "stop": tenacity.stop_after_attempt(policy.max_attempts)
        | tenacity.stop_after_delay(policy.max_elapsed),
        "before_sleep": _before_sleep,
        "reraise": True,
    }
