"""The simulator's store and its Python API: sessions and sources, behind one lock.

:class:`Engine` answers each API call: it checks the request (:mod:`.validation`), finds or creates the
session, lets the state machine (:mod:`.lifecycle`) bring it up to the simulated time, and answers the
session's JSON (:mod:`.session`). Scenarios (:mod:`.scenarios`) decide what a new session will do.
"""

from __future__ import annotations

import bisect
import collections
import random
import threading
from typing import Any

from airflow_provider_jules.simulator import validation
from airflow_provider_jules.simulator.catalog import default_sources, random_hex, source_to_json
from airflow_provider_jules.simulator.clock import US, Clock
from airflow_provider_jules.simulator.config import SimulatorConfig, SourceSpec
from airflow_provider_jules.simulator.errors import bad_request, not_found, quota_exceeded
from airflow_provider_jules.simulator.lifecycle import SessionLifecycle
from airflow_provider_jules.simulator.scenarios import (
    choose_scenario,
    initial_script,
    session_files,
    title_from_prompt,
)
from airflow_provider_jules.simulator.session import Session, internal_json, session_json

_DAY_US = 86400 * US


class Engine:
    """All simulator state. Thread-safe: every public method takes the engine lock."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = Clock(config.speed, config.start_time)
        self.lifecycle = SessionLifecycle(config)
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

    def live_count(self) -> int:
        return len(self.sessions)

    # ----------------------------------------------------------------- sources
    def list_sources(self, page_size: int, token: str, filt: str) -> dict[str, Any]:
        ids = self._source_ids
        if filt.strip():
            wanted = validation.parse_source_filter(filt)
            ids = [i for i in ids if f"sources/{i}" in wanted]
        start = 0
        if token:
            if token not in ids:
                raise validation.invalid_page_token()
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

    def _resolve_source(self, ctx: dict[str, Any] | None) -> tuple[SourceSpec | None, str]:
        """The source and starting branch a create names (404 for an unknown source, 400 for a branch)."""
        if ctx is None:
            return None, ""
        name = ctx["source"]
        source = self._source_index.get(name.removeprefix("sources/"))
        if source is None:
            raise not_found(f"Could not get source {name!r}: Requested entity was not found.")
        branch: str = ctx.get("githubRepoContext", {}).get("startingBranch", "")
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
        return source, branch

    # ---------------------------------------------------------------- sessions
    def create_session(self, body: dict[str, Any]) -> dict[str, Any]:
        params = validation.validate_create(body)
        prompt: str = params["prompt"]
        choice = choose_scenario(prompt, self.config)
        ctx = params.get("sourceContext")
        source, branch = self._resolve_source(ctx)
        with self.lock:
            now = self.now_us()
            self._count_against_quota(now)
            self._seq += 1
            seq = self._seq
            sid = self._new_id()
            rng = random.Random(f"session:{self.config.seed}:{seq}")
            s = Session(
                seq=seq,
                id=sid,
                prompt=prompt,
                title=params.get("title") or title_from_prompt(prompt, choice.full_title),
                source_context=ctx,
                source=source,
                starting_branch=branch,
                require_approval=bool(params.get("requirePlanApproval", False))
                or choice.scenario == "silent_completion",
                automation_mode=params.get("automationMode", "AUTOMATION_MODE_UNSPECIFIED"),
                scenario=choice.scenario,
                steps=choice.steps,
                pr_enabled=choice.pr_enabled,
                pr_host=choice.pr_host,
                questions=choice.questions,
                media=choice.media,
                rng=rng,
                create_us=now,
                update_us=now,
                cursor_us=now,
                last_activity_us=now,
            )
            s.base_commit = random_hex(rng, 40)
            s.files = session_files(s)
            s.pending.extend(initial_script(s))
            self.sessions[sid] = s
            self._order.append(seq)
            self._by_seq[seq] = sid
            self.sessions_created += 1
            return session_json(s)

    def _count_against_quota(self, now: int) -> None:
        """Quirk: at most ``daily_quota`` creates in any 24 simulated hours (400 FAILED_PRECONDITION)."""
        quota = self.config.daily_quota
        if quota is not None:
            while self._create_times and self._create_times[0] <= now - _DAY_US:
                self._create_times.popleft()
            if len(self._create_times) >= quota:
                raise quota_exceeded()
        self._create_times.append(now)

    def _new_id(self) -> str:
        sid = str(self._ids.randrange(10**19, 2**64))
        while sid in self.sessions:
            sid = str(self._ids.randrange(10**19, 2**64))
        return sid

    def _get(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            raise not_found()
        self.lifecycle.advance(s, self.now_us())
        return s

    def get_session(self, sid: str) -> dict[str, Any]:
        with self.lock:
            return session_json(self._get(sid))

    def session_exists(self, sid: str) -> Session | None:
        with self.lock:
            return self.sessions.get(sid)

    def list_sessions(self, page_size: int, token: str, filt: str) -> dict[str, Any]:
        archived = validation.parse_archived_filter(filt)
        with self.lock:
            end = len(self._order)
            if token:
                end = bisect.bisect_right(self._order, validation.parse_sessions_page_token(token))
            now = self.now_us()
            page: list[dict[str, Any]] = []
            next_token = ""
            for i in range(end - 1, -1, -1):  # newest first
                seq = self._order[i]
                sid = self._by_seq.get(seq)
                s = self.sessions.get(sid) if sid else None
                if s is None or s.archived != archived:
                    continue
                if len(page) == page_size:
                    next_token = validation.sessions_page_token(seq)
                    break
                self.lifecycle.advance(s, now)
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
        prompt = validation.validate_message(body)
        with self.lock:
            s = self._get(sid)
            self.lifecycle.receive_message(s, prompt, self.now_us())

    def approve_plan(self, sid: str) -> None:
        with self.lock:
            s = self._get(sid)
            self.lifecycle.approve_plan(s, self.now_us())

    def archive(self, sid: str, archived: bool) -> dict[str, Any]:
        with self.lock:
            s = self._get(sid)
            self.lifecycle.archive(s, archived, self.now_us())
            return session_json(s)

    # ---------------------------------------------------------------- activities
    def list_activities(self, sid: str, page_size: int, token: str, filt: str) -> dict[str, Any]:
        after_ns = validation.parse_activity_filter(filt)
        with self.lock:
            s = self._get(sid)
            start = 0
            if after_ns is not None:
                start = bisect.bisect_right(s.activity_ns, after_ns)
            if token:
                first_ns = validation.parse_activities_page_token(token)
                start = max(start, bisect.bisect_left(s.activity_ns, first_ns))
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
            return internal_json(self._get(sid))

    def force_state(self, sid: str, state: str, freeze: bool = True) -> dict[str, Any]:
        with self.lock:
            s = self._get(sid)
            self.lifecycle.force_state(s, state, freeze, self.now_us())
            return session_json(s)
