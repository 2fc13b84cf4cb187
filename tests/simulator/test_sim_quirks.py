"""Quirks of jules-api.md section 6 that concern what the server sends, one named test each."""

from __future__ import annotations

import base64

import httpx
from sim_helpers import REPO, Api, bash_outputs, union_key

from airflow_provider_jules.simulator import JulesSimulator


def test_q3_multi_segment_source_routes(api: Api) -> None:
    r = api.get("/sources/github/bobalover/boba")
    assert r.status_code == 200
    assert r.json()["name"] == "sources/github/bobalover/boba" and r.json()["id"] == "github/bobalover/boba"
    assert api.get("/sources/github/bobalover").status_code == 404


def test_q3_single_segment_source_ids_supported_when_configured() -> None:
    from airflow_provider_jules.simulator import SimulatorConfig, SourceSpec, run_simulator

    cfg = SimulatorConfig(sources=[SourceSpec("myorg", "myrepo", source_id="github-myorg-myrepo")])
    with run_simulator(cfg) as sim:
        a = Api(sim)
        assert a.get("/sources/github-myorg-myrepo").json()["name"] == "sources/github-myorg-myrepo"
        s = a.create(source="sources/github-myorg-myrepo")
        assert s["sourceContext"]["source"] == "sources/github-myorg-myrepo"
        a.http.close()


def test_q5_repoless_session_without_source_context(api: Api) -> None:
    s = api.create("no repo", source=None)
    assert "sourceContext" not in s and s["state"] == "QUEUED"


def test_q8_approve_plan_accepts_no_body_and_answers_empty_object(api: Api) -> None:
    for body in (None, b"", b"{}"):
        sid = api.create(requirePlanApproval=True)["id"]
        api.wait_state(sid, "AWAITING_PLAN_APPROVAL")
        r = api.post(f"/sessions/{sid}:approvePlan", content=body)
        assert r.status_code == 200 and r.content == b"{}" and r.json() == {}
        assert api.session(sid)["state"] == "IN_PROGRESS"


def test_q9_send_message_answers_zero_length_body(api: Api) -> None:
    sid = api.create()["id"]
    r = api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "hello"})
    assert r.status_code == 200 and r.content == b""
    r = api.delete(f"/sessions/{sid}")
    assert r.status_code == 200 and r.content == b""


def test_q9_empty_replies_configurable_to_empty_object(api: Api, sim: JulesSimulator) -> None:
    sim.replace_config(empty_reply_send_message=False, empty_reply_delete=False)
    sid = api.create()["id"]
    assert api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "x"}).content == b"{}"
    assert api.delete(f"/sessions/{sid}").content == b"{}"


def test_q11_exit_code_integer_and_omitted_when_zero(api: Api) -> None:
    sid = api.create("sim:scenario=bash_output sim:steps=6")["id"]
    api.wait_state(sid, "COMPLETED")
    bash = bash_outputs(api, sid)
    assert "exitCode" not in bash[0]
    assert any(isinstance(b.get("exitCode"), int) and b["exitCode"] == 1 for b in bash)


def test_q12_page_tokens_are_opaque_strings(api: Api) -> None:
    for i in range(3):
        api.create(f"t{i}")
    token = api.get("/sessions", params={"pageSize": 1}).json()["nextPageToken"]
    assert isinstance(token, str) and token
    assert isinstance(api.get("/sources").json()["nextPageToken"], str)


def test_q13_activity_without_union_member(api: Api) -> None:
    sid = api.create("sim:scenario=unknown_state")["id"]
    api.wait_state(sid, "COMPLETED")
    first = api.activities(sid)[0]
    assert union_key(first) is None
    assert set(first) == {"name", "id", "description", "createTime", "originator"}
    assert first["description"] == "Session started" and first["originator"] == "system"


def test_q13_unknown_union_key_and_unknown_state(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("sim:scenario=unknown_state")["id"]
    for _ in range(300):
        if api.session(sid)["state"] == "AWAITING_SOMETHING":
            break
        sim.advance(1)
    assert api.session(sid)["state"] == "AWAITING_SOMETHING"
    assert union_key(api.activities(sid)[-1]) == "environmentPrepared"


def test_q14_url_format(api: Api) -> None:
    s = api.create()
    assert s["url"] == f"https://jules.google.com/session/{s['id']}"


def test_q15_silent_completion_after_approval_timeout(api: Api, sim: JulesSimulator) -> None:
    sid = api.create(requirePlanApproval=True, automationMode="AUTO_CREATE_PR")["id"]
    api.wait_state(sid, "AWAITING_PLAN_APPROVAL", step=1)
    sim.advance(590)
    assert api.session(sid)["state"] == "AWAITING_PLAN_APPROVAL"
    sim.advance(20)
    s = api.session(sid)
    assert s["state"] == "COMPLETED" and "outputs" not in s
    acts = api.activities(sid)
    assert [union_key(a) for a in acts] == ["planGenerated"]
    r = api.post(f"/sessions/{sid}:approvePlan", json={})
    assert r.status_code == 200 and r.json() == {}
    assert api.session(sid)["state"] == "COMPLETED" and len(api.activities(sid)) == 1


def test_q16_send_message_after_completed_resumes_work(api: Api, sim: JulesSimulator) -> None:
    sid = api.create(automationMode="AUTO_CREATE_PR")["id"]
    first = api.wait_state(sid, "COMPLETED")
    n = len(api.activities(sid))
    assert (
        api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "Also add a changelog"}).status_code == 200
    )
    assert api.session(sid)["state"] == "IN_PROGRESS"
    second = api.wait_state(sid, "COMPLETED")
    acts = api.activities(sid)
    kinds = [union_key(a) for a in acts]
    assert (
        kinds[n] == "userMessaged"
        and kinds[-1] == "sessionCompleted"
        and kinds.count("sessionCompleted") == 2
    )
    assert second["updateTime"] > first["updateTime"]
    old = first["outputs"][1]["changeSet"]["gitPatch"]["unidiffPatch"]
    new = second["outputs"][1]["changeSet"]["gitPatch"]["unidiffPatch"]
    assert new.startswith(old) and "follow_up_2" in new
    assert second["outputs"][0] == first["outputs"][0]  # same PR, new commits


def test_q17_stuck_in_progress(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("sim:scenario=stuck")["id"]
    api.wait_state(sid, "IN_PROGRESS")
    sim.advance(600)
    n = len(api.activities(sid))
    sim.advance(100_000)
    assert api.session(sid)["state"] == "IN_PROGRESS"
    assert len(api.activities(sid)) == n and "sessionCompleted" not in [
        union_key(a) for a in api.activities(sid)
    ]


def test_q18_transient_404_on_activities_after_create(api: Api, sim: JulesSimulator) -> None:
    sim.set_faults(transient_404_seconds=30)
    sid = api.create()["id"]
    r = api.get(f"/sessions/{sid}/activities")
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    assert api.get(f"/sessions/{sid}").status_code == 200
    sim.advance(31)
    assert api.get(f"/sessions/{sid}/activities").status_code == 200


def test_q18_transient_404_first_n_requests(api: Api, sim: JulesSimulator) -> None:
    sim.set_faults(transient_404_requests=2)
    sid = api.create()["id"]
    codes = [api.get(f"/sessions/{sid}/activities").status_code for _ in range(4)]
    assert codes == [404, 404, 200, 200]


def test_q19_outputs_empty_patch_in_activities(api: Api) -> None:
    sid = api.create("sim:scenario=no_outputs", automationMode="AUTO_CREATE_PR")["id"]
    s = api.wait_state(sid, "COMPLETED")
    assert "outputs" not in s
    final = api.activities(sid)[-1]
    assert union_key(final) == "sessionCompleted"
    assert final["artifacts"][0]["changeSet"]["gitPatch"]["unidiffPatch"].startswith("diff --git ")


def test_q20_proto3_omits_defaults(api: Api) -> None:
    s = api.create()
    assert "outputs" not in s and "archived" not in s
    api.wait_state(s["id"], "COMPLETED")
    acts = api.activities(s["id"])
    steps = acts[0]["planGenerated"]["plan"]["steps"]
    assert "index" not in steps[0] and all(st["index"] == i for i, st in enumerate(steps) if i)
    assert all("description" not in st for st in steps)
    for a in acts:
        assert "description" not in a  # empty description omitted
        assert a.get("artifacts", None) != []
    first_cs = next(art["changeSet"] for a in acts for art in a.get("artifacts", []) if "changeSet" in art)
    assert "suggestedCommitMessage" not in first_cs["gitPatch"]
    assert "isPrivate" not in api.get("/sources/github/myorg/myrepo").json()["githubRepo"]
    assert api.get("/sessions", params={"filter": "archived = true"}).json() == {}


def test_q21_large_payloads_long_titles_and_many_branches(api: Api) -> None:
    prompt = "Refactor everything. " * 500 + "sim:title=full"
    s = api.create(prompt)
    assert s["title"] == prompt and len(s["title"]) > 10_000
    long_title = "T" * 5000
    assert api.create(title=long_title)["title"] == long_title
    src = api.get("/sources/github/bigcorp/monorepo").json()
    assert len(src["githubRepo"]["branches"]) == 515
    s = api.create(
        sourceContext={
            "source": "sources/github/bigcorp/monorepo",
            "githubRepoContext": {"startingBranch": "feature/ticket-0500"},
        }
    )
    assert s["sourceContext"]["githubRepoContext"]["startingBranch"] == "feature/ticket-0500"


def test_q22_create_500_after_store_is_ambiguous(api: Api, sim: JulesSimulator) -> None:
    sim.inject(route="create_session", status=500, count=1, store=True)
    r = api.post("/sessions", json={"prompt": "ambiguous"})
    assert r.status_code == 500 and r.json()["error"]["status"] == "INTERNAL"
    listed = api.get("/sessions").json()["sessions"]
    assert [x["prompt"] for x in listed] == ["ambiguous"]  # stored despite the 500
    assert sim.sessions_created == 1
    # a retry creates a duplicate: no idempotency key
    assert api.post("/sessions", json={"prompt": "ambiguous"}).status_code == 200
    assert len(api.get("/sessions").json()["sessions"]) == 2


def test_q23_media_artifact_uses_mime_type(api: Api) -> None:
    sid = api.create()["id"]
    api.wait_state(sid, "COMPLETED")
    media = [art["media"] for a in api.activities(sid) for art in a.get("artifacts", []) if "media" in art]
    assert media and set(media[0]) == {"data", "mimeType"} and media[0]["mimeType"] == "image/png"
    assert base64.b64decode(media[0]["data"]).startswith(b"\x89PNG")


def _media(api: Api, sid: str) -> list[tuple[str, dict[str, str]]]:
    """(activity title, media artifact) of every media artifact of the session, oldest first."""
    return [
        (a["progressUpdated"]["title"], art["media"])
        for a in api.activities(sid)
        for art in a.get("artifacts", [])
        if "media" in art
    ]


def test_media_marker_gives_that_many_verification_activities_with_distinct_screenshots(api: Api) -> None:
    sid = api.create("Restyle the page sim:media=2")["id"]
    api.wait_state(sid, "COMPLETED")
    media = _media(api, sid)
    assert [title for title, _ in media] == ["Frontend verification", "Frontend verification"]
    assert all(set(m) == {"data", "mimeType"} and m["mimeType"] == "image/png" for _, m in media)
    images = [base64.b64decode(m["data"], validate=True) for _, m in media]
    assert all(i.startswith(b"\x89PNG\r\n\x1a\n") for i in images) and images[0] != images[1]
    kinds = [union_key(a) for a in api.activities(sid)]
    assert kinds[-1] == "sessionCompleted"  # the media come before the completion, as a verification does


def test_media_marker_zero_and_short_sessions(api: Api) -> None:
    none = api.create("Restyle the page sim:media=0")["id"]
    short = api.create("Restyle the page sim:steps=2 sim:media=3")["id"]
    default_short = api.create("Restyle the page sim:steps=2")["id"]
    for sid in (none, short, default_short):
        api.wait_state(sid, "COMPLETED")
    assert _media(api, none) == []
    assert len(_media(api, short)) == 3  # the marker does not depend on the number of steps
    assert _media(api, default_short) == []  # without it, as before: one media step only when steps >= 5


def test_q24_archived_hidden_from_default_list(api: Api) -> None:
    keep = api.create("keep")["id"]
    gone = api.create("archive me")["id"]
    assert api.post(f"/sessions/{gone}:archive", json={}).status_code == 200
    assert [s["id"] for s in api.get("/sessions").json()["sessions"]] == [keep]
    assert [
        s["id"] for s in api.get("/sessions", params={"filter": "archived = false"}).json()["sessions"]
    ] == [keep]
    archived = api.get("/sessions", params={"filter": "archived = true"}).json()["sessions"]
    assert [s["id"] for s in archived] == [gone] and archived[0]["archived"] is True
    assert api.get("/sessions", params={"filter": "archived=maybe"}).status_code == 400
    api.post(f"/sessions/{gone}:unarchive")
    assert {s["id"] for s in api.get("/sessions").json()["sessions"]} == {keep, gone}


def test_q25_session_ids_exceed_int64(api: Api) -> None:
    ids = [api.create(f"id {i}", source=None)["id"] for i in range(20)]
    for sid in ids:
        assert len(sid) == 20 and sid.isdigit() and sid[0] == "1"
        assert int(sid) > 2**63 - 1
    r = httpx.get(f"{api.sim.url}/v1alpha/sessions/{ids[0]}", headers={"x-goog-api-key": "sim-key"})
    assert f'"id":"{ids[0]}"' in r.text  # a JSON string, never a number


def test_q2_activity_names_use_sessions_prefix(api: Api) -> None:
    sid = api.create()["id"]
    api.wait_state(sid, "COMPLETED")
    assert all(a["name"].startswith(f"sessions/{sid}/activities/") for a in api.activities(sid))


def test_q1_name_and_id_match(api: Api) -> None:
    s = api.create()
    assert s["name"] == "sessions/" + s["id"]
    assert api.get(f"/sessions/{s['id']}").json()["name"] == s["name"]
    assert REPO.startswith("sources/")
