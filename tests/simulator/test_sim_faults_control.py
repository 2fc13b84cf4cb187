"""Fault injection (Python API and HTTP) and the /_simulator control endpoints."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from sim_helpers import Api

from airflow_provider_jules.simulator import ROUTES, FaultConfig, FaultRule, JulesSimulator


def test_inject_429_with_retry_after_seconds(api: Api, sim: JulesSimulator) -> None:
    sim.inject(route="list_sources", status=429, count=2, retry_after=7)
    for _ in range(2):
        r = api.get("/sources")
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.json() == {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
            }
        }
    assert api.get("/sources").status_code == 200


def test_inject_429_with_retry_after_http_date(api: Api, sim: JulesSimulator) -> None:
    sim.inject(route="get_source", status=429, retry_after=30, retry_after_http_date=True)
    r = api.get("/sources/github/myorg/myrepo")
    assert r.status_code == 429
    when = email.utils.parsedate_to_datetime(r.headers["Retry-After"]).timestamp()
    assert 20 < when - time.time() <= 31


@pytest.mark.parametrize(("status", "name"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (502, "UNAVAILABLE")])
def test_inject_5xx(api: Api, sim: JulesSimulator, status: int, name: str) -> None:
    sid = api.create()["id"]
    sim.inject(route="get_session", status=status)
    r = api.get(f"/sessions/{sid}")
    assert r.status_code == status and r.json()["error"]["status"] == name
    assert api.get(f"/sessions/{sid}").status_code == 200


def test_inject_skip_then_fail_and_other_routes_untouched(api: Api, sim: JulesSimulator) -> None:
    sim.inject(route="list_sessions", status=503, count=1, skip=2)
    assert [api.get("/sessions").status_code for _ in range(4)] == [200, 200, 503, 200]
    sim.inject(route="*", status=503, count=1)
    assert api.get("/sources").status_code == 503
    assert api.get("/sources").status_code == 200


def test_create_failure_without_store_does_not_create(api: Api, sim: JulesSimulator) -> None:
    sim.inject(route="create_session", status=500)
    assert api.post("/sessions", json={"prompt": "x"}).status_code == 500
    assert sim.sessions_created == 0 and api.get("/sessions").json() == {}


def test_probabilistic_faults_are_seeded(api: Api, sim: JulesSimulator) -> None:
    def run() -> list[int]:
        sim.set_faults(
            FaultConfig(
                rules=[FaultRule(route="list_sources", status=503, count=None, probability=0.3)], seed=7
            )
        )
        return [api.get("/sources", params={"pageSize": 1}).status_code for _ in range(40)]

    a, b = run(), run()
    assert a == b and 3 <= a.count(503) <= 25 and a.count(200) >= 15


def test_latency_fault(api: Api, sim: JulesSimulator) -> None:
    sim.set_faults(latency_ms=150)
    t0 = time.perf_counter()
    assert api.get("/sources").status_code == 200
    assert time.perf_counter() - t0 >= 0.15
    sim.clear_faults()
    sim.inject(route="get_source", status=None, latency_ms=120)
    t0 = time.perf_counter()
    assert api.get("/sources/github/myorg/myrepo").status_code == 200
    assert time.perf_counter() - t0 >= 0.12


def test_a_request_held_across_a_reset_stays_out_of_the_new_log(api: Api, sim: JulesSimulator) -> None:
    """A reset is a clean slate: a request that arrived before it (held here by a latency fault) and is
    answered after it is not logged in the new log (a later test would see a request it never made)."""
    import threading

    sim.inject(route="list_sources", status=None, latency_ms=600)
    answered = []
    slow = threading.Thread(target=lambda: answered.append(api.get("/sources").status_code))
    slow.start()
    deadline = time.monotonic() + 10
    while sim.state.fault_firings() != [1] and time.monotonic() < deadline:  # until the request is held
        time.sleep(0.01)
    assert sim.state.fault_firings() == [1]
    sim.reset()
    slow.join(10)
    assert answered == [200]
    assert api.get("/sources/github/myorg/myrepo").status_code == 200
    assert [r["route"] for r in sim.requests()] == ["get_source"]


def test_faults_over_http(api: Api, sim: JulesSimulator) -> None:
    body = {
        "rules": [{"route": "list_sources", "status": 429, "count": 1, "retry_after": 3}],
        "latency_ms": 0,
    }
    r = api.control("POST", "/faults", json=body)
    assert r.status_code == 200 and r.json()["rules"][0]["status"] == 429
    r = api.get("/sources")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    api.control("POST", "/faults", json={"mode": "append", "rules": [{"route": "get_source", "status": 503}]})
    assert len(api.control("GET", "/faults").json()["rules"]) == 2
    assert api.get("/sources/github/myorg/myrepo").status_code == 503
    assert (
        api.control("POST", "/faults", json={"rules": [{"route": "nope", "status": 500}]}).status_code == 400
    )
    assert api.control("POST", "/faults", json={}).json()["rules"] == []
    assert api.get("/sources").status_code == 200


def test_stats_and_requests_endpoints(api: Api, sim: JulesSimulator) -> None:
    sid = api.create()["id"]
    api.get(f"/sessions/{sid}")
    api.get("/sessions/00000000000000000000")
    api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "hi"})
    stats = api.control("GET", "/stats").json()
    assert stats["requests_per_route"] == {"create_session": 1, "get_session": 2, "send_message": 1}
    assert stats["requests_per_status"] == {"200": 3, "404": 1}
    assert stats["sessions_created"] == 1 and stats["sessions_live"] == 1
    assert sim.stats()["requests_per_route"] == stats["requests_per_route"]
    reqs = api.control("GET", "/requests").json()["requests"]
    assert [r["route"] for r in reqs] == ["create_session", "get_session", "get_session", "send_message"]
    assert reqs[3]["json"] == {"prompt": "hi"} and reqs[3]["method"] == "POST"
    assert reqs[3]["path"] == f"/v1alpha/sessions/{sid}:sendMessage"
    assert all("x-goog-api-key" not in r["headers"] for r in reqs)
    assert "sim-key" not in str(reqs)
    assert [r["status"] for r in sim.requests("get_session")] == [200, 404]
    assert api.control("GET", "/requests", params={"route": "send_message"}).json()["requests"][0][
        "json"
    ] == {"prompt": "hi"}
    api.get("/sessions", params={"pageSize": 3})
    assert sim.requests("list_sessions")[0]["query"] == {"pageSize": "3"}


def test_request_log_is_bounded(sim: JulesSimulator) -> None:
    assert sim.state.log.maxlen == 10_000


def test_reset_endpoint(api: Api, sim: JulesSimulator) -> None:
    api.create()
    sim.inject(route="list_sources", status=503, count=None)
    assert api.control("POST", "/reset").status_code == 200
    assert api.get("/sessions").json() == {} and api.get("/sources").status_code == 200
    assert sim.stats()["requests_total"] == 2 and sim.sessions_created == 0


def test_clock_endpoint_advance_and_speed(api: Api, sim: JulesSimulator) -> None:
    sid = api.create(requirePlanApproval=True)["id"]
    r = api.control("POST", "/clock", json={"advance": 60})
    assert r.status_code == 200 and r.json()["speed"] == 100
    assert api.session(sid)["state"] == "AWAITING_PLAN_APPROVAL"
    api.control("POST", "/clock", json={"advance": 700})
    assert api.session(sid)["state"] == "COMPLETED"
    assert api.control("POST", "/clock", json={"speed": 1.0}).json()["speed"] == 1.0
    assert api.control("POST", "/clock", json={"speed": 0}).status_code == 400


def test_internal_session_view_and_forced_state(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("sim:scenario=user_feedback sim:steps=3")["id"]
    view = api.control("GET", f"/sessions/{sid}").json()
    assert view["scenario"] == "user_feedback" and view["steps"] == 3 and view["session"]["id"] == sid
    r = api.control("POST", f"/sessions/{sid}/state", json={"state": "COMPLETED_UNKNOWN"})
    assert r.status_code == 200 and r.json()["state"] == "COMPLETED_UNKNOWN"
    sim.advance(10_000)
    assert api.session(sid)["state"] == "COMPLETED_UNKNOWN"
    assert api.control("GET", "/sessions/123").status_code == 404
    assert api.control("POST", f"/sessions/{sid}/state", json={}).status_code == 400


def test_control_endpoints_need_no_api_key(sim: JulesSimulator) -> None:
    assert httpx.get(f"{sim.url}/_simulator/stats").status_code == 200


def test_routes_have_stable_names(api: Api, sim: JulesSimulator) -> None:
    sid = api.create(requirePlanApproval=True)["id"]
    api.wait_state(sid, "AWAITING_PLAN_APPROVAL")
    api.get(f"/sessions/{sid}")
    api.get("/sessions")
    api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "x"})
    api.post(f"/sessions/{sid}:approvePlan")
    api.post(f"/sessions/{sid}:archive")
    api.post(f"/sessions/{sid}:unarchive")
    acts = api.activities(sid)
    api.get(f"/sessions/{sid}/activities/{acts[0]['id']}")
    api.get("/sources")
    api.get("/sources/github/myorg/myrepo")
    api.delete(f"/sessions/{sid}")
    assert set(sim.stats()["requests_per_route"]) == set(ROUTES)
