"""The forms of the review: what a person sees on the Required Actions page, how the task waits for the
answer (:func:`open_form`) and how the answer is read (:func:`read_answer`). See the package docstring.

Nothing here imports the standard provider at DAG-parse time: :func:`open_form` imports it when a form is
needed, and :func:`hitl_missing` checks for it first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_jules._compat import TaskAwaitingInput
from airflow_provider_jules.jsontext import ELLIPSIS, cut, one_line
from airflow_provider_jules.links.text import defuse_urls, inert_markdown
from airflow_provider_jules.marker import strip_marker
from airflow_provider_jules.media import media_lines
from airflow_provider_jules.options import HITL

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

Json = dict[str, Any]

APPROVE = "Approve"
REQUEST_CHANGES = "Request changes"
REJECT = "Reject"
SEND_ANSWER = "Send answer"
#: The one free-text field of every form (the answer, or the changes requested).
MESSAGE = "message"
#: XCom key of the current request (question, change or plan) as Markdown: the form may show an older one.
REQUEST_XCOM_KEY = "jules_request"
#: Task state store key (Airflow >= 3.3) of the review rounds, so a retry of the task keeps them.
ROUNDS_KEY = "jules_review_rounds"
REVIEW_POLICIES = (None, HITL)
ON_REJECT_ACTIONS = ("archive", "delete", "keep")
ON_REJECT_TASK = ("fail", "skip")
#: Forms one task instance may open (a re-opened form after an empty answer counts): every loop is bounded.
MAX_FORMS = 100
#: The standard provider release this provider's human-in-the-loop is built and tested on.
STANDARD_PROVIDER = "apache-airflow-providers-standard"
MIN_STANDARD_VERSION = "1.21.0"
MIN_AIRFLOW_VERSION = "3.1.0"
DIFF_EXCERPT_LINES = 25
MAX_BODY_CHARS = 12_000
#: A form's subject, at most. Airflow sets no limit (3.1 and 3.3: ``subject`` is a TEXT column in
#: ``airflow/models/hitl.py`` and migration 0076, a plain ``str`` in the API models); the Required Actions
#: table shows it on one line and notifications show its start, so the kind of request comes first and
#: only the session title or the question is shortened (ending with an ellipsis).
SUBJECT_MAX_CHARS = 200


# ------------------------------------------------------------------------------------------ availability
def hitl_missing() -> str | None:
    """Why Airflow's human-in-the-loop cannot be used in this installation, or None when it can."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import InvalidVersion, Version

    install = (
        f"Install {STANDARD_PROVIDER}>={MIN_STANDARD_VERSION} with apache-airflow>={MIN_AIRFLOW_VERSION} "
        f'(pip install "{STANDARD_PROVIDER}>={MIN_STANDARD_VERSION}"), or use on_user_feedback="fail", '
        '"wait" or "reply" and no review.'
    )
    try:
        airflow_version = Version(version("apache-airflow"))
    except (PackageNotFoundError, InvalidVersion):
        airflow_version = None
    if airflow_version is not None and airflow_version.release < Version(MIN_AIRFLOW_VERSION).release:
        return (
            f"Human-in-the-loop needs Airflow >= {MIN_AIRFLOW_VERSION}; this is {airflow_version}. {install}"
        )
    try:
        standard = Version(version(STANDARD_PROVIDER))
    except PackageNotFoundError:
        return f"Human-in-the-loop needs the package {STANDARD_PROVIDER}, which is not installed. {install}"
    except InvalidVersion:
        standard = None
    if standard is not None and standard < Version(MIN_STANDARD_VERSION):
        found = f"found {standard}"
        return f"Human-in-the-loop needs {STANDARD_PROVIDER} >= {MIN_STANDARD_VERSION}; {found}. {install}"
    return None


# ------------------------------------------------------------------------------------------ forms
@dataclass
class Form:
    """One Required Actions form: what :func:`open_form` writes as the task instance's HITL detail."""

    subject: str
    body: str
    options: list[str]
    params: dict[str, Json]
    #: Who may answer (Airflow's HITLUser dicts); empty: anyone allowed to answer the DAG's forms.
    assigned_users: list[dict[str, str]] = field(default_factory=list)


def form_options(*, ask: bool, review: bool, review_plan: bool) -> list[str]:
    """The options of a task's one form, fixed by its configuration (Airflow keeps a form's first options)."""
    options: list[str] = []
    if review or review_plan:
        options.append(APPROVE)
    if review:
        options.append(REQUEST_CHANGES)
    if ask:
        options.append(SEND_ANSWER)
    if review or review_plan:
        options.append(REJECT)
    return options


def form_params(*, ask: bool, review: bool) -> dict[str, Json]:
    """The free-text field (serialized the way the HITL detail stores params), when a step needs text."""
    if not (ask or review):
        return {}
    from airflow.sdk import Param

    uses = []
    if ask:
        uses.append(f"your answer to Jules's question ({SEND_ANSWER})")
    if review:
        uses.append(f"the changes you want ({REQUEST_CHANGES})")
    param = Param(
        None,  # optional: Approve and Reject need no text
        type=["string", "null"],
        format="multiline",
        title="Message to Jules",
        description="Sent to Jules as it is: " + ", or ".join(uses) + ".",
    )
    return {MESSAGE: dict(param.serialize())}


def title_of(result: Json) -> str:
    """The session's title without the provider's task-instance marker (see ``run_marker``)."""
    title = strip_marker(str(result.get("title") or ""))
    return title or f"session {result.get('session_id')}"


def subject_for(
    step: str,
    result: Json,
    *,
    question: str | None = None,
    round_number: int | None = None,
    max_rounds: int | None = None,
) -> str:
    """What the Required Actions list shows for a form: what is asked, and about what (one line, at most
    :data:`SUBJECT_MAX_CHARS`): "Jules asks: <the question's first line>", "Review Jules's change (round 1
    of 3): <session title>" or "Approve Jules's plan: <session title>"."""
    if step == "question":
        lines = [one_line(line) for line in (question or "").splitlines() if line.strip()]
        first = defuse_urls(lines[0]) if lines else "(no question text)"
        return _subject("Jules asks: ", first + (f" {ELLIPSIS}" if len(lines) > 1 else ""))
    if step == "change":
        return _subject(f"Review Jules's change (round {round_number} of {max_rounds}): ", _title(result))
    if step == "plan":
        return _subject("Approve Jules's plan: ", _title(result))
    raise ValueError(f"no form subject for step {step!r}")


def _title(result: Json) -> str:
    return defuse_urls(one_line(title_of(result))) or f"session {result.get('session_id')}"


def _subject(prefix: str, about: str) -> str:
    """``prefix`` kept whole, ``about`` shortened so the subject fits :data:`SUBJECT_MAX_CHARS`."""
    return prefix + cut(about, SUBJECT_MAX_CHARS - len(prefix))


def _links(result: Json) -> str:
    parts = []
    if result.get("url"):
        parts.append(f"[the Jules session]({result['url']})")
    if result.get("pull_request_url"):
        parts.append(f"[the pull request]({result['pull_request_url']})")
    return " and ".join(parts)


def reuse_note(result: Json) -> str:
    """The footer of every form body: where the *current* request is when Airflow shows an older text."""
    links = _links(result)
    where = f" Open {links} for their latest state." if links else ""
    return (
        "\n\n---\n*Airflow keeps one form per task: if Jules asks again or the change comes back for another "
        f"review, this form opens again with the text above. The current request is always in this task's "
        f"log and in its `{REQUEST_XCOM_KEY}` XCom.{where}*"
    )


def plan_markdown(plan: Json | None) -> str:
    steps = (plan or {}).get("steps") or []
    lines = []
    for number, step in enumerate(steps, start=1):
        title = inert_markdown(str(step.get("title") or "(untitled step)"))
        description = step.get("description")
        lines.append(
            f"{number}. **{title}**" + (f" - {inert_markdown(str(description))}" if description else "")
        )
    return "\n".join(lines) or "(Jules sent no plan steps.)"


def question_markdown(result: Json, question: str) -> str:
    head = f"**Jules asks** in [{inert_markdown(title_of(result))}]({result.get('url') or ''}):\n\n"
    text = "\n".join("> " + inert_markdown(line) for line in (question or "(no question text)").splitlines())
    out = head + text
    if result.get("plan"):
        out += "\n\n**Jules's plan:**\n\n" + plan_markdown(result["plan"])
    return out


def change_markdown(result: Json, *, round_number: int, max_rounds: int) -> str:
    change = result.get("change_set") or {}
    files = list(change.get("files_changed") or [])
    lines = [f"**Review round {round_number} of at most {max_rounds}** of Jules's change."]
    if result.get("pull_request_url"):
        lines.append(f"\n**Pull request:** {result['pull_request_url']}")
    if result.get("url"):
        lines.append(f"\n**Session:** {result['url']}")
    size = int(change.get("patch_bytes") or 0)
    lines.append(f"\n**Files changed ({len(files)}), patch of {size:,} bytes:**\n")
    lines.extend(f"- `{defuse_urls(str(f).replace('`', chr(39)))}`" for f in files[:50])  # ` ends a code span
    if len(files) > 50:
        lines.append(f"- ... and {len(files) - 50} more")
    summary = change.get("suggested_commit_message") or result.get("last_agent_message")
    if summary:
        lines.append("\n**Jules's summary:**\n")
        lines.extend("> " + inert_markdown(line) for line in str(summary).splitlines())
    lines.extend(media_lines(result))
    patch = change.get("patch")
    if patch:
        excerpt = patch.splitlines()[:DIFF_EXCERPT_LINES]
        more = len(patch.splitlines()) - len(excerpt)
        lines.append(
            f"\n**Diff excerpt** (first {len(excerpt)} lines; the full diff is on the pull request):\n"
        )
        lines.append("```diff\n" + cut("\n".join(excerpt), 6000).replace("```", "'''") + "\n```")
        if more > 0:
            lines.append(f"*... {more} more lines.*")
    lines.append(
        f"\n**Approve** ends the task with this change. **{REQUEST_CHANGES}** sends the message below to "
        f"Jules, which works again; the new change comes back for review. **{REJECT}** stops the session."
    )
    return "\n".join(lines)


def plan_review_markdown(result: Json) -> str:
    return (
        f"**Jules proposes this plan** for [{inert_markdown(title_of(result))}]"
        f"({result.get('url') or ''})"
        ":\n\n"
        + plan_markdown(result.get("plan"))
        + f"\n\n**{APPROVE}** lets Jules start; **{REJECT}** stops "
        "the session. Jules completes an unapproved plan without doing anything after about ten minutes, so "
        "this form closes before that."
    )


def build_form(
    request_markdown: str,
    result: Json,
    options: list[str],
    params: dict[str, Json],
    *,
    subject: str,
    assigned_users: list[dict[str, str]] | tuple[dict[str, str], ...] = (),
) -> Form:
    body = cut(request_markdown, MAX_BODY_CHARS) + reuse_note(result)
    users = [dict(user) for user in assigned_users]
    return Form(subject=subject, body=body, options=list(options), params=params, assigned_users=users)


# ------------------------------------------------------------------------------------------ answers
@dataclass
class Answer:
    """A person's answer read from the HITL resume event (or a timeout / error)."""

    option: str | None
    message: str
    reviewer: str | None
    error: str | None = None
    timed_out: bool = False


def read_answer(event: object) -> Answer:
    if not isinstance(event, dict):
        return Answer(None, "", None, error=f"no usable answer event ({event!r})")
    if "error" in event:
        timed_out = event.get("error_type") == "timeout"
        return Answer(None, "", None, error=str(event.get("error")), timed_out=timed_out)
    chosen = event.get("chosen_options") or []
    option = str(chosen[0]) if isinstance(chosen, list) and chosen else None
    params = event.get("params_input") or {}
    message = params.get(MESSAGE) if isinstance(params, dict) else None
    user = event.get("responded_by_user")
    reviewer = None
    if isinstance(user, dict):
        reviewer = str(user.get("name") or user.get("id") or "") or None
    if event.get("timedout") and reviewer is None:
        return Answer(option, "", None, error="the response timeout passed", timed_out=True)
    return Answer(option, str(message or "").strip(), reviewer)


# ------------------------------------------------------------------------------------------ the wait
def open_form(
    task: BaseOperator,
    context: Context,
    form: Form,
    *,
    method_name: str,
    kwargs: Json,
    timeout_seconds: float | None,
    poke_interval: float = 5.0,
    notify: Callable[[], None] | None = None,
) -> NoReturn:
    """Write the task instance's HITL detail, call ``notify`` (the task's notifiers, as ``HITLOperator``
    calls its own: after the form is written, before the wait), then wait for the person without holding
    a worker slot.

    Airflow >= 3.3: ``TaskAwaitingInput`` (state ``awaiting_input``; the scheduler enforces the timeout).
    Airflow 3.1 / 3.2: a deferral to the standard provider's ``HITLTrigger``, settled (``JulesHITLTrigger``:
    an answer resumes the task no earlier than ``settle_seconds()`` after the form opened). Either way it
    resumes in ``method_name(context, event=..., **kwargs)``.
    """
    from airflow.sdk.execution_time.hitl import upsert_hitl_detail

    ti_id = context["task_instance"].id
    opened = datetime.now(timezone.utc)
    upsert_hitl_detail(
        ti_id=ti_id,
        options=form.options,
        subject=form.subject,
        body=form.body,
        defaults=None,
        multiple=False,
        params=copy.deepcopy(form.params),
        assigned_users=[{"id": user["id"], "name": user["name"]} for user in form.assigned_users] or None,
    )
    if notify is not None:
        notify()
    timeout = timedelta(seconds=max(1.0, timeout_seconds)) if timeout_seconds is not None else None
    if TaskAwaitingInput is not None:
        raise TaskAwaitingInput(method_name=method_name, kwargs=kwargs, timeout=timeout)
    from airflow_provider_jules.triggers.hitl import JulesHITLTrigger, settle_seconds

    task.defer(
        trigger=JulesHITLTrigger(
            not_before=opened + timedelta(seconds=settle_seconds()),
            ti_id=ti_id,
            options=form.options,
            params=copy.deepcopy(form.params),
            defaults=None,
            multiple=False,
            timeout_datetime=datetime.now(timezone.utc) + timeout if timeout is not None else None,
            poke_interval=poke_interval,
        ),
        method_name=method_name,
        kwargs=kwargs,
    )
    raise AssertionError("defer() returned")  # pragma: no cover - defer always raises


# ------------------------------------------------------------------------------------------ rounds
def record_round(
    rounds: list[Json], *, decision: str, answer: Answer, result: Json, round_number: int
) -> list[Json]:
    """The rounds with this one appended (decision: approved, changes_requested or rejected). A round
    nobody answered in time, decided by ``on_review_timeout``, also has ``"timed_out": True`` (and no
    reviewer)."""
    entry: Json = {
        "round": round_number,
        "decision": decision,
        "reviewer": answer.reviewer,
        "feedback": answer.message or None,
        "pull_request_url": result.get("pull_request_url"),
    }
    if answer.timed_out:
        entry["timed_out"] = True
    return [*rounds, entry]
