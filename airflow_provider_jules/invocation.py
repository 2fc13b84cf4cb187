"""One blocking Jules call with a deadline: a prompt in, Jules's answer out (issue #23).

The managed-agent hook (:mod:`airflow_provider_jules.hooks.managed_agent`) turns a request of the common AI
provider's contract into an :class:`Ask`, runs an :class:`Invocation`, and maps what it returns (an
:class:`Answer`) and what it raises (sorted by :func:`classify`) to the contract's types. Nothing here
imports the common AI provider: the rules are typed and tested with or without it.

An invocation creates a session on the agent's repository (or sends a message to the session it continues),
follows it with the operators' :class:`~airflow_provider_jules.watch.Watch`, and builds the result with
:func:`~airflow_provider_jules.results.build_result`. It polls with a client of its own whose every call is
fitted into the time left (each HTTP attempt ends by the deadline; a retry is made only when it fits), at
intervals that grow from 2 s to ``poll_interval``, each poll one read of the session and one of the
activities created since the last poll.

Imported when a DAG file builds a managed-agent client: no requests, httpx or tenacity here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_jules.activity_log import log_activities
from airflow_provider_jules.client.errors import JulesConfigError, JulesError, JulesInvalidArgumentError
from airflow_provider_jules.client.models import AUTOMATION_MODES, default_branch, session_id, source_name
from airflow_provider_jules.failures import JulesSessionError
from airflow_provider_jules.history import last_question, question_text
from airflow_provider_jules.jsontext import cut
from airflow_provider_jules.links.urls import check_session_url, hosts_of
from airflow_provider_jules.options import NEW_SESSION_GRACE, choice, optional_string, seconds
from airflow_provider_jules.results import MAX_TEXT_CHARS, Outcome, build_result
from airflow_provider_jules.watch import (
    CLEANUP_ACTIONS,
    MAX_POLLS_IN_WORKER,
    EventStatus,
    Watch,
    cursor_after,
    is_fatal,
    is_fatal_poll_error,
)

if TYPE_CHECKING:
    from airflow_provider_jules.client.sync import JulesClient

Json = dict[str, Any]

#: How long an invocation waits when the request names no ``timeout``.
DEFAULT_INVOKE_TIMEOUT = 3600.0
#: The longest pause between two polls; the first polls come sooner (from FIRST_POLL_INTERVAL, doubling).
DEFAULT_POLL_INTERVAL = 15.0
FIRST_POLL_INTERVAL = 2.0
#: Seconds the one attempt to archive or delete an abandoned session may take (it runs past the deadline).
CLEANUP_SECONDS = 10.0
#: Less time left than this and no call is started: the invocation has timed out.
MIN_CALL_SECONDS = 0.05
#: The fields of a 400 INVALID_ARGUMENT's BadRequest violations that name the prompt (create, sendMessage).
PROMPT_FIELDS = frozenset({"prompt", "session.prompt"})
#: The vendor options a request may carry (``ManagedAgentRequest.vendor_options``).
OPTION_KEYS = ("starting_branch", "title", "automation_mode", "poll_interval", "on_give_up")
#: Options that would point the call somewhere else than the agent and connection the DAG chose.
RETARGETING_KEYS = frozenset({"source", "agent", "jules_conn_id", "conn_id", "base_url", "host", "api_key"})
MAX_FILES_NAMED = 20
_SUMMARIES = {
    Outcome.COMPLETED.value: "Jules completed the task.",
    Outcome.COMPLETED_WITHOUT_CHANGES.value: "Jules completed the session without changing any file.",
}
ANSWERED = frozenset({*_SUMMARIES, Outcome.AWAITING_USER_FEEDBACK.value})


class JulesPromptError(JulesConfigError):
    """A prompt Jules cannot take (empty, or a message part that is not text): rephrasing fixes it."""


class JulesInvocationTimeout(JulesError, TimeoutError):
    """The session did not finish within the request's ``timeout`` (a ``TimeoutError``: time may fix it)."""

    def __init__(self, message: str, *, session_id: str | None, url: str | None) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.url = url


class Failure(str, Enum):
    """The three classes of the managed-agent contract."""

    REJECTED = "rejected"  # the request as phrased cannot be done: a rephrase may
    TERMINAL = "terminal"  # nothing on the agent's side recovers it (key, repository, quota, settings)
    TRANSIENT = "transient"  # time may fix it (429, 5xx, network, the deadline): propagated unchanged


def classify(exc: BaseException) -> Failure:
    """Which class of the contract a failure of an invocation belongs to (by type and reason code)."""
    if isinstance(exc, JulesPromptError) or prompt_violation(exc):
        return Failure.REJECTED
    if isinstance(exc, JulesSessionError):
        return Failure.REJECTED if exc.outcome == Outcome.FAILED.value else Failure.TERMINAL
    if is_fatal(exc):
        return Failure.TERMINAL
    return Failure.TRANSIENT


def prompt_violation(exc: BaseException) -> bool:
    """A 400 INVALID_ARGUMENT whose ``google.rpc.BadRequest`` detail names the prompt field."""
    if not isinstance(exc, JulesInvalidArgumentError):
        return False
    for detail in exc.details:
        violations = detail.get("fieldViolations") if isinstance(detail, dict) else None
        for violation in violations if isinstance(violations, list) else []:
            if isinstance(violation, dict) and violation.get("field") in PROMPT_FIELDS:
                return True
    return False


# ------------------------------------------------------------------------------------------ the request
def prompt_text(prompt: object, messages: Sequence[Any] | None, *, continuing: bool = False) -> str:
    """The text sent to Jules: the prompt, or the messages' text (a session continued: the last message's;
    several messages of a new session: one ``role: text`` paragraph each)."""
    if prompt is not None:
        text = prompt if isinstance(prompt, str) else ""
    else:
        turns = [_message(m) for m in (messages or [])]
        if continuing:
            turns = turns[-1:]
        text = turns[0][1] if len(turns) == 1 else "\n\n".join(f"{role}: {said}" for role, said in turns)
    if not text.strip():
        raise JulesPromptError("The prompt is empty: tell Jules what to change in the repository.")
    return text


def _message(message: object) -> tuple[str, str]:
    if not isinstance(message, Mapping):
        raise JulesPromptError(f"A message must be a dict with 'role' and 'content', got {message!r}.")
    content = message.get("content")
    parts = [content] if isinstance(content, str) else content if isinstance(content, list) else None
    if parts is None:
        raise JulesPromptError("A message's content must be text or a list of text parts.")
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise JulesPromptError(f"Jules takes text only, not a {kind!r} part: describe it in words.")
    return str(message.get("role") or "user"), "\n".join(texts)


@dataclass(frozen=True)
class Settings:
    """The hook's defaults for every invocation, checked once."""

    invoke_timeout: float = DEFAULT_INVOKE_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    on_give_up: str = "archive"

    @classmethod
    def check(cls, *, invoke_timeout: object, poll_interval: object, on_give_up: object) -> Settings:
        return cls(
            invoke_timeout=seconds("invoke_timeout", invoke_timeout) or DEFAULT_INVOKE_TIMEOUT,
            poll_interval=seconds("poll_interval", poll_interval) or DEFAULT_POLL_INTERVAL,
            on_give_up=choice("on_give_up", on_give_up, CLEANUP_ACTIONS),
        )


@dataclass(frozen=True)
class Ask:
    """One request, checked before any call: what to send where, and how long to wait."""

    source: str
    prompt: str
    session_id: str | None = None
    timeout: float = DEFAULT_INVOKE_TIMEOUT
    starting_branch: str | None = None
    title: str | None = None
    automation_mode: str = "AUTO_CREATE_PR"
    poll_interval: float = DEFAULT_POLL_INTERVAL
    on_give_up: str = "archive"

    @classmethod
    def check(
        cls,
        agent: object,
        *,
        prompt: object,
        messages: Sequence[Any] | None,
        session: object,
        timeout: object,
        vendor_options: Mapping[str, Any] | None,
        settings: Settings,
    ) -> Ask:
        source = source_name(agent)
        sid = session_id(session) if session is not None else None
        text = prompt_text(prompt, messages, continuing=sid is not None)
        options = dict(vendor_options or {})
        retargeting = sorted(RETARGETING_KEYS & options.keys())
        if retargeting:
            raise JulesConfigError(
                f"The vendor options {retargeting} would re-target the call: the agent argument names the "
                "repository and the hook's connection the Jules account."
            )
        unknown = sorted(options.keys() - set(OPTION_KEYS))
        if unknown:
            raise JulesConfigError(f"Unknown Jules vendor options {unknown}: use {list(OPTION_KEYS)}.")
        branch = optional_string("starting_branch", options.get("starting_branch"))
        if branch is not None and not branch.strip():
            raise JulesConfigError("starting_branch must be a branch name, or absent for the default branch.")
        return cls(
            source=source,
            prompt=text,
            session_id=sid,
            timeout=settings.invoke_timeout if timeout is None else seconds("timeout", timeout) or 0.0,
            starting_branch=branch.strip() if branch else None,
            title=optional_string("title", options.get("title")),
            automation_mode=choice(
                "automation_mode", options.get("automation_mode", "AUTO_CREATE_PR"), sorted(AUTOMATION_MODES)
            ),
            poll_interval=seconds("poll_interval", options.get("poll_interval", settings.poll_interval))
            or DEFAULT_POLL_INTERVAL,
            on_give_up=choice("on_give_up", options.get("on_give_up", settings.on_give_up), CLEANUP_ACTIONS),
        )


@dataclass(frozen=True)
class Answer:
    """What Jules answered: the text a model reads, the result dict (:data:`~..results.RESULT_KEYS`), the
    session (its bare id continues it) and ``sessions/<id>`` (the trace reference)."""

    text: str
    result: Json
    session_id: str
    session_name: str


def answer_text(result: Json, activities: list[Json]) -> str:
    """The answer for a model: Jules's last message of this round (or a summary of the outcome), the pull
    request and the files changed; for a question, the question."""
    message = cut(question_text(last_question(activities)).strip(), MAX_TEXT_CHARS)
    if result["outcome"] == Outcome.AWAITING_USER_FEEDBACK.value:
        return f"Jules asks: {message or '(open the session to read the question)'}"
    lines = [message or _SUMMARIES[result["outcome"]]]
    if result["pull_request_url"]:
        lines.append(f"Pull request: {result['pull_request_url']}")
    files = list((result.get("change_set") or {}).get("files_changed") or [])
    if files:
        more = f" and {len(files) - MAX_FILES_NAMED} more" if len(files) > MAX_FILES_NAMED else ""
        lines.append("Files changed: " + ", ".join(files[:MAX_FILES_NAMED]) + more)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the call
class _Hook(Protocol):
    """What an invocation needs of :class:`~airflow_provider_jules.hooks.jules.JulesHook`."""

    @property
    def log(self) -> Any: ...

    @property
    def pull_request_hosts(self) -> tuple[str, ...]: ...

    def new_client(self) -> JulesClient: ...


class Invocation:
    """Run one :class:`Ask` to its :class:`Answer` within ``ask.timeout`` (see the module docstring)."""

    def __init__(
        self,
        hook: _Hook,
        ask: Ask,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hook = hook
        self.ask = ask
        self.log = hook.log
        self.sleep = sleep
        self.clock = clock
        self.sid: str | None = None
        self.url: str | None = None

    def run(self) -> Answer:
        self.deadline = self.clock() + self.ask.timeout
        self.end_time = time.time() + self.ask.timeout
        self.client = self.hook.new_client()
        self.timeout, self.policy = self.client.timeout, self.client.retry_policy
        try:
            return self._continue() if self.ask.session_id else self._start()
        except JulesError as exc:
            if self.deadline - self.clock() < MIN_CALL_SECONDS and classify(exc) is Failure.TRANSIENT:
                if isinstance(exc, JulesInvocationTimeout):
                    raise
                raise self._timed_out() from exc  # a call cut by the deadline is the deadline's doing
            raise
        finally:
            self.client.close()

    def api(self) -> JulesClient:
        """The client, its next call fitted into the time left: each attempt ends by the deadline, and a
        retry (with its wait) is made only if it still fits."""
        left = self.deadline - self.clock()
        if left < MIN_CALL_SECONDS:
            raise self._timed_out()
        timeout = min(self.timeout, left)
        self.client.timeout = timeout
        self.client.retry_policy = replace(
            self.policy,
            max_elapsed=min(self.policy.max_elapsed, max(0.0, left - timeout)),
            max_retry_after=min(self.policy.max_retry_after, left),
        )
        return self.client

    def _start(self) -> Answer:
        ask = self.ask
        branch = ask.starting_branch or self._default_branch()
        session = self.api().create_session(
            ask.prompt,
            source=ask.source,
            starting_branch=branch,
            title=ask.title,
            automation_mode=ask.automation_mode,
        )
        self._follow(session, "started")
        now = time.time()
        watch = Watch(str(self.sid), ["COMPLETED"], end_time=self.end_time, last_progress_at=now)
        try:
            session, activities = self._wait(watch, [], new_until=now + NEW_SESSION_GRACE)
        except BaseException:
            self._give_up()  # Jules would keep working for no one (and a retry or a standby starts over)
            raise
        return self._answer(session, activities, 0)

    def _continue(self) -> Answer:
        """Send the prompt to the session ``ask.session_id`` and wait for the round it starts. A session of
        another repository is refused; an archived one is unarchived first. It is never archived here."""
        sid = str(self.ask.session_id)
        session = self.api().get_session(sid)
        self._follow(session, "continued")
        source = (session.get("sourceContext") or {}).get("source")
        if source and source != self.ask.source:
            raise JulesConfigError(
                f"Jules session {sid} works on {source}, not on {self.ask.source}: continue it through the "
                "agent of its own repository."
            )
        if session.get("archived"):
            session = self.api().unarchive_session(sid)
        history = list(self.api().list_activities(sid))
        self.api().send_message(sid, self.ask.prompt)
        # The state read after the message does not count (it may still be the last round's COMPLETED, or
        # the question just answered): only a change after it, or an activity of Jules's, settles the wait.
        sent = self.api().get_session(sid)
        watch = Watch(
            sid,
            ["COMPLETED"],
            end_time=self.end_time,
            cursor=cursor_after(history, None),
            last_progress_at=time.time(),
            settle_after=str(sent.get("updateTime") or "") or None,
        )
        session, activities = self._wait(watch, list(history), new_until=None)
        return self._answer(session, activities, len(history))

    def _default_branch(self) -> str:
        branch = default_branch(self.api().get_source(self.ask.source))
        if not branch:
            raise JulesConfigError(
                f"Source {self.ask.source} reports no default branch: set the vendor option starting_branch."
            )
        return str(branch)

    def _follow(self, session: Json, how: str) -> None:
        self.sid = str(session["id"])
        self.url = check_session_url(session.get("url"))[0] if session.get("url") else None
        self.log.info("Jules session %s %s on %s: %s", self.sid, how, self.ask.source, self.url or "")

    def _wait(
        self, watch: Watch, activities: list[Json], *, new_until: float | None
    ) -> tuple[Json, list[Json]]:
        """Poll until the watch ends (COMPLETED, FAILED or a question); the session and all activities."""
        session: Json | None = None
        interval = min(FIRST_POLL_INTERVAL, self.ask.poll_interval)
        for _ in range(MAX_POLLS_IN_WORKER):  # bounded by the deadline long before
            event = watch.check_time(time.time())
            if event is None:
                event, session = self._poll(watch, activities, new_until, session)
            if event is not None:
                if event["status"] == EventStatus.TIMEOUT or session is None:
                    raise self._timed_out()
                return session, activities
            self.sleep(watch.sleep_for(interval, time.time()))
            interval = min(self.ask.poll_interval, interval * 2)
        raise self._timed_out()

    def _poll(
        self, watch: Watch, activities: list[Json], new_until: float | None, last: Json | None
    ) -> tuple[Json | None, Json | None]:
        sid = watch.session_id
        try:
            session = self.api().get_session(sid)
            new = new_until is not None and time.time() < new_until
            fresh = list(self.api().list_activities(sid, created_after=watch.cursor, new_session=new))
        except JulesInvocationTimeout:
            raise
        except JulesError as exc:
            self.log.warning("Polling Jules session %s failed: %s", sid, exc)
            event = watch.observe_error(exc, time.time(), fatal=is_fatal_poll_error(exc))
            if event is not None and event["status"] == EventStatus.ERROR:
                raise  # a fatal error, or too many in a row: sorted by classify()
            return event, last
        activities.extend(fresh)
        watch.observe_activities(fresh)
        log_activities(self.log, fresh)
        return watch.observe_session(session, time.time()), session

    def _answer(self, session: Json, activities: list[Json], round_from: int) -> Answer:
        result = build_result(session, activities, pull_request_hosts=hosts_of(self.hook))
        sid = str(self.sid)
        if result["outcome"] in ANSWERED:
            text = answer_text(result, activities[round_from:])
            return Answer(text=text, result=result, session_id=sid, session_name=f"sessions/{sid}")
        detail = result["failure_reason"] or (
            f"the session is {result['state']}: Jules waited for a plan approval that a managed-agent call "
            "cannot give (quirk Q15). Leave plan approval off for this repository."
        )
        raise JulesSessionError(result["outcome"], detail, session_id=sid, url=result["url"])

    def _timed_out(self) -> JulesInvocationTimeout:
        what = f"Jules session {self.sid}" if self.sid else "Starting the Jules session"
        where = f" ({self.url})" if self.url else ""
        return JulesInvocationTimeout(
            f"{what}{where} did not finish within timeout={self.ask.timeout:g} s.",
            session_id=self.sid,
            url=self.url,
        )

    def _give_up(self) -> None:
        """Archive (pauses it) or delete the session this call started, as ``on_give_up`` says; one attempt
        of at most CLEANUP_SECONDS, never raising."""
        action = self.ask.on_give_up
        if self.sid is None or action == "keep":
            return
        from airflow_provider_jules.client.retry import NO_RETRY

        self.client.timeout = min(self.timeout, CLEANUP_SECONDS)
        self.client.retry_policy = NO_RETRY
        try:
            if action == "delete":
                self.client.delete_session(self.sid)
            else:
                self.client.archive_session(self.sid)
            self.log.info("Jules session %s abandoned before it finished; %sd it.", self.sid, action)
        except Exception as exc:
            self.log.warning("Could not %s the abandoned Jules session %s: %s", action, self.sid, exc)
