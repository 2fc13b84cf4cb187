"""The session state machine: scripted steps played back lazily, and the transitions people cause.

Nothing runs in the background: every read first *advances* the session to the current simulated time by
applying the scripted steps whose time has come (:meth:`SessionLifecycle.advance`). A session blocked on a
person (a plan to approve, a question to answer), paused (archived), stuck or forced stays put until the
matching transition below moves it on. An idle session costs nothing and the result only depends on the
seed and the simulated clock. What each step *writes* is :mod:`.agent`'s job; which steps a scenario plays
is :mod:`.scenarios`' job.
"""

from __future__ import annotations

from airflow_provider_jules.simulator import agent
from airflow_provider_jules.simulator.clock import US
from airflow_provider_jules.simulator.config import SimulatorConfig
from airflow_provider_jules.simulator.scenarios import resume_script
from airflow_provider_jules.simulator.session import Session, Step

UNKNOWN_STATE = "AWAITING_SOMETHING"  # a state the provider does not know (scenario ``unknown_state``)
_FINISHED = ("COMPLETED", "FAILED")


class SessionLifecycle:
    """Moves sessions through their states; the caller (the engine) holds the lock."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config

    # ------------------------------------------------------------ time passes
    def advance(self, s: Session, now: int) -> None:
        """Apply every scripted step due by ``now``; a plan left unapproved past its deadline completes."""
        for _ in range(100_000):  # bounded: each iteration consumes a step or returns
            if s.blocked is not None:
                dl = s.approval_deadline_us
                if s.blocked == "approval" and dl is not None and now >= dl:
                    self._complete_silently(s, dl)
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

    def _complete_silently(self, s: Session, t: int) -> None:
        """Quirk Q15: a plan awaiting approval past ``approval_timeout`` completes, without outputs."""
        s.blocked = "silent"
        s.silent_completed = True
        s.pending.clear()
        s.approval_deadline_us = None
        s.set_state("COMPLETED", t)

    def _apply(self, s: Session, step: Step, t: int) -> None:
        kind = step.kind
        data = step.data
        if kind == "state":
            s.set_state(data["state"], t)
        elif kind == "system":
            s.add_activity(t, "system", None, description=data["description"])
        elif kind == "plan":
            self._plan(s, t)
        elif kind == "approve":
            agent.write_plan_approved(s, t)
            s.plan_approved = True
            s.set_state("IN_PROGRESS", t)
        elif kind == "progress":
            s.set_state("IN_PROGRESS", t)
            agent.write_progress(s, t, data)
        elif kind == "question":
            agent.write_question(s, t, data.get("text", agent.DEFAULT_QUESTION))
            s.blocked = "feedback"
            s.set_state("AWAITING_USER_FEEDBACK", t)
        elif kind == "unknown":
            s.set_state(UNKNOWN_STATE, t)
            agent.write_environment_prepared(s, t)
        elif kind == "stuck":
            s.pending.clear()
            s.blocked = "stuck"
            s.set_state("IN_PROGRESS", t)
        elif kind == "fail":
            agent.write_failure(s, t)
            self._finish(s, "FAILED", t)
        elif kind == "complete":
            outputs = agent.write_completion(s, t)
            self._finish(s, "COMPLETED", t)
            s.outputs = outputs

    def _plan(self, s: Session, t: int) -> None:
        agent.write_plan(s, t)
        if s.require_approval and not s.plan_approved:
            s.blocked = "approval"
            timeout = self.config.approval_timeout
            s.approval_deadline_us = None if timeout is None else t + int(timeout * US)
            s.set_state("AWAITING_PLAN_APPROVAL", t)

    @staticmethod
    def _finish(s: Session, state: str, t: int) -> None:
        s.blocked = "done"
        s.pending.clear()
        s.set_state(state, t)

    # ------------------------------------------------------------ people act
    def receive_message(self, s: Session, prompt: str, now: int) -> None:
        """A message answers a pending question, or starts a follow-up round on a finished session."""
        s.add_activity(now, "user", {"userMessaged": {"userMessage": prompt}})
        if s.blocked == "feedback":
            s.blocked = None
            s.cursor_us = now
            s.set_state("IN_PROGRESS", now)
        elif s.state in _FINISHED and s.blocked in (None, "done", "silent"):
            s.rounds += 1
            s.blocked = None
            s.silent_completed = False
            s.cursor_us = now
            s.pending.clear()
            s.pending.extend(resume_script(s))
            s.set_state("IN_PROGRESS", now)

    def approve_plan(self, s: Session, now: int) -> None:
        """Approve the pending plan; anything else (already approved, silently completed) changes nothing."""
        if s.blocked != "approval":
            return
        agent.write_plan_approved(s, now)
        s.plan_approved = True
        s.blocked = None
        s.approval_deadline_us = None
        s.cursor_us = now
        s.set_state("IN_PROGRESS", now)

    def archive(self, s: Session, archived: bool, now: int) -> None:
        """Archiving pauses a running session; unarchiving resumes it where it was, its clock shifted."""
        if archived and not s.archived:
            s.archived = True
            if s.state not in (*_FINISHED, "PAUSED") and s.blocked not in ("forced",):
                s.paused_from = (s.state, s.blocked)
                s.paused_at_us = now
                s.blocked = "paused"
                s.set_state("PAUSED", now)
        elif not archived and s.archived:
            s.archived = False
            if s.blocked == "paused" and s.paused_from is not None:
                shift = now - s.paused_at_us
                s.cursor_us += shift
                if s.approval_deadline_us is not None:
                    s.approval_deadline_us += shift
                state, s.blocked = s.paused_from
                s.paused_from = None
                s.set_state(state, now)

    @staticmethod
    def force_state(s: Session, state: str, freeze: bool, now: int) -> None:
        """The control API's override: set ``state`` (and, with ``freeze``, stop the script there)."""
        if freeze:
            s.pending.clear()
            s.blocked = "forced"
        s.set_state(state, now)
