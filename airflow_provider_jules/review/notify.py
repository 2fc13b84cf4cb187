"""The notifiers of a task's forms: each one called once each time a form opens (``notifiers=``).

They are called the way Airflow's ``HITLOperator`` calls its own (``notifier(context)`` with the task's
context, after the form is written and before the task waits), so a notifier written for a
``HITLOperator`` works unchanged: as on a ``HITLOperator``, the task's ``subject``, ``body`` and ``options``
attributes hold the open form's (``{{ task.subject }}`` in a template). The context also has
``jules_form`` (:func:`form_info`): the kind of request, its round, the Jules session URL and the form's URL
in the Airflow UI.

A notifier that raises is logged; the form stays open and the task waits as without it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_jules._compat import conf
from airflow_provider_jules.review.forms import Form, title_of

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

Json = dict[str, Any]

#: The context key of the form's facts (see :func:`form_info`).
CONTEXT_KEY = "jules_form"
#: Airflow's own fallback when ``[api] base_url`` is not set (the task instance's ``log_url``).
DEFAULT_BASE_URL = "http://localhost:8080/"


def form_url(context: Context) -> str:
    """The task instance's form in the Airflow UI: its Required Actions tab, the page the UI itself links
    to (``/dags/<dag>/runs/<run>/tasks/<task>[/mapped/<i>]/required_actions``), under ``[api] base_url``
    (``http://localhost:8080/`` when unset, as for the task instance's log URL)."""
    ti = context["ti"]
    base = str(conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL).rstrip("/")
    map_index = getattr(ti, "map_index", -1)
    mapped = f"/mapped/{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    dag, run, task = (quote(str(part), safe="") for part in (ti.dag_id, ti.run_id, ti.task_id))
    return f"{base}/dags/{dag}/runs/{run}/tasks/{task}{mapped}/required_actions"


def form_info(
    context: Context,
    form: Form,
    *,
    kind: str,
    result: Json,
    round_number: int | None,
    max_rounds: int | None,
    timeout_seconds: float | None,
) -> Json:
    """What a notifier gets as ``context["jules_form"]``: plain JSON values only."""
    deadline = None
    if timeout_seconds is not None:
        deadline = (datetime.now(timezone.utc) + timedelta(seconds=timeout_seconds)).isoformat()
    return {
        "kind": kind,  # "question", "plan" or "change"
        "subject": form.subject,
        "round": round_number if kind == "change" else None,
        "max_rounds": max_rounds if kind == "change" else None,
        "form_url": form_url(context),
        "session_url": result.get("url"),
        "session_id": result.get("session_id"),
        "session_title": title_of(result),
        "pull_request_url": result.get("pull_request_url"),
        "options": list(form.options),
        "assigned_users": [dict(user) for user in form.assigned_users],
        "timeout_at": deadline,
    }


def call_notifiers(
    notifiers: Sequence[Any], task: BaseOperator, context: Context, form: Form, info: Json, log: Any
) -> int:
    """Call each notifier once for the form just opened; returns how many succeeded (a failure is logged)."""
    if not notifiers:
        return 0
    # As on a HITLOperator: the open form's subject, body and options on the task ({{ task.subject }}).
    task.subject = form.subject  # type: ignore[attr-defined]
    task.body = form.body  # type: ignore[attr-defined]
    task.options = list(form.options)  # type: ignore[attr-defined]
    done = 0
    for notifier in notifiers:
        notifier_context: Any = dict(context)  # a notifier merges its template fields into its context
        notifier_context[CONTEXT_KEY] = copy.deepcopy(info)
        try:
            _fresh(notifier)(notifier_context)
        except Exception as exc:  # a notifier never fails the task nor blocks the form
            log.warning(
                "Notifier %s failed for the form %r (the form is open anyway): %s: %s",
                type(notifier).__name__,
                form.subject,
                type(exc).__name__,
                exc,
            )
        else:
            done += 1
    log.info("Notified %d of %d notifier(s) of the form %r.", done, len(notifiers), form.subject)
    return done


def _fresh(notifier: Any) -> Any:
    """A copy of the notifier to call: a BaseNotifier renders its template fields in place, so the same
    object called for a second form in one process would send the first form's text again."""
    try:
        return copy.copy(notifier)
    except Exception:
        return notifier
