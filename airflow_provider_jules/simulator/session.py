"""One simulated session: its record (:class:`Session`), its scripted :class:`Step` and its JSON forms.

The record only keeps books (state and update time, activities with strictly increasing create times);
what changes it, and when, is the state machine's job (:mod:`.lifecycle`).
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_jules.simulator.catalog import random_hex
from airflow_provider_jules.simulator.clock import format_ts
from airflow_provider_jules.simulator.config import SourceSpec

#: The host of the pull requests the simulated agent opens, as Jules does (``sim:pr_host=`` changes it).
PR_HOST = "github.com"


@dataclass
class Step:
    """One scripted step: ``kind`` happens ``delay_us`` after the previous step (see :mod:`.scenarios`)."""

    delay_us: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """All a session holds.

    ``blocked`` says why the script does not advance: ``None`` (running), ``"approval"`` (a plan awaits
    approval), ``"feedback"`` (a question awaits an answer), ``"paused"`` (archived), ``"stuck"``,
    ``"forced"`` (state set through the control API), ``"done"`` (finished) or ``"silent"`` (completed
    without the plan being approved, quirk Q15).
    """

    seq: int
    id: str
    prompt: str
    title: str
    source_context: dict[str, Any] | None
    source: SourceSpec | None
    starting_branch: str
    require_approval: bool
    automation_mode: str
    scenario: str
    steps: int
    pr_enabled: bool
    questions: int
    rng: random.Random
    create_us: int
    state: str = "QUEUED"
    update_us: int = 0
    archived: bool = False
    outputs: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    activity_ns: list[int] = field(default_factory=list)
    activity_index: dict[str, int] = field(default_factory=dict)
    pending: collections.deque[Step] = field(default_factory=collections.deque)
    cursor_us: int = 0
    blocked: str | None = None
    approval_deadline_us: int | None = None
    paused_from: tuple[str, str | None] | None = None
    paused_at_us: int = 0
    plan_id: str = ""
    plan_approved: bool = False
    silent_completed: bool = False
    base_commit: str = ""
    files: list[str] = field(default_factory=list)
    patch_parts: list[str] = field(default_factory=list)
    rounds: int = 1
    media: int | None = None  # sim:media=N (see scenarios._progress_plan); None: the default media step
    pr: dict[str, Any] | None = None
    pr_host: str = PR_HOST  # the marker sim:pr_host= (a test knob), see scenarios.ScenarioChoice
    activity_requests: int = 0
    last_activity_us: int = 0

    @property
    def name(self) -> str:
        return f"sessions/{self.id}"

    def set_state(self, state: str, t: int) -> None:
        self.state = state
        self.update_us = max(self.update_us, t)

    def add_activity(
        self,
        t: int,
        originator: str,
        member: dict[str, Any] | None,
        artifacts: list[dict[str, Any]] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        t = max(t, self.last_activity_us + 1)  # strictly increasing create times
        self.last_activity_us = t
        aid = random_hex(self.rng, 32)
        act: dict[str, Any] = {"name": f"{self.name}/activities/{aid}", "id": aid}
        if description:
            act["description"] = description
        act["createTime"] = format_ts(t)
        act["originator"] = originator
        if member:
            act.update(member)
        if artifacts:
            act["artifacts"] = artifacts
        self.activity_index[aid] = len(self.activities)
        self.activities.append(act)
        self.activity_ns.append(t * 1000)
        return act


def session_json(s: Session) -> dict[str, Any]:
    """The session as the API answers it."""
    out: dict[str, Any] = {"name": s.name, "id": s.id, "prompt": s.prompt}
    if s.title:
        out["title"] = s.title
    if s.source_context is not None:
        out["sourceContext"] = s.source_context
    out["state"] = s.state
    out["url"] = f"https://jules.google.com/session/{s.id}"
    out["createTime"] = format_ts(s.create_us)
    out["updateTime"] = format_ts(s.update_us)
    if s.outputs:
        out["outputs"] = s.outputs
    if s.archived:
        out["archived"] = True
    return out


def internal_json(s: Session) -> dict[str, Any]:
    """The session as the control API shows it: the API's view plus the simulator's own bookkeeping."""
    return {
        "session": session_json(s),
        "scenario": s.scenario,
        "steps": s.steps,
        "prEnabled": s.pr_enabled,
        "prHost": s.pr_host,
        "questions": s.questions,
        "media": s.media,
        "requirePlanApproval": s.require_approval,
        "automationMode": s.automation_mode,
        "blocked": s.blocked,
        "pendingSteps": [st.kind for st in s.pending],
        "activityCount": len(s.activities),
        "rounds": s.rounds,
        "silentCompleted": s.silent_completed,
        "activityRequests": s.activity_requests,
    }
