"""Every endpoint over plain HTTP: shapes, validation, auth, pagination, filters."""

from __future__ import annotations

import re

import httpx
import pytest
from sim_helpers import REPO, Api

from airflow_provider_jules.simulator import JulesSimulator

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_create_session_response_shape(api: Api) -> None:
    s = api.create(
        "Add a boba app", title="Boba App", automationMode="AUTO_CREATE_PR", requirePlanApproval=False
    )
    assert set(s) == {
        "name",
        "id",
        "prompt",
        "title",
        "sourceContext",
        "state",
        "url",
        "createTime",
        "updateTime",
    }
    assert s["name"] == f"sessions/{s['id']}"
    assert re.fullmatch(r"\d{20}", s["id"])
    assert s["state"] == "QUEUED"
    assert s["title"] == "Boba App"
    assert s["url"] == f"https://jules.google.com/session/{s['id']}"
    assert TS.match(s["createTime"]) and TS.match(s["updateTime"])
    assert s["sourceContext"] == {"source": REPO, "githubRepoContext": {"startingBranch": "main"}}


def test_create_generates_title_from_prompt(api: Api) -> None:
    s = api.create("fix the flaky login test\nmore details here")
    assert s["title"] == "Fix the flaky login test"


def test_create_repoless_session_allowed(api: Api) -> None:
    s = api.create("Write a haiku generator", source=None)
    assert "sourceContext" not in s
    done = api.wait_state(s["id"], "COMPLETED")
    assert done["outputs"] == [done["outputs"][0]]
    assert "source" not in done["outputs"][0]["changeSet"]


def test_get_session_and_unknown_id(api: Api) -> None:
    s = api.create()
    assert api.session(s["id"])["id"] == s["id"]
    r = api.get("/sessions/12345678901234567890")
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    }


def test_list_sessions_pagination_and_page_size_rules(api: Api) -> None:
    ids = [api.create(f"task {i}")["id"] for i in range(5)]
    r = api.get("/sessions", params={"pageSize": 2})
    body = r.json()
    assert [s["id"] for s in body["sessions"]] == ids[::-1][:2]
    seen = [s["id"] for s in body["sessions"]]
    for _ in range(10):
        if "nextPageToken" not in body:
            break
        body = api.get("/sessions", params={"pageSize": 2, "pageToken": body["nextPageToken"]}).json()
        seen += [s["id"] for s in body["sessions"]]
    assert seen == ids[::-1]
    assert len(api.get("/sessions", params={"pageSize": 0}).json()["sessions"]) == 5
    assert len(api.get("/sessions", params={"pageSize": 1000}).json()["sessions"]) == 5
    bad = api.get("/sessions", params={"pageSize": -1})
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert api.get("/sessions", params={"pageToken": "garbage!"}).status_code == 400


def test_list_sessions_default_page_size_30_and_max_100(api: Api, sim: JulesSimulator) -> None:
    for i in range(105):
        api.create(f"bulk {i}", source=None)
    assert len(api.get("/sessions").json()["sessions"]) == 30
    page = api.get("/sessions", params={"pageSize": 500}).json()
    assert len(page["sessions"]) == 100 and "nextPageToken" in page


def test_list_sessions_empty_is_empty_object(api: Api) -> None:
    r = api.get("/sessions")
    assert r.status_code == 200 and r.json() == {}


def test_send_message_requires_prompt_and_rejects_unknown_field(api: Api) -> None:
    sid = api.create()["id"]
    r = api.post(f"/sessions/{sid}:sendMessage", json={"message": "hi"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "message"' in err["message"]
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert api.post(f"/sessions/{sid}:sendMessage", json={}).status_code == 400
    assert api.post(f"/sessions/{sid}:sendMessage", content=b"{not json").status_code == 400
    assert api.post("/sessions/99999999999999999999:sendMessage", json={"prompt": "x"}).status_code == 404


def test_send_message_adds_user_messaged_activity(api: Api) -> None:
    sid = api.create()["id"]
    r = api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "Please also add docs"})
    assert r.status_code == 200
    acts = api.activities(sid)
    assert acts[-1]["userMessaged"] == {"userMessage": "Please also add docs"}
    assert acts[-1]["originator"] == "user"


def test_delete_session_then_404(api: Api) -> None:
    sid = api.create()["id"]
    r = api.delete(f"/sessions/{sid}")
    assert r.status_code == 200 and r.content == b""
    assert api.get(f"/sessions/{sid}").status_code == 404
    assert api.delete(f"/sessions/{sid}").status_code == 404
    assert api.get("/sessions").json() == {}


def test_archive_and_unarchive_return_session(api: Api) -> None:
    sid = api.create()["id"]
    r = api.post(f"/sessions/{sid}:archive", json={})
    assert r.status_code == 200
    assert r.json()["archived"] is True and r.json()["state"] == "PAUSED"
    assert "sourceContext" in r.json()
    r = api.post(f"/sessions/{sid}:unarchive", json={})
    assert r.status_code == 200 and "archived" not in r.json()
    assert r.json()["state"] == "QUEUED"


def test_archive_pauses_progress_and_unarchive_resumes(api: Api, sim: JulesSimulator) -> None:
    sid = api.create()["id"]
    api.wait_state(sid, "IN_PROGRESS")
    n = len(api.activities(sid))
    api.post(f"/sessions/{sid}:archive")
    sim.advance(5000)
    s = api.session(sid)
    assert s["state"] == "PAUSED" and len(api.activities(sid)) == n
    api.post(f"/sessions/{sid}:unarchive")
    assert api.wait_state(sid, "COMPLETED")["state"] == "COMPLETED"
    assert len(api.activities(sid)) > n


def test_list_activities_pagination_and_tokens(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("big job sim:steps=12")["id"]
    api.wait_state(sid, "COMPLETED")
    everything = api.activities(sid)
    assert len(everything) == 15  # plan + approval + 12 progress + completion
    r = api.get(f"/sessions/{sid}/activities", params={"pageSize": 4}).json()
    got = r["activities"]
    for _ in range(10):
        if "nextPageToken" not in r:
            break
        assert r["nextPageToken"].isdigit()  # ns since epoch, as observed live
        r = api.get(
            f"/sessions/{sid}/activities", params={"pageSize": 4, "pageToken": r["nextPageToken"]}
        ).json()
        got += r["activities"]
    assert got == everything
    times = [a["createTime"] for a in everything]
    assert times == sorted(times) and len(set(times)) == len(times)  # oldest first
    assert api.get(f"/sessions/{sid}/activities", params={"pageToken": "abc"}).status_code == 400


def test_list_activities_default_page_size_50(api: Api) -> None:
    sid = api.create("huge sim:steps=60")["id"]
    api.wait_state(sid, "COMPLETED", step=100)
    r = api.get(f"/sessions/{sid}/activities").json()
    assert len(r["activities"]) == 50 and "nextPageToken" in r
    assert len(api.get(f"/sessions/{sid}/activities", params={"pageSize": 500}).json()["activities"]) == 63


def test_list_activities_create_time_filter_strictly_after(api: Api) -> None:
    sid = api.create()["id"]
    api.wait_state(sid, "COMPLETED")
    acts = api.activities(sid)
    pivot = acts[2]["createTime"]
    after = api.activities(sid, filter=f'create_time>"{pivot}"')
    assert after == acts[3:]
    assert api.activities(sid, filter=f'create_time>"{acts[-1]["createTime"]}"') == []
    r = api.get(f"/sessions/{sid}/activities", params={"filter": f'create_time>"{acts[-1]["createTime"]}"'})
    assert r.json() == {}
    assert (
        api.get(f"/sessions/{sid}/activities", params={"filter": "create_time>yesterday"}).status_code == 400
    )


def test_get_activity(api: Api) -> None:
    sid = api.create()["id"]
    api.wait_state(sid, "COMPLETED")
    acts = api.activities(sid)
    for a in acts:
        assert HEX32.match(a["id"]) and a["name"] == f"sessions/{sid}/activities/{a['id']}"
        r = api.get(f"/sessions/{sid}/activities/{a['id']}")
        assert r.status_code == 200 and r.json() == a
    assert api.get(f"/sessions/{sid}/activities/{'0' * 32}").status_code == 404
    assert api.get(f"/sessions/98765432109876543210/activities/{acts[0]['id']}").status_code == 404


def test_list_sources_default_catalogue_pagination(api: Api) -> None:
    first = api.get("/sources").json()
    assert len(first["sources"]) == 30
    names = [s["name"] for s in first["sources"]]
    body = first
    for _ in range(10):
        if "nextPageToken" not in body:
            break
        body = api.get("/sources", params={"pageToken": body["nextPageToken"]}).json()
        names += [s["name"] for s in body["sources"]]
    assert len(names) >= 40 and len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"sources/github/[\w.-]+/[\w.-]+", name)
    assert api.get("/sources", params={"pageToken": "no/such/token"}).status_code == 400
    assert len(api.get("/sources", params={"pageSize": 100}).json()["sources"]) == len(names)


def test_list_sources_name_filter(api: Api) -> None:
    f = "name=sources/github/bobalover/boba OR name=sources/github/myorg/myrepo"
    body = api.get("/sources", params={"filter": f}).json()
    assert [s["id"] for s in body["sources"]] == ["github/bobalover/boba", "github/myorg/myrepo"]
    assert "nextPageToken" not in body
    assert api.get("/sources", params={"filter": "owner=me"}).status_code == 400
    assert api.get("/sources", params={"filter": "name=sources/github/none/none"}).json() == {}


def test_get_source_shape(api: Api) -> None:
    r = api.get("/sources/github/myorg/myrepo")
    assert r.status_code == 200
    assert r.json() == {
        "name": "sources/github/myorg/myrepo",
        "id": "github/myorg/myrepo",
        "githubRepo": {
            "owner": "myorg",
            "repo": "myrepo",
            "defaultBranch": {"displayName": "main"},
            "branches": [
                {"displayName": "main"},
                {"displayName": "develop"},
                {"displayName": "feature/auth"},
                {"displayName": "feature/tests"},
            ],
        },
    }
    assert api.get("/sources/github/myorg/another-repo").json()["githubRepo"]["isPrivate"] is True
    assert api.get("/sources/github/nobody/nothing").status_code == 404
    assert api.get("/sources/github-myorg-myrepo").status_code == 404  # single segment: clean 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"prompt": "x", "automationMode": "MANUAL"}, "MANUAL"),
        ({"prompt": "x", "automationMode": "NONE"}, "NONE"),
        ({"prompt": "x", "foo": 1}, 'Unknown name "foo"'),
        ({"title": "no prompt"}, "prompt"),
        ({"prompt": "x", "requirePlanApproval": "yes"}, "requirePlanApproval"),
        ({"prompt": "x", "sourceContext": {"githubRepoContext": {"startingBranch": "main"}}}, "source"),
        (
            {
                "prompt": "x",
                "sourceContext": {"source": REPO, "githubRepoContext": {"startingBranch": "nope"}},
            },
            "nope",
        ),
        ({"prompt": "x", "sourceContext": {"source": REPO}}, "startingBranch"),
    ],
)
def test_create_validation_400(api: Api, body: dict[str, object], fragment: str) -> None:
    r = api.post("/sessions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT"
    assert fragment in err["message"]
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert err["details"][0]["fieldViolations"]


def test_create_invalid_json_400(api: Api) -> None:
    r = api.post(
        "/sessions", content=b'{"prompt": "x" "title": "y"}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert api.post("/sessions", content=b"[1, 2]").status_code == 400
    assert api.post("/sessions").status_code == 400


def test_create_unknown_source_is_404(api: Api) -> None:
    r = api.post(
        "/sessions",
        json={
            "prompt": "x",
            "sourceContext": {
                "source": "sources/github/ghost/repo",
                "githubRepoContext": {"startingBranch": "main"},
            },
        },
    )
    assert r.status_code == 404
    assert r.json()["error"]["status"] == "NOT_FOUND"
    assert "Could not get source" in r.json()["error"]["message"]


def test_create_accepts_automation_mode_unspecified_and_hides_input_fields(api: Api) -> None:
    s = api.create(automationMode="AUTOMATION_MODE_UNSPECIFIED", requirePlanApproval=False)
    assert "automationMode" not in s and "requirePlanApproval" not in s


def test_daily_quota_failed_precondition(api: Api, sim: JulesSimulator) -> None:
    sim.replace_config(daily_quota=2)
    api.create()
    api.create()
    r = api.post("/sessions", json={"prompt": "third"})
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert r.json()["error"]["message"] == "Precondition check failed."
    sim.advance(86401)
    assert api.post("/sessions", json={"prompt": "next day"}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-goog-api-key": "wrong"}, {"Authorization": "Bearer sim-key"}],
)
def test_auth_rejected_401(sim: JulesSimulator, headers: dict[str, str]) -> None:
    r = httpx.get(f"{sim.url}/v1alpha/sessions", headers=headers)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == 401 and err["status"] == "UNAUTHENTICATED" and err["details"]


def test_auth_header_is_case_insensitive(sim: JulesSimulator) -> None:
    for name in ("X-Goog-Api-Key", "x-goog-api-key", "X-GOOG-API-KEY"):
        assert httpx.get(f"{sim.url}/v1alpha/sources", headers={name: "sim-key"}).status_code == 200


def test_unknown_path_404(api: Api) -> None:
    assert api.get("/nothing").status_code == 404
    sid = api.create()["id"]
    assert api.post(f"/sessions/{sid}:cancel").status_code == 404
