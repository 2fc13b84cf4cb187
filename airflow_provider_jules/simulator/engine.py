"""The simulator's state: sessions, activities and the lazy lifecycle engine.

Nothing runs in the background: every read first *advances* the session to the current simulated
time by applying the scripted steps whose time has come. An idle session costs nothing and the
result only depends on the seed and the simulated clock.
"""

from __future__ import annotations

import base64
import bisect
import collections
import datetime as dt
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_jules.simulator.catalog import default_sources, file_diff, source_to_json
from airflow_provider_jules.simulator.config import SCENARIOS, SimulatorConfig, SourceSpec

US = 1_000_000
AUTOMATION_MODES = ("AUTOMATION_MODE_UNSPECIFIED", "AUTO_CREATE_PR")
FAILURE_REASON = "Jules encountered an error when working on the task."
UNKNOWN_STATE = "AWAITING_SOMETHING"
# A 1x1 transparent PNG, base64 (the media artifact of "Frontend verification").
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
_MARKER = re.compile(r"sim:([A-Za-z_]+)=(\S+)")
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ApiError(Exception):
    """An error answered in the google.rpc.Status envelope."""

    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def bad_request(message: str, field_name: str = "") -> ApiError:
    violation = {"description": message}
    if field_name:
        violation = {"field": field_name, "description": message}
    detail = {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
    return ApiError(400, "INVALID_ARGUMENT", message, [detail])


def not_found(message: str = "Requested entity was not found.") -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def quota_exceeded() -> ApiError:
    detail = {
        "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
        "violations": [
            {"type": "QUOTA", "subject": "sessions", "description": "Daily session quota exceeded."}
        ],
    }
    return ApiError(400, "FAILED_PRECONDITION", "Precondition check failed.", [detail])


def format_ts(us: int) -> str:
    """RFC 3339 UTC with exactly 6 fractional digits and ``Z``."""
    secs, frac = divmod(us, US)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def parse_ts_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp to integer nanoseconds since the epoch (ValueError if invalid)."""
    m = _TS.match(text)
    if not m:
        raise ValueError(text)
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    frac = int((m.group(2) or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + frac


class Clock:
    """Simulated clock: ``speed`` simulated seconds per real second, plus manual jumps."""

    def __init__(self, speed: float, start: float | None) -> None:
        self.speed = speed
        self._real0 = time.monotonic()
        self._sim0 = int((time.time() if start is None else start) * US)

    def now_us(self) -> int:
        return self._sim0 + int((time.monotonic() - self._real0) * self.speed * US)

    def advance(self, seconds: float) -> None:
        self._sim0 += int(seconds * US)

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._sim0 = self.now_us()
        self._real0 = time.monotonic()
        self.speed = speed


@dataclass
class Step:
    delay_us: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
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
    pr: dict[str, Any] | None = None
    activity_requests: int = 0
    last_activity_us: int = 0

    @property
    def name(self) -> str:
        return f"sessions/{self.id}"


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


class Engine:
    """All simulator state. Thread-safe: every public method takes the engine lock."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = Clock(config.speed, config.start_time)
        self.sources: list[SourceSpec] = (
            list(config.sources) if config.sources is not None else default_sources()
        )
        self._source_index = {s.id: s for s in self.sources}
        self._source_ids = [s.id for s in self.sources]
        self._source_json = {s.id: source_to_json(s) for s in self.sources}
        self.reset()

    # ------------------------------------------------------------------ admin
    def reset(self) -> None:
        with self.lock:
            self.sessions: dict[str, Session] = {}
            self._order: list[int] = []  # seqs in creation order
            self._by_seq: dict[int, str] = {}
            self._ids = random.Random(f"ids:{self.config.seed}")
            self._seq = 0
            self.sessions_created = 0
            self._create_times: collections.deque[int] = collections.deque()

    def now_us(self) -> int:
        return self.clock.now_us()

    # ----------------------------------------------------------------- sources
    def list_sources(self, page_size: int, token: str, filt: str) -> dict[str, Any]:
        ids = self._source_ids
        if filt.strip():
            wanted = _parse_source_filter(filt)
            ids = [i for i in ids if f"sources/{i}" in wanted]
        start = 0
        if token:
            if token not in ids:
                raise bad_request("Invalid page token.", "page_token")
            start = ids.index(token)
        page = ids[start : start + page_size]
        out: dict[str, Any] = {}
        if page:
            out["sources"] = [self._source_json[i] for i in page]
        if start + page_size < len(ids):
            out["nextPageToken"] = ids[start + page_size]
        return out

    def get_source(self, source_id: str) -> dict[str, Any]:
        src = self._source_json.get(source_id)
        if src is None:
            raise not_found()
        return src

    # ---------------------------------------------------------------- sessions
    def create_session(self, body: dict[str, Any]) -> dict[str, Any]:
        params = _validate_create(body)
        prompt: str = params["prompt"]
        markers = {k.lower(): v for k, v in _MARKER.findall(prompt)}
        scenario = markers.get("scenario", self.config.scenario)
        if scenario not in SCENARIOS:
            raise bad_request(f"Unknown simulator scenario {scenario!r}; expected one of {list(SCENARIOS)}.")
        try:
            steps = max(1, min(1000, int(markers.get("steps", self.config.default_steps))))
            questions = max(1, min(20, int(markers.get("questions", 1))))
        except ValueError as exc:
            raise bad_request(f"Invalid simulator marker: {exc}") from None
        pr_enabled = _BOOL.get(markers.get("pr", "true").lower(), True)
        ctx = params.get("sourceContext")
        source: SourceSpec | None = None
        branch = ""
        if ctx is not None:
            name = ctx["source"]
            source = self._source_index.get(name.removeprefix("sources/"))
            if source is None:
                raise not_found(f"Could not get source {name!r}: Requested entity was not found.")
            branch = ctx.get("githubRepoContext", {}).get("startingBranch", "")
            if not branch:
                raise bad_request(
                    "sourceContext.githubRepoContext.startingBranch is required.",
                    "session.source_context.github_repo_context.starting_branch",
                )
            if branch not in source.branches and branch != source.default_branch:
                raise bad_request(
                    f"Starting branch {branch!r} does not exist in source {name!r}.",
                    "session.source_context.github_repo_context.starting_branch",
                )
        with self.lock:
            now = self.now_us()
            quota = self.config.daily_quota
            if quota is not None:
                while self._create_times and self._create_times[0] <= now - 86400 * US:
                    self._create_times.popleft()
                if len(self._create_times) >= quota:
                    raise quota_exceeded()
            self._create_times.append(now)
            self._seq += 1
            seq = self._seq
            sid = str(self._ids.randrange(10**19, 2**64))
            while sid in self.sessions:
                sid = str(self._ids.randrange(10**19, 2**64))
            title = params.get("title") or _title_from_prompt(prompt, markers.get("title") == "full")
            require = bool(params.get("requirePlanApproval", False)) or scenario == "silent_completion"
            rng = random.Random(f"session:{self.config.seed}:{seq}")
            s = Session(
                seq=seq,
                id=sid,
                prompt=prompt,
                title=title,
                source_context=ctx,
                source=source,
                starting_branch=branch,
                require_approval=require,
                automation_mode=params.get("automationMode", "AUTOMATION_MODE_UNSPECIFIED"),
                scenario=scenario,
                steps=steps,
                pr_enabled=pr_enabled,
                questions=questions,
                rng=rng,
                create_us=now,
                update_us=now,
                cursor_us=now,
                last_activity_us=now,
            )
            s.base_commit = _hex(rng, 40)
            s.files = _session_files(s)
            s.pending.extend(_initial_script(s))
            self.sessions[sid] = s
            self._order.append(seq)
            self._by_seq[seq] = sid
            self.sessions_created += 1
            return session_json(s)

    def _get(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            raise not_found()
        self._advance(s, self.now_us())
        return s

    def get_session(self, sid: str) -> dict[str, Any]:
        with self.lock:
            return session_json(self._get(sid))

    def session_exists(self, sid: str) -> Session | None:
        with self.lock:
            return self.sessions.get(sid)

    def list_sessions(self, page_size: int, token: str, filt: str) -> dict[str, Any]:
        archived = _parse_archived_filter(filt)
        with self.lock:
            end = len(self._order)
            if token:
                try:
                    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
                    if not raw.startswith("sessions:"):
                        raise ValueError(raw)
                    limit = int(raw.removeprefix("sessions:"))
                except (ValueError, UnicodeDecodeError):
                    raise bad_request("Invalid page token.", "page_token") from None
                end = bisect.bisect_right(self._order, limit)
            now = self.now_us()
            page: list[dict[str, Any]] = []
            next_token = ""
            i = end - 1
            while i >= 0:
                seq = self._order[i]
                i -= 1
                sid = self._by_seq.get(seq)
                s = self.sessions.get(sid) if sid else None
                if s is None or s.archived != archived:
                    continue
                if len(page) == page_size:
                    next_token = base64.urlsafe_b64encode(f"sessions:{seq}".encode()).decode().rstrip("=")
                    break
                self._advance(s, now)
                page.append(session_json(s))
            out: dict[str, Any] = {}
            if page:
                out["sessions"] = page
            if next_token:
                out["nextPageToken"] = next_token
            return out

    def delete_session(self, sid: str) -> None:
        with self.lock:
            s = self.sessions.pop(sid, None)
            if s is None:
                raise not_found()
            self._by_seq.pop(s.seq, None)

    def send_message(self, sid: str, body: dict[str, Any]) -> None:
        unknown = [k for k in body if k != "prompt"]
        if unknown:
            msg = f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
            raise bad_request(msg, unknown[0])
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("prompt is required.", "prompt")
        with self.lock:
            s = self._get(sid)
            now = self.now_us()
            self._add_activity(s, now, "user", {"userMessaged": {"userMessage": prompt}})
            if s.blocked == "feedback":
                s.blocked = None
                s.cursor_us = now
                self._set_state(s, "IN_PROGRESS", now)
            elif s.state in ("COMPLETED", "FAILED") and s.blocked in (None, "done", "silent"):
                s.rounds += 1
                s.blocked = None
                s.silent_completed = False
                s.cursor_us = now
                s.pending.clear()
                s.pending.extend(_resume_script(s))
                self._set_state(s, "IN_PROGRESS", now)

    def approve_plan(self, sid: str) -> None:
        with self.lock:
            s = self._get(sid)
            if s.blocked != "approval":
                return  # e.g. silently completed (Q15) or already approved: 200, no change
            now = self.now_us()
            self._add_activity(s, now, "user", {"planApproved": {"planId": s.plan_id}})
            s.plan_approved = True
            s.blocked = None
            s.approval_deadline_us = None
            s.cursor_us = now
            self._set_state(s, "IN_PROGRESS", now)

    def archive(self, sid: str, archived: bool) -> dict[str, Any]:
        with self.lock:
            s = self._get(sid)
            now = self.now_us()
            if archived and not s.archived:
                s.archived = True
                if s.state not in ("COMPLETED", "FAILED", "PAUSED") and s.blocked not in ("forced",):
                    s.paused_from = (s.state, s.blocked)
                    s.paused_at_us = now
                    s.blocked = "paused"
                    self._set_state(s, "PAUSED", now)
            elif not archived and s.archived:
                s.archived = False
                if s.blocked == "paused" and s.paused_from is not None:
                    shift = now - s.paused_at_us
                    s.cursor_us += shift
                    if s.approval_deadline_us is not None:
                        s.approval_deadline_us += shift
                    state, s.blocked = s.paused_from
                    s.paused_from = None
                    self._set_state(s, state, now)
            return session_json(s)

    def list_activities(self, sid: str, page_size: int, token: str, filt: str) -> dict[str, Any]:
        after_ns: int | None = None
        if filt.strip():
            m = re.fullmatch(r'\s*create_time\s*>\s*"([^"]+)"\s*', filt)
            if not m:
                raise bad_request(f'Invalid filter: {filt!r}. Supported: create_time>"RFC3339".', "filter")
            try:
                after_ns = parse_ts_ns(m.group(1))
            except ValueError:
                raise bad_request(f"Invalid timestamp in filter: {m.group(1)!r}.", "filter") from None
        with self.lock:
            s = self._get(sid)
            start = 0
            if after_ns is not None:
                start = bisect.bisect_right(s.activity_ns, after_ns)
            if token:
                if not token.isdigit() or len(token) > 20:
                    raise bad_request("Invalid page token.", "page_token")
                start = max(start, bisect.bisect_left(s.activity_ns, int(token)))
            page = s.activities[start : start + page_size]
            out: dict[str, Any] = {}
            if page:
                out["activities"] = page
            if start + page_size < len(s.activities):
                out["nextPageToken"] = str(s.activity_ns[start + page_size])
            return out

    def get_activity(self, sid: str, aid: str) -> dict[str, Any]:
        with self.lock:
            s = self._get(sid)
            idx = s.activity_index.get(aid)
            if idx is None:
                raise not_found()
            return s.activities[idx]

    # ----------------------------------------------------------------- control
    def internal_view(self, sid: str) -> dict[str, Any]:
        with self.lock:
            s = self._get(sid)
            return {
                "session": session_json(s),
                "scenario": s.scenario,
                "steps": s.steps,
                "prEnabled": s.pr_enabled,
                "questions": s.questions,
                "requirePlanApproval": s.require_approval,
                "automationMode": s.automation_mode,
                "blocked": s.blocked,
                "pendingSteps": [st.kind for st in s.pending],
                "activityCount": len(s.activities),
                "rounds": s.rounds,
                "silentCompleted": s.silent_completed,
                "activityRequests": s.activity_requests,
            }

    def force_state(self, sid: str, state: str, freeze: bool = True) -> dict[str, Any]:
        with self.lock:
            s = self._get(sid)
            now = self.now_us()
            if freeze:
                s.pending.clear()
                s.blocked = "forced"
            self._set_state(s, state, now)
            return session_json(s)

    def live_count(self) -> int:
        return len(self.sessions)

    # --------------------------------------------------------------- lifecycle
    def _set_state(self, s: Session, state: str, t: int) -> None:
        s.state = state
        s.update_us = max(s.update_us, t)

    def _add_activity(
        self,
        s: Session,
        t: int,
        originator: str,
        member: dict[str, Any] | None,
        artifacts: list[dict[str, Any]] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        t = max(t, s.last_activity_us + 1)  # strictly increasing create times
        s.last_activity_us = t
        aid = _hex(s.rng, 32)
        act: dict[str, Any] = {"name": f"{s.name}/activities/{aid}", "id": aid}
        if description:
            act["description"] = description
        act["createTime"] = format_ts(t)
        act["originator"] = originator
        if member:
            act.update(member)
        if artifacts:
            act["artifacts"] = artifacts
        s.activity_index[aid] = len(s.activities)
        s.activities.append(act)
        s.activity_ns.append(t * 1000)
        return act

    def _advance(self, s: Session, now: int) -> None:
        for _ in range(100_000):  # bounded: each iteration consumes a step or returns
            if s.blocked is not None:
                dl = s.approval_deadline_us
                if s.blocked == "approval" and dl is not None and now >= dl:
                    s.blocked = "silent"
                    s.silent_completed = True
                    s.pending.clear()
                    s.approval_deadline_us = None
                    self._set_state(s, "COMPLETED", dl)
                    continue
                return
            if not s.pending:
                return
            step = s.pending[0]
            t = s.cursor_us + step.delay_us
            if t > now:
                return
            s.pending.popleft()
            s.cursor_us = t
            self._apply(s, step, t)

    def _changeset(self, s: Session, final: bool) -> dict[str, Any]:
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

    def _add_file(self, s: Session, idx: int) -> str:
        while idx >= len(s.files):
            s.files.append(f"src/app/module_{len(s.files)}.py")
        path = s.files[idx]
        s.patch_parts.append(file_diff(s.rng, path, _topic(s), s.rounds))
        return path

    def _apply(self, s: Session, step: Step, t: int) -> None:
        kind = step.kind
        data = step.data
        if kind == "state":
            self._set_state(s, data["state"], t)
        elif kind == "system":
            self._add_activity(s, t, "system", None, description=data["description"])
        elif kind == "plan":
            self._plan(s, t)
        elif kind == "approve":
            self._add_activity(s, t, "user", {"planApproved": {"planId": s.plan_id}})
            s.plan_approved = True
            self._set_state(s, "IN_PROGRESS", t)
        elif kind == "progress":
            self._progress(s, t, data)
        elif kind == "question":
            q = data.get("text", "Should I also update the documentation for this change?")
            self._add_activity(s, t, "agent", {"agentMessaged": {"agentMessage": q}})
            s.blocked = "feedback"
            self._set_state(s, "AWAITING_USER_FEEDBACK", t)
        elif kind == "unknown":
            self._set_state(s, UNKNOWN_STATE, t)
            self._add_activity(
                s, t, "agent", {"environmentPrepared": {"image": "jules-base:2026.1", "setupSeconds": 42}}
            )
        elif kind == "stuck":
            s.pending.clear()
            s.blocked = "stuck"
            self._set_state(s, "IN_PROGRESS", t)
        elif kind == "fail":
            self._add_activity(s, t, "agent", {"sessionFailed": {"reason": FAILURE_REASON}})
            s.pending.clear()
            s.blocked = "done"
            self._set_state(s, "FAILED", t)
        elif kind == "complete":
            self._complete(s, t)

    def _plan(self, s: Session, t: int) -> None:
        s.plan_id = _hex(s.rng, 32)
        n = 3 + s.rng.randrange(3)
        titles = [
            "Explore the repository and understand the relevant code.",
            *(f"Modify `{f}` to implement the requested change." for f in s.files[: n - 2]),
            "Run the tests to verify the change.",
            "Submit the change.",
        ][:n]
        steps = []
        for i, title in enumerate(titles):
            st: dict[str, Any] = {"id": _hex(s.rng, 32), "title": title}
            if i:
                st["index"] = i
            steps.append(st)
        plan = {"id": s.plan_id, "steps": steps, "createTime": format_ts(t)}
        self._add_activity(s, t, "agent", {"planGenerated": {"plan": plan}})
        if s.require_approval and not s.plan_approved:
            s.blocked = "approval"
            timeout = self.config.approval_timeout
            s.approval_deadline_us = None if timeout is None else t + int(timeout * US)
            self._set_state(s, "AWAITING_PLAN_APPROVAL", t)

    def _progress(self, s: Session, t: int, data: dict[str, Any]) -> None:
        kind = data["kind"]
        self._set_state(s, "IN_PROGRESS", t)
        if kind == "bash":
            cmd, out, code = data["command"], data["output"], data.get("exit_code", 0)
            desc = f"Command: \n{cmd}\nOutput: {out}\nExit Code: {code}"
            arts = None
            if s.scenario == "bash_output":
                bash: dict[str, Any] = {"command": cmd, "output": out}
                if code:
                    bash["exitCode"] = code
                arts = [{"bashOutput": bash}]
            self._add_activity(
                s, t, "agent", {"progressUpdated": {"title": "Ran bash command", "description": desc}}, arts
            )
        elif kind == "edit":
            path = self._add_file(s, data["file"])
            title = f"I have updated `{path}`."
            self._add_activity(
                s, t, "agent", {"progressUpdated": {"title": title}}, [self._changeset(s, False)]
            )
        elif kind == "media":
            member = {
                "progressUpdated": {
                    "title": "Frontend verification",
                    "description": "Agent provided UI verification.",
                }
            }
            self._add_activity(s, t, "agent", member, [{"media": {"data": PNG_1PX, "mimeType": "image/png"}}])
        elif kind == "odd":
            member = {"progressUpdated": {"title": "Recorded terminal session"}}
            arts = [{"terminalRecording": {"format": "asciicast-v2", "durationSeconds": 12}}]
            self._add_activity(s, t, "agent", member, arts)
        else:
            desc = "Reviewed the change against the plan; the implementation matches the request."
            self._add_activity(
                s, t, "agent", {"progressUpdated": {"title": "Code reviewed", "description": desc}}
            )

    def _complete(self, s: Session, t: int) -> None:
        if s.scenario == "no_changes":  # Jules looked, found nothing to change: no change set, no outputs
            self._add_activity(s, t, "agent", {"sessionCompleted": {}})
            s.blocked = "done"
            s.pending.clear()
            s.outputs = []
            self._set_state(s, "COMPLETED", t)
            return
        for i in range(len(s.files)):  # the final patch touches every planned file
            if not any(f" b/{s.files[i]}\n" in p for p in s.patch_parts):
                self._add_file(s, i)
        final = self._changeset(s, True)
        self._add_activity(s, t, "agent", {"sessionCompleted": {}}, [final])
        s.blocked = "done"
        s.pending.clear()
        outputs: list[dict[str, Any]] = []
        if s.scenario != "no_outputs":
            if s.automation_mode == "AUTO_CREATE_PR" and s.pr_enabled and s.source is not None:
                if s.pr is None:
                    src = s.source
                    s.pr = {
                        "url": f"https://github.com/{src.owner}/{src.repo}/pull/{1 + s.rng.randrange(999)}",
                        "title": s.title[:200],
                        "description": f"This change implements: {s.title[:500]}\n\n"
                        f"PR created automatically by Jules for task "
                        f"[{s.id}](https://jules.google.com/task/{s.id}) started by the simulator.",
                        "baseRef": s.starting_branch,
                        "headRef": f"jules-{s.id}-{_hex(s.rng, 8)}",
                    }
                outputs.append({"pullRequest": s.pr})
            outputs.append(final)
        s.outputs = outputs
        self._set_state(s, "COMPLETED", t)


# ------------------------------------------------------------------ helpers
def session_json(s: Session) -> dict[str, Any]:
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


_SESSION_FIELDS = {
    "name",
    "id",
    "prompt",
    "sourceContext",
    "title",
    "requirePlanApproval",
    "automationMode",
    "createTime",
    "updateTime",
    "state",
    "url",
    "outputs",
    "archived",
}
_CTX_FIELDS = {"source", "githubRepoContext", "workingBranch", "environmentVariablesEnabled"}


def _unknown(name: str) -> ApiError:
    return bad_request(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.', name)


def _validate_create(body: dict[str, Any]) -> dict[str, Any]:
    for k in body:
        if k not in _SESSION_FIELDS:
            raise _unknown(k)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("Session prompt is required.", "session.prompt")
    out: dict[str, Any] = {"prompt": prompt}
    title = body.get("title")
    if title is not None:
        if not isinstance(title, str):
            raise bad_request("Invalid value for title: expected a string.", "session.title")
        out["title"] = title
    rpa = body.get("requirePlanApproval")
    if rpa is not None:
        if not isinstance(rpa, bool):
            raise bad_request(
                "Invalid value for requirePlanApproval: expected a boolean.", "session.require_plan_approval"
            )
        out["requirePlanApproval"] = rpa
    mode = body.get("automationMode")
    if mode is not None:
        if mode not in AUTOMATION_MODES:
            raise bad_request(
                "Invalid value at 'session.automation_mode' "
                f'(type.googleapis.com/google.labs.jules.v1alpha.AutomationMode), "{mode}"',
                "session.automation_mode",
            )
        out["automationMode"] = mode
    ctx = body.get("sourceContext")
    if ctx is not None:
        if not isinstance(ctx, dict):
            raise bad_request(
                "Invalid value for sourceContext: expected an object.", "session.source_context"
            )
        for k in ctx:
            if k not in _CTX_FIELDS:
                raise _unknown(f"sourceContext.{k}")
        src = ctx.get("source")
        if not isinstance(src, str) or not src:
            raise bad_request("sourceContext.source is required.", "session.source_context.source")
        clean: dict[str, Any] = {"source": src if src.startswith("sources/") else f"sources/{src}"}
        grc = ctx.get("githubRepoContext")
        if grc is not None:
            if not isinstance(grc, dict):
                raise bad_request(
                    "Invalid value for githubRepoContext.", "session.source_context.github_repo_context"
                )
            for k in grc:
                if k != "startingBranch":
                    raise _unknown(f"sourceContext.githubRepoContext.{k}")
            branch = grc.get("startingBranch")
            if branch is not None and not isinstance(branch, str):
                raise bad_request(
                    "Invalid value for startingBranch.", "session.source_context.github_repo_context"
                )
            clean["githubRepoContext"] = {"startingBranch": branch} if branch else {}
        wb = ctx.get("workingBranch")
        if isinstance(wb, str) and wb:
            clean["workingBranch"] = wb
        if ctx.get("environmentVariablesEnabled") is True:
            clean["environmentVariablesEnabled"] = True
        out["sourceContext"] = clean
    return out


def _parse_archived_filter(filt: str) -> bool:
    if not filt.strip():
        return False
    m = re.fullmatch(r"\s*archived\s*=\s*(true|false)\s*", filt, re.IGNORECASE)
    if not m:
        raise bad_request(f"Invalid filter: {filt!r}. Supported: archived = true|false.", "filter")
    return m.group(1).lower() == "true"


def _parse_source_filter(filt: str) -> set[str]:
    wanted: set[str] = set()
    for part in re.split(r"\s+OR\s+", filt.strip()):
        m = re.fullmatch(r'\s*name\s*=\s*"?(sources/[^"\s]+)"?\s*', part)
        if not m:
            raise bad_request(
                f"Invalid filter: {filt!r}. Supported: name=sources/x OR name=sources/y.", "filter"
            )
        wanted.add(m.group(1))
    return wanted


def _strip_markers(prompt: str) -> str:
    return " ".join(_MARKER.sub("", prompt).split())


def _title_from_prompt(prompt: str, full: bool) -> str:
    if full:
        return prompt
    text = _strip_markers(prompt.strip().splitlines()[0] if prompt.strip() else "")
    if not text:
        return "Untitled session"
    if len(text) > 80:
        text = text[:77].rsplit(" ", 1)[0] + "..."
    return text[0].upper() + text[1:]


def _topic(s: Session) -> str:
    words = re.findall(r"[A-Za-z]+", _strip_markers(s.prompt).lower())
    return "_".join(words[:3]) or "change"


def _commit_message(s: Session) -> str:
    first = _strip_markers(s.title) or "Apply requested change"
    suffix = f" (follow-up {s.rounds - 1})" if s.rounds > 1 else ""
    return (
        f"feat: {first[:60]}{suffix}\n\nThis commit implements the requested change in {len(s.files)} files."
    )


def _session_files(s: Session) -> list[str]:
    topic = _topic(s)
    mod = topic.split("_")[0] or "feature"
    return [f"src/app/{mod}.py", f"tests/test_{mod}.py", "README.md", f"docs/{topic}.md"][
        : 3 + s.rng.randrange(2)
    ]


def _delay(s: Session, lo: float, hi: float) -> int:
    return int((lo + (hi - lo) * s.rng.random()) * US)


def _progress_plan(s: Session, n: int, first_file: int) -> list[Step]:
    steps: list[Step] = []
    edit = first_file
    for i in range(n):
        data: dict[str, Any]
        if i == 0:
            data = {
                "kind": "bash",
                "command": "pip install -e .",
                "output": "Successfully installed app-0.1.0",
            }
        elif n >= 4 and i == n - 1:
            data = {"kind": "review"}
        elif n >= 5 and i == n - 2:
            data = {"kind": "media"}
        elif n >= 6 and i == n - 3:
            data = {"kind": "bash", "command": "pytest -q", "output": "1 failed, 3 passed", "exit_code": 1}
        else:
            data = {"kind": "edit", "file": edit}
            edit += 1
        steps.append(Step(_delay(s, 10, 25), "progress", data))
    return steps


def _initial_script(s: Session) -> list[Step]:
    script: list[Step] = []
    if s.scenario == "unknown_state":
        script.append(Step(_delay(s, 0.5, 1.0), "system", {"description": "Session started"}))
    script.append(Step(_delay(s, 2, 4), "state", {"state": "PLANNING"}))
    script.append(Step(_delay(s, 10, 15), "plan"))
    if not s.require_approval:
        script.append(Step(_delay(s, 1.5, 2.5), "approve"))
    progress = _progress_plan(s, s.steps, 0)
    if s.scenario == "user_feedback":
        k = max(1, len(progress) // 2)
        questions = [
            Step(_delay(s, 5, 10), "question", {"text": f"Question {q + 1}: should I also update the docs?"})
            for q in range(s.questions)
        ]
        # spread the questions over the work
        merged: list[Step] = []
        for i, p in enumerate(progress):
            merged.append(p)
            if questions and (i + 1) % k == 0:
                merged.append(questions.pop(0))
        merged.extend(questions)
        progress = merged
    elif s.scenario == "unknown_state":
        progress.insert(1, Step(_delay(s, 5, 10), "unknown"))
        progress.insert(2, Step(_delay(s, 5, 10), "progress", {"kind": "odd"}))
    elif s.scenario == "stuck":
        progress = [*progress[: max(1, len(progress) // 2)], Step(_delay(s, 5, 10), "stuck")]
    elif s.scenario == "failure":
        progress = [*progress[: max(1, len(progress) // 2)], Step(_delay(s, 10, 20), "fail")]
    elif s.scenario == "no_changes":
        progress = [p for p in progress if p.data.get("kind") != "edit"] or progress[:1]
    script.extend(progress)
    script.append(Step(_delay(s, 15, 25), "complete"))
    return script


def _resume_script(s: Session) -> list[Step]:
    s.files.append(f"docs/follow_up_{s.rounds}.md")
    return [
        Step(_delay(s, 5, 10), "progress", {"kind": "bash", "command": "git status", "output": "clean"}),
        Step(_delay(s, 10, 20), "progress", {"kind": "edit", "file": len(s.files) - 1}),
        Step(_delay(s, 10, 20), "complete"),
    ]
