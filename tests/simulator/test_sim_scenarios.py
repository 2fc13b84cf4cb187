"""Lifecycle and every scenario, driven over HTTP with a jumped clock."""

from __future__ import annotations

import re

from sim_helpers import REPO, Api, bash_outputs, union_key

from airflow_provider_jules.simulator import JulesSimulator

PATCH_FILE = re.compile(r"^diff --git a/(\S+) b/\1$", re.MULTILINE)


def _kinds(acts: list[dict[str, object]]) -> list[str | None]:
    return [union_key(a) for a in acts]  # type: ignore[arg-type]


def _check_unidiff(patch: str) -> list[str]:
    """Check hunk line counts of a unified diff; return the files it touches."""
    lines = patch.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", lines[i])
        if m:
            old_n, new_n = int(m.group(2) or 1), int(m.group(4) or 1)
            i += 1
            old = new = 0
            while i < len(lines) and lines[i][:1] in (" ", "+", "-") and not lines[i].startswith("diff "):
                old += lines[i][0] in " -"
                new += lines[i][0] in " +"
                i += 1
            assert (old, new) == (old_n, new_n)
        else:
            i += 1
    return PATCH_FILE.findall(patch)


def test_happy_path_full_lifecycle(api: Api) -> None:
    s = api.create("Add retries to the HTTP client", automationMode="AUTO_CREATE_PR")
    sid = s["id"]
    assert s["state"] == "QUEUED"
    seen = {s["state"]}
    for _ in range(200):
        state = api.session(sid)["state"]
        seen.add(state)
        if state == "COMPLETED":
            break
        api.sim.advance(2)
    assert {"QUEUED", "PLANNING", "IN_PROGRESS", "COMPLETED"} <= seen
    acts = api.activities(sid)
    kinds = _kinds(acts)
    assert kinds[0] == "planGenerated" and kinds[1] == "planApproved" and kinds[-1] == "sessionCompleted"
    assert set(kinds[2:-1]) == {"progressUpdated"} and len(kinds[2:-1]) == 5
    assert acts[0]["originator"] == "agent" and acts[1]["originator"] == "user"
    plan = acts[0]["planGenerated"]["plan"]
    assert 3 <= len(plan["steps"]) <= 5 and acts[1]["planApproved"] == {"planId": plan["id"]}
    assert "index" not in plan["steps"][0] and plan["steps"][1]["index"] == 1
    assert any(a["progressUpdated"].get("title") == "Ran bash command" for a in acts[2:-1])
    assert not any("bashOutput" in art for a in acts for art in a.get("artifacts", []))  # new era
    # cumulative change sets grow
    patches = [
        art["changeSet"]["gitPatch"].get("unidiffPatch", "")
        for a in acts
        for art in a.get("artifacts", [])
        if "changeSet" in art
    ]
    assert len(patches) >= 3
    assert all(
        patches[i + 1].startswith(patches[i]) and len(patches[i + 1]) > len(patches[i])
        for i in range(len(patches) - 1)
    )
    final = acts[-1]["artifacts"][0]["changeSet"]
    assert final["source"] == REPO
    gp = final["gitPatch"]
    assert re.fullmatch(r"[0-9a-f]{40}", gp["baseCommitId"]) and gp["suggestedCommitMessage"]
    assert len(_check_unidiff(gp["unidiffPatch"])) >= 3
    done = api.session(sid)
    pr = done["outputs"][0]["pullRequest"]
    assert re.fullmatch(r"https://github\.com/myorg/myrepo/pull/\d+", pr["url"])
    assert pr["title"] and pr["description"] and pr["baseRef"] == "main"
    assert re.fullmatch(rf"jules-{sid}-[0-9a-f]{{8}}", pr["headRef"])
    assert done["outputs"][1] == {"changeSet": final}
    assert done["updateTime"] == acts[-1]["createTime"]


def test_without_auto_create_pr_no_pull_request(api: Api) -> None:
    sid = api.create()["id"]
    done = api.wait_state(sid, "COMPLETED")
    assert [list(o) for o in done["outputs"]] == [["changeSet"]]


def test_pr_marker_false_disables_pull_request(api: Api) -> None:
    sid = api.create("x sim:pr=false", automationMode="AUTO_CREATE_PR")["id"]
    done = api.wait_state(sid, "COMPLETED")
    assert [list(o) for o in done["outputs"]] == [["changeSet"]]


def test_pr_host_marker_changes_only_the_host_of_the_pull_request(api: Api) -> None:
    """A test knob (issue #22): Jules opens pull requests on github.com; ``sim:pr_host=`` makes the simulator
    send a look-alike or a GitHub Enterprise host, in the same shape."""
    for host in ("g\u0456thub.com", "ghe.example.com", "github.com.evil.example"):
        s = api.create(f"x sim:pr_host={host}", automationMode="AUTO_CREATE_PR")
        assert "sim:" not in s["title"]
        done = api.wait_state(s["id"], "COMPLETED")
        pr = done["outputs"][0]["pullRequest"]
        assert re.fullmatch(rf"https://{re.escape(host)}/myorg/myrepo/pull/\d+", pr["url"])
    r = api.post("/sessions", json={"prompt": "x sim:pr_host=" + "h" * 254})
    assert r.status_code == 400 and "pr_host" in r.json()["error"]["message"]


def test_plan_approval_required(api: Api, sim: JulesSimulator) -> None:
    sid = api.create(requirePlanApproval=True, automationMode="AUTO_CREATE_PR")["id"]
    api.wait_state(sid, "AWAITING_PLAN_APPROVAL")
    sim.advance(300)  # stays waiting (timeout is 600 s)
    assert api.session(sid)["state"] == "AWAITING_PLAN_APPROVAL"
    assert _kinds(api.activities(sid)) == ["planGenerated"]
    r = api.post(f"/sessions/{sid}:approvePlan")
    assert r.status_code == 200 and r.json() == {}
    assert api.session(sid)["state"] == "IN_PROGRESS"
    acts = api.activities(sid)
    assert _kinds(acts) == ["planGenerated", "planApproved"] and acts[1]["originator"] == "user"
    done = api.wait_state(sid, "COMPLETED")
    assert "pullRequest" in done["outputs"][0]


def test_silent_completion_scenario_marker(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("plan only sim:scenario=silent_completion")["id"]
    api.wait_state(sid, "AWAITING_PLAN_APPROVAL")
    sim.advance(601)
    s = api.session(sid)
    assert s["state"] == "COMPLETED" and "outputs" not in s
    assert _kinds(api.activities(sid)) == ["planGenerated"]


def test_user_feedback_scenario(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("ask me sim:scenario=user_feedback")["id"]
    api.wait_state(sid, "AWAITING_USER_FEEDBACK")
    sim.advance(10_000)  # waits forever for the user
    assert api.session(sid)["state"] == "AWAITING_USER_FEEDBACK"
    acts = api.activities(sid)
    assert union_key(acts[-1]) == "agentMessaged" and acts[-1]["originator"] == "agent"
    assert acts[-1]["agentMessaged"]["agentMessage"].endswith("?")
    assert api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "Yes please"}).status_code == 200
    assert api.session(sid)["state"] == "IN_PROGRESS"
    api.wait_state(sid, "COMPLETED")
    kinds = _kinds(api.activities(sid))
    assert kinds.index("agentMessaged") < kinds.index("userMessaged") < kinds.index("sessionCompleted")


def test_user_feedback_two_questions(api: Api) -> None:
    sid = api.create("sim:scenario=user_feedback sim:questions=2 twice")["id"]
    for _ in range(2):
        api.wait_state(sid, "AWAITING_USER_FEEDBACK")
        api.post(f"/sessions/{sid}:sendMessage", json={"prompt": "ok"})
    api.wait_state(sid, "COMPLETED")
    assert _kinds(api.activities(sid)).count("agentMessaged") == 2


def test_failure_scenario(api: Api) -> None:
    sid = api.create("sim:scenario=failure break it", automationMode="AUTO_CREATE_PR")["id"]
    s = api.wait_state(sid, "FAILED", "COMPLETED")
    assert s["state"] == "FAILED" and "outputs" not in s
    last = api.activities(sid)[-1]
    assert last["sessionFailed"] == {"reason": "Jules encountered an error when working on the task."}


def test_bash_output_scenario(api: Api) -> None:
    sid = api.create("sim:scenario=bash_output sim:steps=6")["id"]
    api.wait_state(sid, "COMPLETED")
    bash = bash_outputs(api, sid)
    assert bash[0] == {
        "command": "pip install -e .",
        "output": "Successfully installed app-0.1.0",
    }  # exitCode 0 omitted
    assert {"command": "pytest -q", "output": "1 failed, 3 passed", "exitCode": 1} in bash


def test_unknown_state_scenario(api: Api, sim: JulesSimulator) -> None:
    sid = api.create("sim:scenario=unknown_state")["id"]
    states = set()
    for _ in range(300):
        st = api.session(sid)["state"]
        states.add(st)
        if st == "COMPLETED":
            break
        sim.advance(1)
    assert "AWAITING_SOMETHING" in states and "COMPLETED" in states
    acts = api.activities(sid)
    kinds = _kinds(acts)
    assert kinds[0] is None and acts[0]["originator"] == "system"
    assert "environmentPrepared" in kinds
    odd = [
        art for a in acts for art in a.get("artifacts", []) if set(art) - {"changeSet", "media", "bashOutput"}
    ]
    assert odd == [{"terminalRecording": {"format": "asciicast-v2", "durationSeconds": 12}}]


def test_steps_marker(api: Api) -> None:
    sid = api.create("sim:steps=2")["id"]
    api.wait_state(sid, "COMPLETED")
    assert _kinds(api.activities(sid)).count("progressUpdated") == 2


def test_unknown_scenario_marker_400(api: Api) -> None:
    r = api.post("/sessions", json={"prompt": "sim:scenario=nope"})
    assert r.status_code == 400 and "nope" in r.json()["error"]["message"]


def test_server_default_scenario(api: Api, sim: JulesSimulator) -> None:
    sim.replace_config(scenario="failure")
    sid = api.create()["id"]
    assert api.wait_state(sid, "FAILED", "COMPLETED")["state"] == "FAILED"
    assert sim.session_info(sid)["scenario"] == "failure"


def test_deterministic_for_same_seed(sim: JulesSimulator) -> None:
    from airflow_provider_jules.simulator import SimulatorConfig, run_simulator

    results = []
    for _ in range(2):
        with run_simulator(SimulatorConfig(speed=1.0, seed=42, start_time=1_750_000_000.0)) as other:
            a = Api(other)
            sid = a.create("same work")["id"]
            other.advance(1000)
            results.append((sid, [(x["id"], union_key(x)) for x in a.activities(sid)]))
            a.http.close()
    assert results[0] == results[1]


def test_many_idle_sessions_are_cheap(api: Api, sim: JulesSimulator) -> None:
    for i in range(500):
        api.create(f"idle {i}", source=None)
    sim.advance(10**6)
    assert api.get("/sessions", params={"pageSize": 100}).status_code == 200
    assert sim.stats()["sessions_live"] == 500


def test_no_changes_scenario_completes_without_change_set_or_outputs(api: Api) -> None:
    created = api.create("Check the code sim:scenario=no_changes", automationMode="AUTO_CREATE_PR")
    session = api.wait_state(created["id"], "COMPLETED")
    assert "outputs" not in session
    acts = api.activities(created["id"])
    assert not any("changeSet" in art for a in acts for art in a.get("artifacts", []))
    assert _kinds(acts)[-1] == "sessionCompleted" and "artifacts" not in acts[-1]
    assert "planApproved" in _kinds(acts)


def test_a_fix_request_changes_the_failed_dag_file_and_opens_a_pull_request(api: Api) -> None:
    """JulesFixNotifier's prompt names the failed DAG's file: the simulated fix touches it and its test."""
    prompt = "An Apache Airflow task failed.\n\n## The failure\n- DAG id: etl\n- DAG file: dags/etl_orders.py"
    s = api.create(prompt, automationMode="AUTO_CREATE_PR", title="[jules-fix 0123456789abcdef] Fix etl.load")
    done = api.wait_state(s["id"], "COMPLETED")
    final = api.activities(s["id"])[-1]["artifacts"][0]["changeSet"]["gitPatch"]["unidiffPatch"]
    assert _check_unidiff(final) == ["dags/etl_orders.py", "tests/test_etl_orders.py"]
    [pr] = [o["pullRequest"] for o in done["outputs"] if "pullRequest" in o]
    assert pr["url"].startswith("https://github.com/myorg/myrepo/pull/")
    assert pr["title"] == "[jules-fix 0123456789abcdef] Fix etl.load"
