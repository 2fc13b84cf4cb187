"""FixRequester (issue #20): once per failure signature, the daily cap, the race of two workers, the time
budget and a bounded session list, over a fake account."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_jules.client.errors import JulesServerError
from airflow_provider_jules.fixes.requester import (
    MAX_PAGES,
    PAGE_SIZE,
    Budget,
    BudgetExceeded,
    FixPolicy,
    FixRequest,
    FixRequester,
    ListTooLong,
)
from tests.fakes import FakeAccount

NOW = 1_800_000_000.0
SIG = "0123456789abcdef"
OTHER = "fedcba9876543210"
DAY = 86400.0


def title(sig: str = SIG) -> str:
    return f"[jules-fix {sig}] Fix etl.load: ValueError"


def request(sig: str = SIG, branch: str | None = None) -> FixRequest:
    return FixRequest(
        signature=sig,
        title=title(sig),
        prompt="fix it",
        source="sources/github/myorg/myrepo",
        starting_branch=branch,
        auto_create_pr=True,
        require_plan_approval=False,
    )


def requester(
    account: FakeAccount, *, cap: int = 10, window: float = 7 * DAY, budget: float = 15.0, clock: Any = None
) -> FixRequester:
    return FixRequester(
        account,
        FixPolicy(max_sessions_per_day=cap, dedup_window=window),
        Budget(budget, clock=clock or (lambda: 0.0)),
        logging.getLogger("test.fix"),
        now=lambda: NOW,
    )


@pytest.fixture
def account() -> FakeAccount:
    return FakeAccount(clock=lambda: NOW)


def test_a_new_failure_opens_one_session_and_looks_again(account: FakeAccount) -> None:
    found = requester(account).request(request())

    assert account.names() == ["list_sessions", "get_source", "create_session", "list_sessions"]
    created = account.calls[2][1]
    assert created == {
        "source": "sources/github/myorg/myrepo",
        "starting_branch": "main",  # the repository's default branch: the API needs one
        "title": title(),
        "require_plan_approval": None,
        "automation_mode": "AUTO_CREATE_PR",
    }
    assert found is not None and found.new is True and found.signature == SIG
    assert found.as_xcom() == {
        "session_id": found.session_id,
        "url": f"https://jules.google.com/session/{found.session_id}",
        "signature": SIG,
        "new": True,
    }


def test_a_given_starting_branch_skips_the_source_lookup(account: FakeAccount) -> None:
    requester(account).request(request(branch="develop"))

    assert "get_source" not in account.names()
    assert account.calls[1][1]["starting_branch"] == "develop"


def test_a_live_session_of_the_same_failure_is_reused(account: FakeAccount) -> None:
    first = account.add(title(), age=3 * DAY, state="COMPLETED")  # completed: its PR awaits review
    account.add(title(OTHER), age=60)

    found = requester(account).request(request())

    assert account.names() == ["list_sessions"]
    assert found is not None and found.new is False and found.session_id == first["id"]


def test_the_oldest_of_several_live_sessions_is_the_one_pointed_at(account: FakeAccount) -> None:
    account.add(title(), age=60)
    oldest = account.add(title(), age=600)

    found = requester(account).request(request())

    assert found is not None and found.session_id == oldest["id"]


@pytest.mark.parametrize(
    "existing",
    [
        {"state": "FAILED", "age": 60},  # Jules failed on it: try again
        {"state": "COMPLETED", "age": 8 * DAY},  # older than the dedup window
        {"state": "IN_PROGRESS", "age": 60, "archived": True},  # a person archived it
    ],
)
def test_a_failed_old_or_archived_session_does_not_stop_a_new_one(
    account: FakeAccount, existing: dict[str, Any]
) -> None:
    account.add(title(), **existing)

    found = requester(account).request(request())

    assert "create_session" in account.names()
    assert found is not None and found.new is True


def test_sessions_that_are_not_fix_sessions_or_are_malformed_are_ignored(account: FakeAccount) -> None:
    account.add("Fix the flaky tests", age=60)  # an ordinary session: no marker
    account.add(f"Fix etl.load [jules-fix {SIG}]", age=60)  # the marker must start the title
    account.sessions += ["not a dict", {"title": title(), "name": "sessions/a b"}, {"title": title()}]
    account.add(title(), age=60, createTime="yesterday")  # unreadable time: counted as new (conservative)

    found = requester(account).request(request())

    assert found is not None and found.new is False  # only the last one stands for the failure
    assert account.names() == ["list_sessions"]


def test_the_daily_cap_counts_every_fix_session_of_the_last_24_hours(
    account: FakeAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account.add(title(OTHER), age=3600)
    account.add(title("1111111111111111"), age=DAY - 60)
    account.add(title("2222222222222222"), age=DAY + 60)  # older than a day: not counted
    account.add("an ordinary session", age=60)  # not the notifier's: not counted

    assert requester(account, cap=2).request(request()) is None
    assert account.names() == ["list_sessions"]
    assert "max_sessions_per_day is 2" in caplog.text

    assert requester(account, cap=3).request(request()) is not None


def test_a_cap_of_zero_opens_nothing(account: FakeAccount) -> None:
    assert requester(account, cap=0).request(request()) is None
    assert "create_session" not in account.names()


def test_a_twin_created_at_the_same_moment_wins_when_older(account: FakeAccount) -> None:
    twin: dict[str, Any] = {}
    account.on_create = lambda acc: twin.update(acc.add(title(), age=0.5))

    found = requester(account).request(request())

    mine = account.sessions[-1]
    assert account.names()[-1] == "archive_session" and account.calls[-1][1] == mine["id"]
    assert mine.get("archived") is True and not twin.get("archived")
    assert found is not None and found.session_id == twin["id"] and found.new is False


def test_a_younger_twin_is_left_to_its_own_worker(account: FakeAccount) -> None:
    clock = [NOW]
    account.clock = lambda: clock[0]

    def twin_after(acc: FakeAccount) -> None:
        clock[0] = NOW + 1
        acc.add(title())  # the other worker's, one second younger than ours
        clock[0] = NOW

    account.on_create = twin_after

    found = requester(account).request(request())

    assert "archive_session" not in account.names()
    assert found is not None and found.new is True and found.session_id == account.sessions[-1]["id"]


def test_a_create_past_the_cap_in_a_race_is_archived(account: FakeAccount) -> None:
    account.add(title(OTHER), age=60)
    account.on_create = lambda acc: acc.add(
        title("3333333333333333"), age=1
    )  # another failure's, just before

    assert requester(account, cap=2).request(request()) is None
    assert account.names()[-1] == "archive_session"
    assert account.sessions[-1].get("archived") is True


def test_no_create_once_the_budget_is_spent(account: FakeAccount) -> None:
    ticks = iter([0.0, 1.0, 20.0, 20.0, 20.0])  # the list read takes the budget

    with pytest.raises(BudgetExceeded, match="reading the repository's default branch"):
        requester(account, clock=lambda: next(ticks)).request(request())
    assert "create_session" not in account.names()


def test_an_unreadable_second_look_keeps_the_new_session(
    account: FakeAccount, caplog: pytest.LogCaptureFixture
) -> None:
    real = account.list_sessions
    looks = []

    def list_sessions(**kwargs: Any) -> Any:
        looks.append(1)
        if len(looks) == 2:
            raise JulesServerError("boom", http_status=503)
        return real(**kwargs)

    account.list_sessions = list_sessions  # type: ignore[method-assign]

    found = requester(account).request(request())

    assert found is not None and found.new is True
    assert "could not look for a duplicate" in caplog.text


def test_a_session_list_longer_than_the_bound_opens_nothing(account: FakeAccount) -> None:
    for _ in range(MAX_PAGES * PAGE_SIZE + 1):
        account.sessions.append({"name": "sessions/1", "title": "ordinary"})

    with pytest.raises(ListTooLong):
        requester(account).request(request())
    assert "create_session" not in account.names()


def test_a_failure_without_an_exception_reuses_any_live_session_of_its_task(account: FakeAccount) -> None:
    task_level = account.add(title(OTHER), age=30)  # the task's own callback, with the exception
    account.add("[jules-fix 1111111111111111] Fix etl.other: KeyError", age=10)  # another task's
    no_exception = FixRequest(**{**request().__dict__, "task": "etl.load", "any_of_task": True})

    found = requester(account).request(no_exception)

    assert account.names() == ["list_sessions"]
    assert found is not None and found.session_id == task_level["id"] and found.new is False


def test_with_an_exception_another_signature_of_the_task_is_another_failure(account: FakeAccount) -> None:
    account.add(title(OTHER), age=30)
    with_exception = FixRequest(**{**request().__dict__, "task": "etl.load", "any_of_task": False})

    found = requester(account).request(with_exception)

    assert "create_session" in account.names() and found is not None and found.new is True
