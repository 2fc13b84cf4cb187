"""Compare response key sets with the official examples (jules-api-doc-examples.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import Api, union_key

# A verbatim copy of the shared reference file /work/shared/reference/jules-api-doc-examples.json.
EXAMPLES = Path(__file__).with_name("jules-api-doc-examples.json")


def _examples() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(EXAMPLES.read_text())["doc_examples"]
    return data


def _example(description_start: str) -> Any:
    for ex in _examples():
        if ex["description"].startswith(description_start):
            return ex["payload"]
    raise KeyError(description_start)


def _types(obj: Any) -> Any:
    """Structure of a JSON value: dict -> {key: structure}, list -> structure of the first item."""
    if isinstance(obj, dict):
        return {k: _types(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_types(obj[0])] if obj else []
    return type(obj).__name__


def test_create_request_example_accepted_and_response_keys(api: Api) -> None:
    body = _example("Quickstart step 2: CreateSession request body (corrected form)")
    body = {**body, "sourceContext": {**body["sourceContext"]}}
    r = api.post("/sessions", json=body)
    assert r.status_code == 200, r.text
    expected = _example("Quickstart step 2: immediate CreateSession response")
    got = r.json()
    assert set(expected) <= set(got)
    assert set(got) - set(expected) == {"state", "url", "createTime", "updateTime"}
    assert got["sourceContext"] == expected["sourceContext"] and got["title"] == expected["title"]


def test_invalid_json_doc_example_rejected(api: Api) -> None:
    raw = _example("Quickstart step 2: CreateSession request body (later doc version")
    r = api.post("/sessions", content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_completed_session_with_pr_matches_example(api: Api) -> None:
    body = _example("Quickstart step 2: CreateSession request body (corrected form)")
    sid = api.post("/sessions", json=body).json()["id"]
    done = api.wait_state(sid, "COMPLETED")
    expected = _example("Quickstart: GetSession/ListSessions entry after AUTO_CREATE_PR")
    assert set(expected) <= set(done)
    pr = done["outputs"][0]["pullRequest"]
    assert set(expected["outputs"][0]["pullRequest"]) <= set(pr)
    assert set(pr) == {"url", "title", "description", "baseRef", "headRef"}
    assert pr["url"].startswith("https://github.com/bobalover/boba/pull/")
    get_example = _example("Get Session example response")
    assert set(get_example) <= set(done) and set(done) - set(get_example) == {"sourceContext"}


def test_list_sources_matches_quickstart_example(api: Api) -> None:
    expected = _example("Quickstart step 1: ListSources response")
    got = api.get("/sources", params={"pageSize": 1}).json()
    assert set(got) == set(expected)
    assert got["sources"][0]["name"] == expected["sources"][0]["name"]
    assert got["sources"][0]["id"] == expected["sources"][0]["id"]
    assert got["nextPageToken"] == expected["nextPageToken"]  # next source id, as in the quickstart
    full = _example("Get Source example response")
    assert _types(api.get("/sources/github/myorg/myrepo").json()["githubRepo"]) == {
        k: v for k, v in _types(full["githubRepo"]).items() if k != "isPrivate"
    }


def test_activities_match_quickstart_example_structure(api: Api) -> None:
    expected = _example("Quickstart: example ListActivities response, EARLIER")["activities"]
    sid = api.create("Create a boba app! sim:scenario=bash_output sim:steps=6")["id"]
    api.wait_state(sid, "COMPLETED")
    got = api.activities(sid)
    by_kind: dict[str | None, list[dict[str, Any]]] = {}
    for a in got:
        by_kind.setdefault(union_key(a), []).append(a)
    for ex in expected:
        kind = union_key(ex)
        assert kind in by_kind, kind
        mine = by_kind[kind]
        # every key of the example exists in one of our activities of that kind (plan createTime is extra)
        assert any(set(ex) == set(a) for a in mine), (kind, [set(a) for a in mine], set(ex))
        for art in ex.get("artifacts", []):
            art_kind = next(iter(art))
            ours = [x[art_kind] for a in got for x in a.get("artifacts", []) if art_kind in x]
            assert ours, art_kind
            assert any(set(o) >= set(art[art_kind]) - {"exitCode", "command"} for o in ours)
    plan = by_kind["planGenerated"][0]["planGenerated"]["plan"]
    ex_plan = expected[0]["planGenerated"]["plan"]
    assert set(ex_plan) <= set(plan) and set(plan["steps"][0]) == set(ex_plan["steps"][0])
    assert set(plan["steps"][1]) == set(ex_plan["steps"][1])


@pytest.mark.parametrize(
    "kind",
    [
        "planGenerated",
        "planApproved",
        "userMessaged",
        "agentMessaged",
        "progressUpdated",
        "sessionCompleted",
        "sessionFailed",
    ],
)
def test_union_member_shapes_match_type_snippets(api: Api, kind: str) -> None:
    snippet = next(
        ex["payload"] for ex in _examples() if ex["description"].startswith(f"Activity type snippet: {kind}")
    )
    scenario = "failure" if kind == "sessionFailed" else "user_feedback"
    sid = api.create(f"sim:scenario={scenario}")["id"]
    for _ in range(100):
        state = api.session(sid)["state"]
        if state == "AWAITING_USER_FEEDBACK":
            api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "yes"})
        if state in ("COMPLETED", "FAILED"):
            break
        api.sim.advance(20)
    ours = [a[kind] for a in api.activities(sid) if kind in a]
    assert ours
    allowed = set(_types(snippet[kind]))
    if kind == "planGenerated":
        assert set(ours[0]["plan"]) == {"id", "steps", "createTime"}
    elif kind == "progressUpdated":
        assert all(set(o) <= allowed for o in ours)
    else:
        assert set(ours[0]) == allowed
