"""The one retry policy of both clients (tenacity policy objects, no hand-written loops).

What is retried:

* connection errors and timeouts: for idempotent calls always; for ``POST /sessions`` and ``:sendMessage``
  only when the request provably never reached the server (the connection could not be opened), because a
  second create would be a second session (quirk Q22: the API has no idempotency key);
* 429 RESOURCE_EXHAUSTED: always, create included (the server refused the call, nothing was created);
  the wait honours ``Retry-After`` (seconds or HTTP date); a ``Retry-After`` above ``max_retry_after`` is
  not waited for: the error is raised at once;
* 5xx: idempotent calls only, with the same ``Retry-After`` rule as 429; a 5xx on create is ambiguous (the
  session may exist) and is left to the caller (the operator reconciles by listing, see docs "Retries,
  restarts and idempotency");
* 404 on the activities of a session created moments ago (Q18): only when the caller says the session is new.

Waits grow exponentially with jitter and a cap; the whole retry is bounded in attempts and time. The time
budget is honest: before each sleep the policy checks that the time already spent (or, with a virtual
``sleep=``, the sleeps already taken, whichever is larger) plus the next sleep stays within ``max_elapsed``;
otherwise it stops and raises the last error without sleeping. So the sleeps of one call never add up to
more than ``max_elapsed``.
"""

from __future__ import annotations

import logging
import random
import time
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
    if isinstance(exc, (JulesRateLimitError, JulesServerError)):
        retry_after = exc.retry_after
        if retry_after is not None and retry_after > policy.max_retry_after:
            return False  # the server asks for a longer wait than the policy allows: give up at once
        return True if isinstance(exc, JulesRateLimitError) else request.idempotent
    if isinstance(exc, JulesTransportError):
        return request.idempotent or not exc.reached_server
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


def retry_kwargs(
    request: Request, policy: RetryPolicy, *, tolerate_404: bool = False, started: float | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``tenacity.AsyncRetrying``.

    ``started``: the ``time.monotonic()`` of the first attempt, when it was sent before the retry loop
    began (the async client's fast path): its time counts against ``max_elapsed`` too.
    """

    def _retry(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return exc is not None and should_retry(exc, request, policy, tolerate_404=tolerate_404)

    # tenacity asks for the wait and for the stop decision of an attempt in an order that changed between
    # versions: whichever comes first computes the (random) sleep once, the other reuses it.
    planned: dict[int, float] = {}

    def _next_sleep(state: tenacity.RetryCallState) -> float:
        if state.attempt_number not in planned:
            planned.clear()
            exc = state.outcome.exception() if state.outcome is not None else None
            planned[state.attempt_number] = wait_seconds(exc, state.attempt_number, policy)
        return planned[state.attempt_number]

    def _wait(state: tenacity.RetryCallState) -> float:
        return _next_sleep(state)

    def _stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        elapsed = state.seconds_since_start or 0.0
        if started is not None:
            elapsed = max(elapsed, time.monotonic() - started)
        spent = max(elapsed, state.idle_for)
        return spent + _next_sleep(state) > policy.max_elapsed

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
        "stop": _stop,
        "before_sleep": _before_sleep,
        "reraise": True,
    }
