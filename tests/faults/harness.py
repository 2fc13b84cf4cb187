"""Fault-injection harness: drives JulesCreateSessionOperator like Airflow would, against the simulator.

One *run* is one task instance (unique dag_id/run_id, so a unique title marker). The harness plays the
parts of Airflow around the operator:

* the worker: ``execute(context)`` on a fresh operator instance per try; ``TaskDeferred`` hands over to
  the triggerer; the resume (``execute_complete``) runs on another fresh instance, with the event payload
  round-tripped through JSON;
* the triggerer: the trigger is always re-created from ``serialize()`` (as a triggerer does), and a
  *restart* cancels it mid-wait and re-creates it from the same serialized kwargs;
* the scheduler's retries: an exception other than ``AirflowFailException`` and ``JulesSessionError``
  (both final here; the first may carry the second as its cause: an outcome no retry can change) starts
  the next try with ``try_number + 1``; a *worker crash* is a ``BaseException``
  raised from inside the operator (after create, mid-wait or on resume) and also leads to a retry;
* ``task_state_store`` (Airflow >= 3.3: a dict that survives retries) for half the runs; the other half
  runs without it (Airflow 3.1: the operator reconciles by the title marker alone).

Then it checks the run against the simulator's ground truth: sessions created for the marker (exactly
one, or one more per session that had FAILED before the retry that replaced it), the outcome expected
for the scenario, every activity of the followed session streamed into the log (``[Jules] ...`` lines,
duplicates after a restart allowed, omissions not) and exactly one trigger event per trigger lifetime.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_jules._compat import AirflowFailException, TaskDeferred
from airflow_provider_jules.client.models import activity_kind
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator, JulesSessionError
from airflow_provider_jules.results import format_activity
from airflow_provider_jules.simulator import FaultConfig, FaultRule
from airflow_provider_jules.triggers.jules import JulesSessionTrigger

Json = dict[str, Any]

#: Tries per task instance (retries=7): every retry-inducing fault of a schedule consumes at most one.
MAX_TRIES = 8
#: Deferrals per try (the reply scenario defers once per question, plus the first wait).
MAX_DEFERRALS = 10
#: Wall-clock cap of one trigger lifetime: past it the trigger is counted as hung.
TRIGGER_HANG_SECONDS = 20.0
POLL_INTERVAL = 0.02
#: Real seconds for the operator's absolute deadline in scenarios that are not about the deadline.
GENEROUS_TIMEOUT = 15.0

#: scenario -> (prompt markers, operator kwargs, expected final status, expected outcome)
SCENARIOS: dict[str, tuple[str, Json, str, str]] = {
    "happy": ("sim:scenario=happy sim:steps=3", {}, "success", "completed"),
    "no_changes": ("sim:scenario=no_changes sim:steps=3", {}, "success", "completed_without_changes"),
    "reply": (
        "sim:scenario=user_feedback sim:steps=2 sim:questions=2",
        {"on_user_feedback": "reply", "auto_reply": "Yes, update the docs too."},
        "success",
        "completed",
    ),
    "failure": ("sim:scenario=failure sim:steps=3", {}, "failed", "failed"),
    "feedback_fail": (
        "sim:scenario=user_feedback sim:steps=2",
        {"on_user_feedback": "fail"},
        "failed",
        "awaiting_user_feedback",
    ),
    "stall": ("sim:scenario=stuck sim:steps=2", {"stall_timeout": 0.25}, "failed", "timed_out"),
    "deadline": ("sim:scenario=stuck sim:steps=2", {"timeout": 0.5}, "failed", "timed_out"),
    "plan_not_approved": (
        "sim:scenario=silent_completion sim:steps=2",
        {"require_plan_approval": True},
        "failed",
        "plan_not_approved",
    ),
}
SCENARIO_WEIGHTS = {
    "happy": 5,
    "no_changes": 2,
    "reply": 3,
    "failure": 2,
    "feedback_fail": 1,
    "stall": 1,
    "deadline": 1,
    "plan_not_approved": 1,
}
#: Routes the operator and trigger call in these scenarios.
IDEMPOTENT_ROUTES = ("get_session", "list_activities", "list_sessions", "get_source")
RATE_LIMITED_ROUTES = (*IDEMPOTENT_ROUTES, "create_session", "send_message")


class WorkerCrash(BaseException):
    """The worker process died (OOM, node lost): nothing in the operator may catch it."""


@dataclass
class Plan:
    """The fault schedule of one run (all choices drawn from one seeded RNG)."""

    index: int
    scenario: str
    deferrable: bool
    with_store: bool
    rules: list[FaultRule]
    transient_404_requests: int = 0
    ambiguous: str | None = None  # stored | lost | stored_hidden
    crash: str | None = None  # after_create | mid_wait | on_resume
    crash_after_polls: int = 0
    restarts: list[float] = field(default_factory=list)  # seconds into each trigger lifetime
    poll_error_burst: bool = False
    send_503: bool = False
    adopt: bool = True

    def mix(self) -> list[str]:
        """Names of the fault kinds in this schedule (for the summary of the mix)."""
        kinds = [f"scenario:{self.scenario}", "deferrable" if self.deferrable else "in_worker"]
        kinds.append("store" if self.with_store else "no_store")
        for rule in self.rules:
            if rule.status == 429:
                kinds.append("429+retry_after")
            elif rule.status is None:
                kinds.append("latency")
        kinds += [
            f"5xx:{r.route}" for r in self.rules if (r.status or 0) >= 500 and r.route in IDEMPOTENT_ROUTES
        ]
        if self.transient_404_requests:
            kinds.append("transient_404")
        if self.ambiguous:
            kinds.append(f"ambiguous_create:{self.ambiguous}")
        if self.crash:
            kinds.append(f"worker_crash:{self.crash}")
        if self.restarts:
            kinds.append("triggerer_restart")
        if self.poll_error_burst:
            kinds.append("polling_errors_event")
        if self.send_503:
            kinds.append("send_message_503")
        return kinds


def make_plan(index: int, rng: random.Random) -> Plan:
    scenario = rng.choices(list(SCENARIO_WEIGHTS), weights=list(SCENARIO_WEIGHTS.values()))[0]
    deferrable = rng.random() < 0.6
    with_store = rng.random() < 0.5
    plan = Plan(index=index, scenario=scenario, deferrable=deferrable, with_store=with_store, rules=[])
    ambiguous = rng.choices([None, "stored", "lost", "stored_hidden"], weights=[50, 25, 13, 12])[0]
    plan.ambiguous = ambiguous
    rules: list[FaultRule] = []
    if ambiguous == "stored":  # stored, then 500: the session exists, the caller cannot know
        rules.append(FaultRule(route="create_session", status=500, count=1, store=True))
    elif ambiguous == "lost":  # 503 before storing: nothing exists, the retry must create it
        rules.append(FaultRule(route="create_session", status=503, count=1))
    elif ambiguous == "stored_hidden":  # stored, and the reconciliation listing fails too: the retry adopts
        rules.append(FaultRule(route="create_session", status=502, count=1, store=True))
        rules.append(FaultRule(route="list_sessions", status=503, count=6))
    for _ in range(rng.randint(0, 3)):  # 429 RESOURCE_EXHAUSTED with Retry-After (1-2 s, time-scaled)
        rules.append(
            FaultRule(
                route=rng.choice(RATE_LIMITED_ROUTES),
                status=429,
                count=rng.randint(1, 3),
                skip=rng.randint(0, 4),
                probability=rng.choice([1.0, 0.6]),
                retry_after=float(rng.choice([1, 2])),
            )
        )
    for _ in range(rng.randint(0, 2)):  # 5xx on idempotent routes (the client retries them)
        rules.append(
            FaultRule(
                route=rng.choice(IDEMPOTENT_ROUTES),
                status=rng.choice([500, 502, 503, 504]),
                count=rng.randint(1, 4),
                skip=rng.randint(0, 6),
            )
        )
    if rng.random() < 0.35:  # slow answers, not failing
        rules.append(
            FaultRule(
                route=rng.choice(RATE_LIMITED_ROUTES),
                status=None,
                count=rng.randint(1, 6),
                probability=0.7,
                latency_ms=rng.uniform(5, 40),
            )
        )
    if rng.random() < 0.1:  # a burst long enough to exhaust max_poll_errors: error event, then a retry
        plan.poll_error_burst = True
        rules.insert(0, FaultRule(route="get_session", status=503, count=6 * 4, skip=rng.randint(1, 6)))
    if scenario == "reply" and rng.random() < 0.25:  # a reply refused before delivery: the retry replies
        plan.send_503 = True
        rules.insert(0, FaultRule(route="send_message", status=503, count=1))
    plan.rules = rules
    plan.transient_404_requests = rng.choice([0, 0, 0, 1, 2, 3])
    plan.crash = rng.choices(
        [None, "after_create", "mid_wait" if not deferrable else "on_resume"], weights=[70, 15, 15]
    )[0]
    plan.crash_after_polls = rng.randint(1, 6)
    if deferrable:
        plan.restarts = [rng.uniform(0.01, 0.12) for _ in range(rng.choice([0, 0, 1, 1, 2]))]
    return plan


class FakeTI:
    """What the operator reads from ``context["ti"]``; records XCom pushes."""

    def __init__(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.map_index = map_index
        self.try_number = 1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class FakeStore:
    """``task_state_store`` of Airflow >= 3.3: per task instance, survives retries."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.data[key] = value


@dataclass
class RunReport:
    plan: Plan
    marker: str = ""
    tries: int = 0
    final_status: str = ""  # success | failed | fatal | retries_exhausted | hung
    final_outcome: str | None = None
    final_session: str | None = None
    sessions: list[Json] = field(default_factory=list)  # ground truth for the marker, oldest first
    duplicates: int = 0
    justified_new_sessions: int = 0
    wrong_outcome: bool = False
    lost_events: int = 0
    trigger_lifetimes: int = 0
    restarts_done: int = 0
    problems: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)

    def describe(self) -> str:
        p = self.plan
        rules = [
            {k: v for k, v in vars(r).items() if v not in (None, 0, 0.0, False, 1.0) or k == "route"}
            for r in p.rules
        ]
        return (
            f"run {p.index}: scenario={p.scenario} deferrable={p.deferrable} store={p.with_store} "
            f"adopt={p.adopt} ambiguous={p.ambiguous} crash={p.crash}@{p.crash_after_polls} "
            f"restarts={len(p.restarts)} transient_404={p.transient_404_requests} rules={rules} | "
            f"tries={self.tries} final={self.final_status}/{self.final_outcome} "
            f"sessions={[(s['seq'], s['state'], s['archived']) for s in self.sessions]} "
            f"problems={self.problems} history={self.history}"
        )


class Harness:
    """Runs :class:`Plan` s against one simulator; ``log_events`` returns the log events captured so far."""

    def __init__(self, sim: Any, client: Any, log_events: Callable[[], list[Json]], namespace: str) -> None:
        self.sim = sim
        self.client = client  # a plain JulesClient on the simulator, for the final checks
        self.log_events = log_events
        self.namespace = namespace

    # ------------------------------------------------------------------------------------ one run
    def run(self, plan: Plan) -> RunReport:
        report = RunReport(plan)
        ti = FakeTI(f"faults_{self.namespace}", f"run_{plan.index}", "create")
        store = FakeStore() if plan.with_store else None
        from airflow_provider_jules.operators.jules import run_marker

        report.marker = run_marker(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        log_start = len(self.log_events())
        self.sim.set_faults(
            FaultConfig(
                rules=[FaultRule(**vars(r)) for r in plan.rules],
                transient_404_requests=plan.transient_404_requests,
                seed=plan.index,
            )
        )
        try:
            for try_number in range(1, MAX_TRIES + 1):
                ti.try_number = try_number
                report.tries = try_number
                context: Json = {"ti": ti}
                if store is not None:
                    context["task_state_store"] = store
                status, value = self._attempt(plan, context, report, crash=try_number == 1)
                report.history.append(f"try{try_number}:{status}:{_short(value)}")
                if status == "retry":
                    continue
                report.final_status = status
                if status == "success":
                    report.final_outcome = value["outcome"]
                    report.final_session = value["session_id"]
                elif status == "failed":
                    report.final_outcome = value.outcome
                    report.final_session = value.session_id
                break
            else:
                report.final_status = "retries_exhausted"
        finally:
            self.sim.clear_faults()
        self._check(report, ti, self.log_events()[log_start:])
        return report

    def _operator(self, plan: Plan) -> JulesCreateSessionOperator:
        prompt, extra, _, _ = SCENARIOS[plan.scenario]
        kwargs: Json = {
            "poll_interval": POLL_INTERVAL,
            "timeout": GENEROUS_TIMEOUT,
            "max_poll_errors": 4,
            **extra,
        }
        return JulesCreateSessionOperator(
            task_id="create",
            prompt=f"Fix flaky test number {plan.index} {prompt}",
            source="bobalover/boba",
            deferrable=plan.deferrable,
            adopt_existing_session=plan.adopt,
            **kwargs,
        )

    def _attempt(self, plan: Plan, context: Json, report: RunReport, *, crash: bool) -> tuple[str, Any]:
        """One try of the task instance: execute, then every deferral and resume, until it ends."""
        op = self._operator(plan)
        if crash and plan.crash == "after_create":
            _crash_before_wait(op)
        elif crash and plan.crash == "mid_wait":
            _crash_after_polls(op, plan.crash_after_polls)

        resume: tuple[str, Json, Json] | None = None  # method, its kwargs, the event payload
        try:
            for _ in range(MAX_DEFERRALS):
                try:
                    if resume is None:
                        return "success", op.execute(context)
                    method, kwargs, payload = resume
                    return "success", getattr(op, method)(context, event=payload, **kwargs)
                except TaskDeferred as deferred:
                    events = self._triggerer(deferred.trigger, plan, report)
                    if len(events) != 1:
                        report.problems.append(f"trigger yielded {len(events)} events")
                        report.lost_events += 1
                        return "hung", None
                    payload = json.loads(json.dumps(events[0].payload))
                    resume = (deferred.method_name, dict(deferred.kwargs or {}), payload)
                    op = self._operator(plan)  # a resume is a fresh operator instance
                    if crash and plan.crash == "on_resume":
                        _crash_before(op, deferred.method_name)
                        crash = False
            return "hung", "too many deferrals"
        except WorkerCrash as exc:
            return "retry", exc
        except JulesSessionError as exc:
            return "failed", exc
        except AirflowFailException as exc:
            if isinstance(exc.__cause__, JulesSessionError):  # an outcome no retry can change
                return "failed", exc.__cause__
            return "fatal", exc
        except Exception as exc:  # AirflowException, JulesError, ...: Airflow retries the task
            return "retry", exc

    # ------------------------------------------------------------------------------------ triggerer
    def _triggerer(self, trigger: JulesSessionTrigger, plan: Plan, report: RunReport) -> list[Any]:
        classpath, kwargs = trigger.serialize()
        assert classpath == "airflow_provider_jules.triggers.jules.JulesSessionTrigger", classpath
        kwargs = json.loads(json.dumps(kwargs))  # what the triggerer reads back from the database
        return asyncio.run(self._run_trigger(kwargs, list(plan.restarts), report))

    async def _run_trigger(self, kwargs: Json, restarts: list[float], report: RunReport) -> list[Any]:
        for lifetime in range(len(restarts) + 1):
            report.trigger_lifetimes += 1
            trigger = JulesSessionTrigger(**kwargs)  # every lifetime starts from the serialized kwargs
            runner = trigger.run()
            limit = restarts[lifetime] if lifetime < len(restarts) else TRIGGER_HANG_SECONDS
            try:
                first = await asyncio.wait_for(runner.__anext__(), timeout=limit)
            except asyncio.TimeoutError:
                await runner.aclose()
                if lifetime < len(restarts):
                    report.restarts_done += 1
                    continue  # the triggerer restarted: a new one picks the trigger up
                report.problems.append("trigger hung")
                return []
            except StopAsyncIteration:
                return []
            rest = [event async for event in _bounded(runner, 3)]
            return [first, *rest]
        return []

    # ------------------------------------------------------------------------------------ checks
    def _check(self, report: RunReport, ti: FakeTI, events: list[Json]) -> None:
        plan = report.plan
        engine = self.sim.state.engine
        with engine.lock:
            ours = [s for s in engine.sessions.values() if report.marker in (s.title or "")]
            report.sessions = [
                {
                    "seq": s.seq,
                    "id": s.id,
                    "state": s.state,
                    "archived": s.archived,
                    "create_us": s.create_us,
                    "update_us": s.update_us,
                }
                for s in sorted(ours, key=lambda s: s.seq)
            ]
        # Sessions: exactly one, plus one per earlier session that had FAILED before its successor was made.
        for earlier, later in zip(report.sessions, report.sessions[1:], strict=False):
            if earlier["state"] == "FAILED" and earlier["update_us"] <= later["create_us"]:
                report.justified_new_sessions += 1
        report.duplicates = max(0, len(report.sessions) - 1 - report.justified_new_sessions)
        if not report.sessions:
            report.problems.append("no session created")
        # Outcome.
        _, _, want_status, want_outcome = SCENARIOS[plan.scenario]
        if (report.final_status, report.final_outcome) != (want_status, want_outcome):
            report.wrong_outcome = True
            report.problems.append(f"expected {want_status}/{want_outcome}")
        elif report.sessions and report.final_session != report.sessions[-1]["id"]:
            report.wrong_outcome = True
            report.problems.append("the result is not about the newest session of the task")
        elif ti.xcom.get("session_id") != report.final_session:
            report.wrong_outcome = True
            report.problems.append("xcom session_id differs from the result's session")
        if report.final_session is None:
            return
        # Events: every activity of the followed session reached the log at least once.
        activities = list(self.client.list_activities(report.final_session))
        expected = Counter(line for line in map(format_activity, activities) if line)
        logged = Counter(
            str(e.get("event"))[len("[Jules] ") :]
            for e in events
            if str(e.get("event", "")).startswith("[Jules] ")
        )
        missing = expected - logged
        if missing:
            report.lost_events += sum(missing.values())
            report.problems.append(f"not streamed: {sorted(missing)[:3]}")
        # The reply policy answers each question exactly once (a second answer is a duplicate action).
        if plan.scenario == "reply":
            answers: list[int] = []
            for activity in activities:
                kind = activity_kind(activity)
                if kind == "agentMessaged":
                    answers.append(0)
                elif kind == "userMessaged" and answers:
                    answers[-1] += 1
            extra = sum(max(0, n - 1) for n in answers)
            if extra:
                report.duplicates += extra
                report.problems.append(f"questions answered {answers} times")


def _crash_before(op: JulesCreateSessionOperator, method: str) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise WorkerCrash(f"worker died before {method}")

    setattr(op, method, crash)


def _on_followers(op: JulesCreateSessionOperator, change: Callable[[Any], None]) -> None:
    """Apply ``change`` to every follower the operator builds (the wait is the follower's)."""
    make = op._follower

    def follower() -> Any:
        built = make()
        change(built)
        return built

    op._follower = follower  # type: ignore[method-assign]


def _crash_before_wait(op: JulesCreateSessionOperator) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise WorkerCrash("worker died before _wait")

    def change(follower: Any) -> None:
        follower.follow = crash

    _on_followers(op, change)


def _crash_after_polls(op: JulesCreateSessionOperator, polls: int) -> None:
    seen = {"n": 0}

    def change(follower: Any) -> None:
        real = follower.poll_once

        def poll(*args: Any, **kwargs: Any) -> Any:
            seen["n"] += 1
            if seen["n"] > polls:
                raise WorkerCrash(f"worker died after {polls} polls")
            return real(*args, **kwargs)

        follower.poll_once = poll

    _on_followers(op, change)


async def _bounded(agen: Any, limit: int) -> Any:
    """The rest of an async generator, at most ``limit`` more items (a trigger must yield one event)."""
    for _ in range(limit):
        try:
            yield await asyncio.wait_for(agen.__anext__(), timeout=5.0)
        except StopAsyncIteration:
            return


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("outcome"))
    return f"{type(value).__name__}({str(value)[:160]})" if value is not None else "None"


def summarize(reports: list[RunReport]) -> dict[str, int]:
    return {
        "runs": len(reports),
        "duplicates": sum(r.duplicates for r in reports),
        "wrong_outcomes": sum(r.wrong_outcome for r in reports),
        "lost_events": sum(r.lost_events for r in reports),
    }


def summary_line(totals: dict[str, int]) -> str:
    return " ".join(f"{k}={totals[k]}" for k in ("runs", "duplicates", "wrong_outcomes", "lost_events"))


def fault_mix(reports: list[RunReport]) -> Counter[str]:
    mix: Counter[str] = Counter()
    for report in reports:
        mix.update(set(report.plan.mix()))
        mix["retries"] += report.tries - 1
        mix["triggerer_restarts_done"] += report.restarts_done
        mix["justified_new_sessions"] += report.justified_new_sessions
    return mix


def iterate(n: int, seed: int) -> Iterator[Plan]:
    for index in range(n):
        yield make_plan(index, random.Random(f"{seed}:{index}"))
