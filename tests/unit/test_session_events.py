"""JulesSessionEventTrigger: its polls against the simulator, its ledger, its bounds and its arguments.

Most tests drive the trigger one poll at a time (``Watcher``) against the simulator, creating and finishing
sessions outside any DAG as a person or another tool would; the simulator's request log shows what each poll
read. A few go through ``run()`` (the loop, the waits after errors, the order of save and event).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.events import (
    MAX_EVENT_BYTES,
    MAX_REMEMBERED,
    Ledger,
    SessionFeed,
    SessionFilter,
    event_payload,
)
from airflow_provider_jules.hooks.jules import JulesHook
from airflow_provider_jules.simulator import JulesSimulator
from airflow_provider_jules.triggers import events as events_module
from airflow_provider_jules.triggers.events import (
    CLASSPATH,
    AssetStateStore,
    JulesSessionEventTrigger,
    MemoryStore,
    VariableStore,
    store_for,
)

BOBA = "bobalover/boba"
OTHER = "myorg/myrepo"


@pytest.fixture
def sim(jules_simulator: JulesSimulator, monkeypatch: pytest.MonkeyPatch) -> JulesSimulator:
    monkeypatch.setenv("AIRFLOW_CONN_JULES_DEFAULT", jules_simulator.conn_json)
    jules_simulator.set_speed(1.0)  # nothing moves unless a test advances the clock
    return jules_simulator


def create(sim: JulesSimulator, prompt: str = "Tidy up", source: str = BOBA, pr: bool = True) -> str:
    """A session made outside any DAG (as the web app or another tool would), with a PR when it completes."""
    body: dict[str, Any] = {
        "prompt": f"{prompt} sim:steps=1",
        "sourceContext": {
            "source": f"sources/github/{source}",
            "githubRepoContext": {"startingBranch": "main"},
        },
    }
    if pr:
        body["automationMode"] = "AUTO_CREATE_PR"
    return str(sim.state.engine.create_session(body)["id"])


def finish_all(sim: JulesSimulator) -> None:
    """Every session still working completes now (a happy session takes about two simulated minutes)."""
    sim.advance(3600)


def list_requests(sim: JulesSimulator) -> int:
    return len(sim.requests("list_sessions"))


class Watcher:
    """One trigger's polls, one at a time, in one event loop; ``restart()`` is a new triggerer process."""

    def __init__(self, store: MemoryStore | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("poll_interval", 0.01)
        kwargs.setdefault("max_events", 100)  # a whole burst in one poll (the trigger's default is 1)
        self.kwargs = kwargs
        self.store = store or MemoryStore()
        self.trigger = JulesSessionEventTrigger(**kwargs)
        self.hook = JulesHook()
        self.feed: SessionFeed | None = None

    async def poll(self) -> list[dict[str, Any]]:
        if self.feed is None:
            self.feed = await self.trigger.open_feed(self.store)
        return await self.trigger.poll(self.hook, self.store, self.feed)

    async def ids(self) -> list[str]:
        return [str(e["session_id"]) for e in await self.poll()]

    async def restart(self) -> Watcher:
        await self.hook.aclose()
        return Watcher(self.store, **self.kwargs)  # the same kwargs, the same store: nothing else survives


def play(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 60))


# ------------------------------------------------------------------------------------------- one event each
def test_each_session_that_completes_with_a_pr_is_reported_once(sim: JulesSimulator) -> None:
    async def main() -> None:
        w = Watcher(source=BOBA)
        assert await w.poll() == []  # the baseline poll
        sids = [create(sim, f"Task {i}") for i in range(3)]
        assert await w.poll() == []  # still working
        finish_all(sim)
        events = await w.poll()
        assert sorted(e["session_id"] for e in events) == sorted(sids)
        for event in events:
            assert set(event) == {
                "session_id",
                "url",
                "title",
                "source",
                "state",
                "outcome",
                "pull_request_url",
                "update_time",
            }
            assert event["url"] == f"https://jules.google.com/session/{event['session_id']}"
            assert event["source"] == "sources/github/bobalover/boba"
            assert event["state"] == "COMPLETED" and event["outcome"] == "completed"
            assert event["pull_request_url"].startswith("https://github.com/bobalover/boba/pull/")
            assert event["title"].startswith("Task ")
        for _ in range(5):  # seen ones are never reported again
            assert await w.poll() == []
        assert [e["session_id"] for e in events] == sorted(
            sids, key=lambda s: sim.state.engine.sessions[s].update_us
        )  # in the order they changed
        await w.hook.aclose()

    play(main)


def test_sessions_finished_before_the_first_poll_are_the_baseline(sim: JulesSimulator) -> None:
    async def main() -> None:
        create(sim, "Before the watcher existed")
        finish_all(sim)
        w = Watcher()
        assert await w.poll() == []
        assert w.store.value is not None and w.store.value["since"] is not None
        assert w.store.value["emitted"] == {}
        assert await w.poll() == []
        await w.hook.aclose()

    play(main)


def test_only_the_watched_repository_counts(sim: JulesSimulator) -> None:
    async def main() -> None:
        w = Watcher(source=f"sources/github/{BOBA}")
        await w.poll()
        ours, theirs = create(sim, "Ours"), create(sim, "Theirs", source=OTHER)
        finish_all(sim)
        assert await w.ids() == [ours]
        everything = Watcher()  # no source: the whole account
        await everything.poll()
        a, b = create(sim, "A"), create(sim, "B", source=OTHER)
        finish_all(sim)
        assert sorted(await everything.ids()) == sorted([a, b])
        assert theirs not in await w.ids()
        for watcher in (w, everything):
            await watcher.hook.aclose()

    play(main)


def test_a_completed_session_without_a_pull_request_counts_only_when_asked(sim: JulesSimulator) -> None:
    async def main() -> None:
        with_pr = Watcher()
        without = Watcher(require_pull_request=False)
        failed = Watcher(target_states=["FAILED"])
        for w in (with_pr, without, failed):
            await w.poll()
        no_pr = create(sim, "No PR", pr=False)
        broken = create(sim, "Breaks sim:scenario=failure")
        finish_all(sim)
        assert await with_pr.ids() == []
        assert await without.ids() == [no_pr]
        assert await failed.ids() == [broken]
        for w in (with_pr, without, failed):
            await w.hook.aclose()

    play(main)


def test_a_session_that_was_under_way_is_followed_until_it_completes(sim: JulesSimulator) -> None:
    """A session waiting for a person stays below newer sessions in the list: the poll reads down to it
    (and no further), and reports it once it completes, hours later."""

    async def main() -> None:
        w = Watcher(page_size=2)
        await w.poll()
        waiting = create(sim, "Ask first sim:scenario=user_feedback sim:questions=1")
        finish_all(sim)
        assert await w.poll() == []  # it waits for an answer: nothing to report
        assert sim.state.engine.get_session(waiting)["state"] == "AWAITING_USER_FEEDBACK"
        for i in range(5):  # five newer sessions, done: two and a half pages above the waiting one
            sim.advance(120)
            create(sim, f"Newer {i}")
        finish_all(sim)
        assert len(await w.poll()) == 5
        before = list_requests(sim)
        assert await w.poll() == []
        assert list_requests(sim) - before == 3  # down to the waiting session: 3 pages of 2
        sim.state.engine.send_message(waiting, {"prompt": "Yes, go on."})
        finish_all(sim)
        assert await w.ids() == [waiting]
        before = list_requests(sim)
        assert await w.poll() == []
        assert list_requests(sim) - before == 1  # nothing under way any more: the first page only
        await w.hook.aclose()

    play(main)


# ------------------------------------------------------------------------------------------- bounds
def test_a_quiet_poll_reads_one_page_and_a_poll_never_reads_more_than_max_pages(sim: JulesSimulator) -> None:
    async def main() -> None:
        for i in range(30):
            sim.advance(120)
            create(sim, f"History {i}")
        finish_all(sim)
        w = Watcher(page_size=4, max_pages=3)
        before = list_requests(sim)
        await w.poll()  # the first poll reads the lookback window, cut at max_pages
        assert list_requests(sim) - before == 3
        before = list_requests(sim)
        assert await w.poll() == []
        assert list_requests(sim) - before == 1
        sizes = {r["query"].get("pageSize") for r in sim.requests("list_sessions")}
        assert sizes == {"4"}, sizes
        await w.hook.aclose()

    play(main)


def test_max_events_spreads_a_burst_over_polls_without_repeats(sim: JulesSimulator) -> None:
    async def main() -> None:
        w = Watcher(max_events=2)
        await w.poll()
        sids = [create(sim, f"Burst {i}") for i in range(5)]
        finish_all(sim)
        batches = [await w.ids() for _ in range(4)]
        assert [len(b) for b in batches] == [2, 2, 1, 0]
        assert sorted(s for b in batches for s in b) == sorted(sids)
        await w.hook.aclose()

    play(main)


def test_an_event_is_small_whatever_the_session_holds() -> None:
    session = {
        "name": "sessions/14550388554331055113",
        "state": "COMPLETED",
        "title": "A whole prompt as the title " * 2000,  # Q21
        "url": "https://jules.google.com/session/14550388554331055113",
        "updateTime": "2026-01-01T00:00:00.000001Z",
        "sourceContext": {"source": "sources/github/" + "o" * 100 + "/" + "r" * 100},
        "outputs": [
            {"pullRequest": {"url": "https://github.com/o/r/pull/1", "description": "x" * 100_000}},
            {"changeSet": {"gitPatch": {"unidiffPatch": "+" * 1_000_000}}},
        ],
    }
    payload = event_payload(session)
    assert len(json.dumps(payload).encode()) <= MAX_EVENT_BYTES
    assert payload["title"].endswith("…") and len(payload["title"]) == 300
    assert payload["pull_request_url"] == "https://github.com/o/r/pull/1"
    evil = dict(
        session, url="javascript:alert(1)", outputs=[{"pullRequest": {"url": "https://evil.example/x"}}]
    )
    assert event_payload(evil)["url"] is None and event_payload(evil)["pull_request_url"] is None


def test_a_list_not_ordered_newest_first_is_read_to_max_pages() -> None:
    feed = SessionFeed(SessionFilter(), Ledger(since=0), lookback=3600, max_events=10)
    feed.newest = 10**18  # a previous poll saw sessions up to here
    scan = feed.begin()

    def at(i: int, second: int) -> dict[str, Any]:
        stamp = f"2026-01-01T00:00:{second:02d}Z"
        return {"name": f"sessions/{i}", "state": "IN_PROGRESS", "createTime": stamp, "updateTime": stamp}

    assert feed.read(scan, [at(1, 50), at(2, 10), at(3, 40)]) is True  # out of order: keep reading
    assert not scan.ordered


# ------------------------------------------------------------------------------------------- restarts
def test_a_restart_reports_what_finished_meanwhile_and_nothing_twice(sim: JulesSimulator) -> None:
    """A new triggerer process knows only the kwargs and the ledger: its first poll reads the whole lookback
    window and reports the sessions that completed while no triggerer ran, including one that was under way
    (in the old process's memory only) when the old one died."""

    async def main() -> None:
        w = Watcher(source=BOBA)
        await w.poll()
        first = create(sim, "Before the restart")
        under_way = create(sim, "Under way at the restart sim:scenario=user_feedback sim:questions=1")
        create(sim, "Another repository", source=OTHER)
        finish_all(sim)
        assert await w.ids() == [first]
        assert sim.state.engine.get_session(under_way)["state"] == "AWAITING_USER_FEEDBACK"
        w = await w.restart()  # the triggerer is gone; meanwhile two sessions complete
        later = create(sim, "While no triggerer ran")
        sim.state.engine.send_message(under_way, {"prompt": "Go on."})
        finish_all(sim)
        assert sorted(await w.ids()) == sorted([later, under_way])
        assert sorted(w.store.value["emitted"]) == sorted([first, later, under_way])
        w = await w.restart()
        assert await w.ids() == []  # nothing twice after another restart
        assert await w.ids() == []
        await w.hook.aclose()

    play(main)


def test_an_unreadable_ledger_starts_a_new_baseline_and_repeats_nothing(sim: JulesSimulator) -> None:
    async def main() -> None:
        create(sim, "Old")
        finish_all(sim)
        w = Watcher(MemoryStore({"version": 99}))
        assert await w.poll() == []  # a new baseline: the old session is not reported again
        assert w.store.value["version"] == 1
        await w.hook.aclose()

    play(main)


def test_the_ledger_is_bounded_and_forgets_the_oldest_behind_its_baseline() -> None:
    ledger = Ledger(since=0).recorded((str(i), 1_000 + i) for i in range(MAX_REMEMBERED + 50))
    assert len(ledger.emitted) == MAX_REMEMBERED
    assert ledger.since == 1_000 + 49  # the newest of the forgotten ones
    assert not ledger.counts("0", 1_000)  # forgotten, yet not reported again
    assert ledger.counts("new", 2_000_000)
    again = Ledger.from_json(json.dumps(ledger.to_json()))
    assert again == ledger
    with pytest.raises(ValueError):
        Ledger.from_json({"version": 1, "since": "yesterday", "emitted": {}})


def test_the_ledger_is_saved_before_the_events_and_a_failed_save_holds_them_back(sim: JulesSimulator) -> None:
    class FailingOnce(MemoryStore):
        fail = False

        async def save(self, value: dict[str, Any]) -> None:
            if self.fail:
                self.fail = False
                raise RuntimeError("the metadata DB is away")
            await super().save(value)

    async def main() -> None:
        store = FailingOnce()
        w = Watcher(store)
        await w.poll()
        sid = create(sim, "Saved first")
        finish_all(sim)
        store.fail = True
        with pytest.raises(RuntimeError):
            await w.poll()
        assert sid not in store.value["emitted"]
        assert await w.ids() == [sid]  # found again by the next poll, saved, then reported
        assert sid in store.value["emitted"]
        assert await w.ids() == []
        await w.hook.aclose()

    play(main)


# ------------------------------------------------------------------------------------------- run()
def test_run_yields_events_as_sessions_complete_and_waits_out_errors(sim: JulesSimulator) -> None:
    async def main() -> None:
        saved = asyncio.Event()

        class Store(MemoryStore):
            async def save(self, value: dict[str, Any]) -> None:
                await super().save(value)
                saved.set()

        trigger = JulesSessionEventTrigger(poll_interval=0.01)
        trigger.store = store = Store()
        events = trigger.run()
        nxt = asyncio.ensure_future(events.__anext__())
        await asyncio.wait_for(saved.wait(), 30)  # the baseline is saved
        sim.inject(route="list_sessions", status=400, count=2)  # two failed polls (a 400 is not retried)
        sid = create(sim, "Through run()")
        finish_all(sim)
        event = await asyncio.wait_for(nxt, 30)
        assert event.payload["session_id"] == sid
        assert sid in store.value["emitted"]  # saved before the event was yielded
        nxt = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.5)  # many more polls: nothing new
        assert not nxt.done()
        nxt.cancel()
        await asyncio.gather(nxt, return_exceptions=True)
        await events.aclose()
        statuses = [r["status"] for r in sim.requests("list_sessions")]
        assert statuses.count(400) == 2 and len(statuses) > 10  # waited out, then polled on

    play(main)


# ------------------------------------------------------------------------------------------- arguments
def test_every_argument_is_optional_and_serializes_to_stable_plain_json() -> None:
    trigger = JulesSessionEventTrigger()
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "jules_conn_id": "jules_default",
        "source": None,
        "target_states": ["COMPLETED"],
        "require_pull_request": True,
        "poll_interval": 60.0,
        "page_size": 50,
        "max_pages": 10,
        "max_events": 1,
        "lookback": 604800.0,
    }
    custom = JulesSessionEventTrigger(
        source="acme/web", target_states=("completed", "FAILED"), poll_interval=5
    )
    _, custom_kwargs = custom.serialize()
    assert custom_kwargs["source"] == "sources/github/acme/web"
    assert custom_kwargs["target_states"] == ["COMPLETED", "FAILED"]
    again = JulesSessionEventTrigger(**json.loads(json.dumps(custom_kwargs)))
    assert again.serialize() == custom.serialize()  # as the triggerer re-creates it: the same hash
    assert JulesSessionEventTrigger.hash(*again.serialize()) == JulesSessionEventTrigger.hash(
        *custom.serialize()
    )
    assert JulesSessionEventTrigger(poll_interval=1).ledger_key == trigger.ledger_key
    assert JulesSessionEventTrigger(source="acme/web").ledger_key != trigger.ledger_key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_states": []},
        {"target_states": "COMPLETED"},
        {"source": "not a repo!"},
        {"page_size": 101},
        {"max_pages": 0},
        {"poll_interval": -1},
        {"require_pull_request": "yes"},
        {"jules_conn_id": ""},
    ],
)
def test_wrong_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any]) -> None:
    with pytest.raises(JulesConfigError):
        JulesSessionEventTrigger(**kwargs)


def test_the_ledger_goes_to_the_asset_state_store_when_airflow_offers_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Accessors:
        def __init__(self, assets: int) -> None:
            self.assets, self.values = assets, {}

        async def aget(self, key: str, default: Any = None) -> Any:
            if self.assets != 1:
                raise ValueError("Task has 2 concrete inlets and outlets")
            return self.values.get(key, default)

        async def aset(self, key: str, value: Any) -> None:
            self.values[key] = value

    variables: dict[str, str] = {}

    class FakeVariable:
        @staticmethod
        def get(key: str, default: Any = None) -> Any:
            return variables.get(key, default)

        @staticmethod
        def set(key: str, value: str, description: str | None = None) -> None:
            variables[key] = value

    import airflow.sdk

    monkeypatch.setattr(airflow.sdk, "Variable", FakeVariable)
    trigger = JulesSessionEventTrigger()
    key = trigger.ledger_key

    async def main() -> None:
        trigger.asset_state_store = one = Accessors(1)  # type: ignore[attr-defined]
        store = store_for(trigger, key)
        assert isinstance(store, AssetStateStore)
        await store.save({"version": 1})
        assert one.values == {key: {"version": 1}} and await store.load() == {"version": 1}
        trigger.asset_state_store = Accessors(2)  # type: ignore[attr-defined]
        shared = store_for(trigger, key)
        assert await shared.load() is None
        await shared.save({"version": 1})
        assert json.loads(variables[key]) == {"version": 1} and "Variable" in shared.where
        trigger.asset_state_store = None  # type: ignore[attr-defined]
        assert isinstance(store_for(trigger, key), VariableStore)

    play(main)


def test_the_trigger_is_registered_in_the_provider_info() -> None:
    from airflow_provider_jules.get_provider_info import get_provider_info

    modules = [m for t in get_provider_info()["triggers"] for m in t["python-modules"]]
    assert events_module.__name__ in modules


def test_the_example_dag_watches_one_repository_with_the_trigger() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "example_dags" / "jules_session_events.py"
    spec = importlib.util.spec_from_file_location("jules_session_events_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [watcher] = module.JULES_PULL_REQUESTS.watchers
    assert isinstance(watcher.trigger, JulesSessionEventTrigger)
    assert watcher.trigger.serialize()[1]["source"] == "sources/github/bobalover/boba"
