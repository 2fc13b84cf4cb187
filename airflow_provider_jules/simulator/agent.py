"""What the simulated agent writes: plans, progress updates, questions, change sets and pull requests.

Each function adds the activities of one scripted step to the session and returns what the state machine
(:mod:`.lifecycle`) needs; none of them changes the session's state. Scenario quirks of the content live
here: bash output artifacts (``bash_output``), no change set (``no_changes``), no outputs (``no_outputs``).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_jules.simulator.catalog import file_diff, random_hex
from airflow_provider_jules.simulator.clock import format_ts
from airflow_provider_jules.simulator.config import SourceSpec
from airflow_provider_jules.simulator.scenarios import strip_markers, topic
from airflow_provider_jules.simulator.session import Session

FAILURE_REASON = "Jules encountered an error when working on the task."
DEFAULT_QUESTION = "Should I also update the documentation for this change?"
# A 1x1 transparent PNG, base64 (the media artifact of "Frontend verification").
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
# A 1x1 opaque blue PNG: with ``sim:media=N`` (N >= 2) the second screenshot differs from the first.
PNG_1PX_BLUE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mOQKn4BAAIgAXZYyzEZAAAAAElFTkSuQmCC"
#: The screenshots of a session's media steps, in turn (step ``index`` picks ``index % 2``).
SCREENSHOTS = (PNG_1PX, PNG_1PX_BLUE)


def write_plan(s: Session, t: int) -> None:
    """A new plan (three to five steps over the session's files); its id becomes ``s.plan_id``."""
    s.plan_id = random_hex(s.rng, 32)
    n = 3 + s.rng.randrange(3)
    titles = [
        "Explore the repository and understand the relevant code.",
        *(f"Modify `{f}` to implement the requested change." for f in s.files[: n - 2]),
        "Run the tests to verify the change.",
        "Submit the change.",
    ][:n]
    steps = []
    for i, title in enumerate(titles):
        st: dict[str, Any] = {"id": random_hex(s.rng, 32), "title": title}
        if i:
            st["index"] = i
        steps.append(st)
    plan = {"id": s.plan_id, "steps": steps, "createTime": format_ts(t)}
    s.add_activity(t, "agent", {"planGenerated": {"plan": plan}})


def write_plan_approved(s: Session, t: int) -> None:
    s.add_activity(t, "user", {"planApproved": {"planId": s.plan_id}})


def write_progress(s: Session, t: int, data: dict[str, Any]) -> None:
    """One progress update: a bash command, a file edit, a media artifact, an odd artifact, or a review."""
    kind = data["kind"]
    if kind == "bash":
        _write_bash(s, t, data)
    elif kind == "edit":
        path = _add_file(s, data["file"])
        title = f"I have updated `{path}`."
        s.add_activity(t, "agent", {"progressUpdated": {"title": title}}, [change_set(s, False)])
    elif kind == "media":
        member = {
            "progressUpdated": {
                "title": "Frontend verification",
                "description": "Agent provided UI verification.",
            }
        }
        image = SCREENSHOTS[int(data.get("index", 0)) % len(SCREENSHOTS)]
        s.add_activity(t, "agent", member, [{"media": {"data": image, "mimeType": "image/png"}}])
    elif kind == "odd":
        member = {"progressUpdated": {"title": "Recorded terminal session"}}
        arts = [{"terminalRecording": {"format": "asciicast-v2", "durationSeconds": 12}}]
        s.add_activity(t, "agent", member, arts)
    else:
        desc = "Reviewed the change against the plan; the implementation matches the request."
        s.add_activity(t, "agent", {"progressUpdated": {"title": "Code reviewed", "description": desc}})


def _write_bash(s: Session, t: int, data: dict[str, Any]) -> None:
    cmd, out, code = data["command"], data["output"], data.get("exit_code", 0)
    desc = f"Command: \n{cmd}\nOutput: {out}\nExit Code: {code}"
    arts = None
    if s.scenario == "bash_output":
        bash: dict[str, Any] = {"command": cmd, "output": out}
        if code:
            bash["exitCode"] = code
        arts = [{"bashOutput": bash}]
    s.add_activity(t, "agent", {"progressUpdated": {"title": "Ran bash command", "description": desc}}, arts)


def write_question(s: Session, t: int, text: str) -> None:
    s.add_activity(t, "agent", {"agentMessaged": {"agentMessage": text}})


def write_environment_prepared(s: Session, t: int) -> None:
    """An activity of a kind the provider does not know (scenario ``unknown_state``)."""
    s.add_activity(t, "agent", {"environmentPrepared": {"image": "jules-base:2026.1", "setupSeconds": 42}})


def write_failure(s: Session, t: int) -> None:
    s.add_activity(t, "agent", {"sessionFailed": {"reason": FAILURE_REASON}})


def write_completion(s: Session, t: int) -> list[dict[str, Any]]:
    """The completion activity; returns the session's outputs (pull request and final change set)."""
    if s.scenario == "no_changes":  # Jules looked, found nothing to change: no change set, no outputs
        s.add_activity(t, "agent", {"sessionCompleted": {}})
        return []
    for i in range(len(s.files)):  # the final patch touches every planned file
        if not any(f" b/{s.files[i]}\n" in p for p in s.patch_parts):
            _add_file(s, i)
    final = change_set(s, True)
    s.add_activity(t, "agent", {"sessionCompleted": {}}, [final])
    outputs: list[dict[str, Any]] = []
    if s.scenario != "no_outputs":
        if s.automation_mode == "AUTO_CREATE_PR" and s.pr_enabled and s.source is not None:
            if s.pr is None:
                s.pr = _pull_request(s, s.source)
            outputs.append({"pullRequest": s.pr})
        outputs.append(final)
    return outputs


def _pull_request(s: Session, src: SourceSpec) -> dict[str, Any]:
    return {
        "url": f"https://{s.pr_host}/{src.owner}/{src.repo}/pull/{1 + s.rng.randrange(999)}",
        "title": s.title[:200],
        "description": f"This change implements: {s.title[:500]}\n\n"
        f"PR created automatically by Jules for task "
        f"[{s.id}](https://jules.google.com/task/{s.id}) started by the simulator.",
        "baseRef": s.starting_branch,
        "headRef": f"jules-{s.id}-{random_hex(s.rng, 8)}",
    }


def change_set(s: Session, final: bool) -> dict[str, Any]:
    """The change set so far (the final one carries a suggested commit message)."""
    patch: dict[str, Any] = {}
    if s.patch_parts:
        patch["unidiffPatch"] = "".join(s.patch_parts)
    patch["baseCommitId"] = s.base_commit
    if final:
        patch["suggestedCommitMessage"] = _commit_message(s)
    cs: dict[str, Any] = {}
    if s.source is not None:
        cs["source"] = f"sources/{s.source.id}"
    cs["gitPatch"] = patch
    return {"changeSet": cs}


def _add_file(s: Session, idx: int) -> str:
    """Edit the session's ``idx``-th file: its diff joins the patch."""
    while idx >= len(s.files):
        s.files.append(f"src/app/module_{len(s.files)}.py")
    path = s.files[idx]
    s.patch_parts.append(file_diff(s.rng, path, topic(s), s.rounds))
    return path


def _commit_message(s: Session) -> str:
    first = strip_markers(s.title) or "Apply requested change"
    suffix = f" (follow-up {s.rounds - 1})" if s.rounds > 1 else ""
    return (
        f"feat: {first[:60]}{suffix}\n\nThis commit implements the requested change in {len(s.files)} files."
    )
