"""Creating the session of a ``JulesCreateSessionOperator`` task, or adopting the one an earlier try of the
same task instance created (see docs "Retries, restarts and idempotency").

:class:`NewSession` is the checked request (after Jinja rendering, before any request);
:class:`SessionCreator` finds an earlier session (task state store, then the run marker in the titles) or
creates one, and reconciles an ambiguous create by its marker instead of creating a second session.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_jules._compat import AirflowException
from airflow_provider_jules.client.errors import JulesConfigError, JulesError, JulesNotFoundError
from airflow_provider_jules.client.models import source_name
from airflow_provider_jules.marker import marked_title, run_marker, series_of
from airflow_provider_jules.options import choice, flag, optional_string

if TYPE_CHECKING:
    from airflow.sdk import Context

Json = dict[str, Any]

#: Sessions (newest first) a marker search looks at: 5 pages of 100 (see docs "Retries, restarts and ...").
MARKER_SEARCH_LIMIT = 500
STATE_KEY = "jules_session_id"  # task_state_store key (Airflow >= 3.3); renaming it breaks in-flight retries
SERIES_KEY = "jules_session_series"  # the max_tries of the try that stored STATE_KEY (a clear changes it)


@dataclass(frozen=True)
class NewSession:
    """What a task asks Jules to create, checked."""

    prompt: str
    source: str | None
    starting_branch: str | None
    title: str | None
    require_plan_approval: bool
    automation_mode: str | None

    @classmethod
    def check(cls, task: Any, context: Context) -> NewSession:
        """The rendered arguments of a ``JulesCreateSessionOperator``, checked before any request."""
        if not isinstance(task.prompt, str) or not task.prompt.strip():
            raise JulesConfigError("prompt must be a non-empty string: tell Jules what to do.")
        source = source_name(task.source) if task.source is not None else None
        branch = task.starting_branch
        if branch is not None and (not isinstance(branch, str) or not branch.strip()):
            raise JulesConfigError("starting_branch must be a branch name, or None for the default branch.")
        if branch is not None and source is None:
            raise JulesConfigError("starting_branch needs a source: name the repository in source.")
        if task.automation_mode is not None:
            from airflow_provider_jules.client.models import AUTOMATION_MODES

            choice("automation_mode", task.automation_mode, sorted(AUTOMATION_MODES))
        optional_string("title", task.title)
        flag("require_plan_approval", task.require_plan_approval)
        flag("auto_create_pr", task.auto_create_pr)
        flag("adopt_existing_session", task.adopt_existing_session)
        if not task.wait_for_completion and task.on_user_feedback == "reply":
            raise JulesConfigError('on_user_feedback="reply" needs wait_for_completion=True.')
        return cls(
            prompt=task.prompt,
            source=source,
            starting_branch=branch,
            title=_title(context, task.title),
            require_plan_approval=bool(task.require_plan_approval),
            automation_mode=task.automation_mode or ("AUTO_CREATE_PR" if task.auto_create_pr else None),
        )


def _title(context: Context, title: str | None) -> str:
    """The title without the marker: the task's own, or one naming the DAG, task and run."""
    if title and title.strip():
        return title.strip()
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    mapped = "" if map_index in (None, -1) else f"[{map_index}]"
    return f"Airflow {ti.dag_id}.{ti.task_id}{mapped} run {ti.run_id}"


def stored_session(store: Any, series: int | None) -> str | None:
    """The session id kept in the task state store by an earlier try of the same series."""
    if store is None:
        return None
    value = store.get(STATE_KEY)
    if not value:
        return None
    stored_series = store.get(SERIES_KEY)
    if stored_series is not None and stored_series != series:
        return None  # kept from before a clear: this series starts over
    return str(value)


def ambiguous(exc: JulesError) -> bool:
    """A create whose outcome is unknown: a 5xx, or a transport failure after the request was sent."""
    from airflow_provider_jules.client.errors import JulesServerError, JulesTransportError

    if isinstance(exc, JulesServerError):
        return True
    return isinstance(exc, JulesTransportError) and exc.reached_server


class SessionCreator:
    """Creates a task's session, or adopts the one an earlier try created (``adopt``).

    ``waits``: seconds between the listings that look for the session of an ambiguous create.
    """

    def __init__(self, hook: Any, log: Any, *, adopt: bool, waits: Sequence[float]) -> None:
        self.hook = hook
        self.log = log
        self.adopt = adopt
        self.waits = tuple(waits)

    def create_or_adopt(self, context: Context, request: NewSession) -> tuple[Json, bool]:
        """The session and whether this try created it."""
        ti = context["ti"]
        series = series_of(ti)
        marker = run_marker(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), series)
        store: Any = context.get("task_state_store")  # Airflow >= 3.3
        if self.adopt:
            adopted = self.find_earlier(store, marker, try_number=getattr(ti, "try_number", 1), series=series)
            if adopted is not None:
                return adopted, False
        branch = request.starting_branch
        if request.source is not None and branch is None:
            branch = self.default_branch(request.source)
        try:
            session = self.hook.create_session(
                request.prompt,
                source=request.source,
                starting_branch=branch,
                title=marked_title(str(request.title), marker),
                require_plan_approval=request.require_plan_approval or None,
                automation_mode=request.automation_mode,
            )
        except JulesError as exc:
            if not ambiguous(exc) or not self.adopt:
                raise
            session = self._reconcile(exc, marker)
        if store is not None:
            store.set(STATE_KEY, session["id"])
            store.set(SERIES_KEY, series)
        return session, True

    def _reconcile(self, exc: JulesError, marker: str) -> Json:
        """The session an ambiguous create made, found by its marker; never a second create."""
        self.log.warning("Creating the session was ambiguous (%s); looking for it by its marker.", exc)
        found = self.find_by_marker(marker, attempts=3)
        if found is None:
            raise AirflowException(
                f"Creating the Jules session was ambiguous ({exc}) and no session with marker "
                f"{marker} is visible yet. Not creating another (that could duplicate it): the task's "
                "retry will adopt the session if it exists, or create one if it does not."
            ) from exc
        self.log.info("Adopting session %s, created by the ambiguous call.", found["id"])
        return found

    def default_branch(self, source: str) -> str:
        from airflow_provider_jules.client.models import default_branch

        branch = default_branch(self.hook.get_source(source))
        if not branch:
            raise JulesConfigError(
                f"Source {source} reports no default branch: set starting_branch explicitly."
            )
        return str(branch)

    def find_earlier(self, store: Any, marker: str, *, try_number: int, series: int | None) -> Json | None:
        """The session an earlier try of this task instance created, if it is worth adopting.

        Only tries of the same series count: a clear starts a new series (Airflow sets ``max_tries`` anew),
        so a cleared task creates a new session while a retry adopts (see docs "Retries, restarts and
        idempotency").
        """
        candidate: Json | None = None
        stored = stored_session(store, series)
        if stored:
            try:
                candidate = self.hook.get_session(str(stored))
            except JulesNotFoundError:
                self.log.warning("Session %s of an earlier attempt was deleted; creating a new one.", stored)
                return None
        elif try_number > 1:
            candidate = self.find_by_marker(marker, attempts=1)
        if candidate is None:
            return None
        sid, state = candidate["id"], candidate.get("state")
        if state == "FAILED":
            self.log.warning("Session %s of an earlier attempt FAILED; creating a new one.", sid)
            return None
        if candidate.get("archived"):
            self.log.warning(
                "Session %s of an earlier attempt was archived (timed out or killed); creating a new one.",
                sid,
            )
            return None
        self.log.info(
            "Adopting session %s (state %s), created by an earlier attempt of this task.", sid, state
        )
        return candidate

    def find_by_marker(self, marker: str, *, attempts: int) -> Json | None:
        """Newest visible session whose title carries ``marker`` (bounded: 5 pages of 100 per attempt)."""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.waits[min(attempt, len(self.waits)) - 1])
            found: list[Json] = []
            capped = False
            for index, session in enumerate(self.hook.list_sessions(page_size=100)):
                if marker in str(session.get("title") or ""):
                    found.append(session)
                if index >= MARKER_SEARCH_LIMIT - 1:
                    capped = True
                    break
            if found:
                return max(found, key=lambda s: str(s.get("createTime") or ""))
            if capped:
                self.log.warning(
                    "Looked for marker %s in the %d most recent sessions only (the search's cap); an "
                    "older session of this task instance would not be found.",
                    marker,
                    MARKER_SEARCH_LIMIT,
                )
        return None
