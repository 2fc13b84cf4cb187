"""Once per failure: find, cap, create and de-duplicate fix sessions, with the account's session list as the
only record (it holds across retries, runs, workers and Airflow deployments on one Jules account).

A fix session is one whose title starts with ``[jules-fix <signature>]``. The rules:

* a live (not failed, not archived) fix session with the same signature created within ``dedup_window``
  is reused: nothing is created;
* at most ``max_sessions_per_day`` fix sessions were created on the account in the last 24 hours (archived
  ones excluded): past it, nothing is created;
* after a create, the list is read again: when two workers created the same fix at the same moment, the
  older session is kept and the younger one archived (each worker makes the same choice); a create that
  went past the daily cap in a race is archived the same way.

Every step checks the :class:`Budget` first; the list is read at most ``max_pages`` pages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_jules.client.errors import JulesError
from airflow_provider_jules.client.models import default_branch, parse_timestamp_ns, session_id_of
from airflow_provider_jules.fixes.text import signature_of, task_of
from airflow_provider_jules.links.urls import check_session_url

DAY = 24 * 3600.0
PAGE_SIZE = 100
MAX_PAGES = 50  # 5,000 live sessions: more and the notifier opens nothing (it cannot prove no duplicate)


class BudgetExceeded(Exception):
    """The notifier's ``time_budget`` ran out before ``step``."""

    def __init__(self, step: str) -> None:
        super().__init__(f"the time budget ran out before {step}")
        self.step = step


class Budget:
    """A deadline on a monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def check(self, step: str) -> None:
        if self.remaining() <= 0:
            raise BudgetExceeded(step)


@dataclass(frozen=True)
class FixSession:
    """A fix session: what the failed task links to (the ``jules_fix`` XCom)."""

    session_id: str
    url: str | None
    signature: str
    new: bool
    created_ns: int = 0
    failed: bool = False
    task: str = ""  # the <dag>.<task> its title names

    def as_xcom(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "url": self.url, "signature": self.signature, "new": self.new}


@dataclass(frozen=True)
class FixPolicy:
    max_sessions_per_day: int
    dedup_window: float  # seconds


@dataclass(frozen=True)
class FixRequest:
    """One failure's request. ``task`` (``<dag>.<task>``) with ``any_of_task``: a failure without an
    exception (a DAG processor callback) reuses any live fix session of the same task, so a notifier on
    both the task and the DAG opens one session per failure."""

    signature: str
    title: str
    prompt: str
    source: str
    starting_branch: str | None
    auto_create_pr: bool
    require_plan_approval: bool
    task: str = ""
    any_of_task: bool = False


class ListTooLong(Exception):
    """The session list has more than ``MAX_PAGES`` pages."""


class FixRequester:
    """Finds or opens the fix session of one failure. ``hook`` is a :class:`JulesHook` (or a fake)."""

    def __init__(
        self,
        hook: Any,
        policy: FixPolicy,
        budget: Budget,
        log: logging.Logger | Any,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.hook = hook
        self.policy = policy
        self.budget = budget
        self.log = log
        self.now = now

    def request(self, req: FixRequest) -> FixSession | None:
        """The session the failed task points at, or None when the cap holds (logged)."""
        sessions = self.fix_sessions("list the sessions")
        existing = self.live_with(sessions, req.signature)
        if not existing and req.any_of_task and req.task:
            existing = self.live_with(sessions, None, task=req.task)
        if existing:
            return existing[0]
        if self.created_today(sessions) >= self.policy.max_sessions_per_day:
            self.log.warning(
                "Jules fix: not opening a session for failure %s: %d fix session(s) were created on this "
                "account in the last 24 hours, the notifier's max_sessions_per_day is %d.",
                req.signature,
                self.created_today(sessions),
                self.policy.max_sessions_per_day,
            )
            return None
        mine = self.create(req)
        try:
            again = self.fix_sessions("look for a duplicate")
        except (JulesError, BudgetExceeded, ListTooLong) as exc:
            self.log.warning("Jules fix: could not look for a duplicate of the new session: %s", exc)
            return mine
        return self.settle(mine, again)

    def create(self, req: FixRequest) -> FixSession:
        branch = req.starting_branch
        if branch is None:  # the API needs one: the repository's default branch, as the operators do
            self.budget.check("reading the repository's default branch")
            branch = default_branch(self.hook.get_source(req.source))
            if not branch:
                raise JulesError(f"Source {req.source} reports no default branch: set starting_branch.")
        self.budget.check("creating the session")
        session = self.hook.create_session(
            req.prompt,
            source=req.source,
            starting_branch=branch,
            title=req.title,
            require_plan_approval=req.require_plan_approval or None,
            automation_mode="AUTO_CREATE_PR" if req.auto_create_pr else None,
        )
        found = _fix_session(session, new=True, now_ns=self._ns(0), sig=req.signature)
        if found is None:
            raise JulesError("the created session has no usable id")
        return found

    def settle(self, mine: FixSession, sessions: list[FixSession]) -> FixSession | None:
        """Keep the oldest live session of the signature; archive ``mine`` when it is the younger twin or
        when it is past the daily cap."""
        twins = self.live_with([*sessions, mine], mine.signature)
        keep = twins[0]
        if keep.session_id != mine.session_id:
            self.archive(mine, f"a twin ({keep.session_id}) was created at the same moment")
            return keep
        today = sorted(
            {s.session_id: s for s in [*sessions, mine] if s.created_ns >= self._ns(DAY)}.values(),
            key=_age_key,
        )
        rank = [s.session_id for s in today].index(mine.session_id) + 1
        if rank > self.policy.max_sessions_per_day:
            self.archive(mine, f"the daily cap of {self.policy.max_sessions_per_day} was reached in a race")
            return None
        return mine

    def archive(self, session: FixSession, why: str) -> None:
        self.log.warning("Jules fix: archiving session %s: %s.", session.session_id, why)
        try:
            self.budget.check("archiving a duplicate")
            self.hook.archive_session(session.session_id)
        except (JulesError, BudgetExceeded) as exc:
            self.log.warning("Jules fix: could not archive session %s: %s", session.session_id, exc)

    # ------------------------------------------------------------------------------------ the session list
    def fix_sessions(self, step: str) -> list[FixSession]:
        """Every fix session on the account (not archived), whatever its state, oldest first."""
        found: dict[str, FixSession] = {}
        pages = 0
        self.budget.check(step)
        for i, session in enumerate(self.hook.list_sessions(page_size=PAGE_SIZE)):
            if i and i % PAGE_SIZE == 0:
                pages += 1
                if pages >= MAX_PAGES:
                    raise ListTooLong(f"more than {MAX_PAGES * PAGE_SIZE} sessions on the account")
                self.budget.check(step)
            if not isinstance(session, dict):
                continue
            fix = _fix_session(session, new=False, now_ns=self._ns(0))
            if fix is not None:
                found[fix.session_id] = fix
        return sorted(found.values(), key=_age_key)

    def live_with(self, sessions: Iterable[FixSession], sig: str | None, task: str = "") -> list[FixSession]:
        """Sessions of ``sig`` (or, with ``sig`` None, of ``task``) created within the dedup window and
        not failed, oldest first."""
        since = self._ns(self.policy.dedup_window)
        unique = {s.session_id: s for s in sessions}
        return sorted(
            (
                s
                for s in unique.values()
                if (s.signature == sig if sig is not None else s.task == task)
                and s.created_ns >= since
                and not s.failed
            ),
            key=_age_key,
        )

    def created_today(self, sessions: Iterable[FixSession]) -> int:
        since = self._ns(DAY)
        return sum(1 for s in sessions if s.created_ns >= since)

    def _ns(self, seconds_ago: float) -> int:
        return int((self.now() - seconds_ago) * 1e9)


def _age_key(s: FixSession) -> tuple[int, str]:
    return (s.created_ns, s.session_id)


def _fix_session(
    session: dict[str, Any], *, new: bool, now_ns: int, sig: str | None = None
) -> FixSession | None:
    """A session resource as a :class:`FixSession` when its title carries a signature (or ``sig`` is given:
    a create reply may lack the title); None for anything else or anything malformed. A missing or
    unreadable ``createTime`` counts as now (it then stands for its failure and counts toward the cap)."""
    found = signature_of(session.get("title")) or sig
    if found is None:
        return None
    try:
        sid = session_id_of(session)
    except JulesError:
        return None
    created = session.get("createTime")
    try:
        ns = parse_timestamp_ns(created) if isinstance(created, str) else now_ns
    except ValueError:
        ns = now_ns
    url = check_session_url(session.get("url"))[0]
    failed = session.get("state") == "FAILED"
    return FixSession(sid, url, found, new, ns, failed=failed, task=task_of(session.get("title")))
