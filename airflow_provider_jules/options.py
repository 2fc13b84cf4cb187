"""The arguments of a wait, checked once: :class:`WaitOptions`, frozen, built in ``execute`` after Jinja
rendered the task's fields, before any request.

Every check names the argument, what was given and the fix (the messages are part of the interface: tests
and users read them). Imported at every DAG parse: no requests, httpx or tenacity here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_jules._compat import conf
from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.validation import boolean, duration, integer, optional_string
from airflow_provider_jules.watch import CLEANUP_ACTIONS

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = timedelta(hours=4)
#: The longest wait any duration argument may ask for (timeout, stall_timeout, poll_interval, ...).
MAX_DURATION = timedelta(days=7)
#: Seconds a 404 on a new session's activities counts as eventual consistency (quirk Q18).
NEW_SESSION_GRACE = 120.0
FEEDBACK_POLICIES = ("fail", "wait", "reply", "ask")
#: What a ``completed_without_changes`` outcome does to the task.
NO_CHANGES_POLICIES = ("succeed", "skip", "fail")
# People in the loop: argument values and defaults (the review itself loads only when a task runs).
ASK = "ask"
HITL = "hitl"
DEFAULT_MAX_REVIEW_ROUNDS = 3
#: Jules completes an unapproved plan after about 10 minutes (quirk Q15): the plan form closes before that.
DEFAULT_PLAN_REVIEW_TIMEOUT = timedelta(minutes=8)
#: What a plan or change review that nobody answers in time does (``on_review_timeout``).
REVIEW_TIMEOUT_DECISIONS = ("fail", "approve", "reject")

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TIMEOUT",
    "REVIEW_TIMEOUT_DECISIONS",
    "WaitOptions",
    "boolean",
    "choice",
    "default_deferrable",
    "flag",
    "hitl_users",
    "integer",
    "notifier_list",
    "optional_string",
    "seconds",
]


def default_deferrable() -> bool:
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def seconds(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """A duration argument as seconds: positive, finite, at most :data:`MAX_DURATION` (7 days)."""
    return duration(name, value, allow_none=allow_none, maximum=MAX_DURATION.total_seconds())


def choice(name: str, value: object, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise JulesConfigError(f"{name} must be one of {options}, got {value!r}.")
    return str(value)


def flag(name: str, value: object) -> bool:
    """A boolean argument that is a boolean (``"false"`` is a non-empty string, hence true in Python)."""
    return bool(boolean(name, value))


HITL_USER_FORM = '{"id": "<user id in the auth manager>", "name": "<display name>"}'


def hitl_users(value: object) -> list[dict[str, str]]:
    """``assigned_users`` as Airflow's ``HITLOperator`` takes it (one ``HITLUser`` dict or a list of them),
    as a list of ``{"id", "name"}`` dicts; None or an empty list: no one is assigned (anyone may answer).

    Both keys must be non-empty strings (Airflow compares the id with the auth manager's user id, a string:
    the username with the simple auth manager); other keys are dropped, as Airflow drops them.
    """
    if value is None:
        return []
    users = [value] if isinstance(value, dict) else value
    if not isinstance(users, (list, tuple)):
        raise JulesConfigError(
            f"assigned_users must be a user dict {HITL_USER_FORM} or a list of them (Airflow's HITLUser), "
            f"got {type(value).__name__} {value!r}."
        )
    checked = []
    for number, user in enumerate(users, start=1):
        if not isinstance(user, dict):
            raise JulesConfigError(
                f"assigned_users: user {number} must be a dict {HITL_USER_FORM} (Airflow's HITLUser), "
                f"got {type(user).__name__} {user!r}."
            )
        for key in ("id", "name"):
            if not isinstance(user.get(key), str) or not str(user[key]).strip():
                raise JulesConfigError(
                    f'assigned_users: user {number} needs "{key}", a non-empty string, as in '
                    f"{HITL_USER_FORM}; got {user!r}."
                )
        checked.append({"id": str(user["id"]), "name": str(user["name"])})
    return checked


def notifier_list(value: object) -> list[Any]:
    """``notifiers`` as Airflow's ``HITLOperator`` takes it: one notifier (an Airflow ``BaseNotifier``, or
    any callable taking the context) or a list of them; None: no notifier."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(item, type) for item in items):
        raise JulesConfigError(
            "notifiers must be notifier instances (SlackNotifier(...)), not classes: call the class with its "
            "arguments."
        )
    if callable(value):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise JulesConfigError(
            "notifiers must be an Airflow notifier (a BaseNotifier such as SlackNotifier(...)) or a list of "
            f"them, got {type(value).__name__} {value!r}."
        )
    for number, notifier in enumerate(value, start=1):
        if not callable(notifier):
            raise JulesConfigError(
                f"notifiers: item {number} must be an Airflow notifier (a BaseNotifier such as "
                f"SlackNotifier(...)), got {type(notifier).__name__} {notifier!r}."
            )
    return list(value)


@dataclass(frozen=True)
class WaitOptions:
    """How a task follows a session: checked once (:meth:`check`), then read by the follower."""

    deferrable: bool
    poll_interval: float
    timeout: float
    stall_timeout: float | None
    target_states: tuple[str, ...]
    stop_on_feedback: bool
    on_timeout: str
    on_kill_action: str
    on_user_feedback: str
    auto_reply: str | None
    on_no_changes: str
    artifacts_path: str | None
    inline_patch_limit: int
    max_poll_errors: int

    @classmethod
    def check(
        cls,
        *,
        target_states: Sequence[str],
        poll_interval: object,
        timeout: object,
        on_timeout: object,
        on_kill_action: object,
        deferrable: object,
        inline_patch_limit: object,
        max_poll_errors: object,
        artifacts_path: object,
        stall_timeout: object = None,
        on_user_feedback: object = "wait",
        on_no_changes: object = "succeed",
        wait_for_completion: object = True,
        auto_reply: object = None,
        poll_name: str = "poll_interval",
    ) -> WaitOptions:
        """The checked options, or :class:`JulesConfigError` naming the first bad argument."""
        poll = seconds(poll_name, poll_interval) or 1.0
        total = seconds("timeout", timeout) or 0.0
        stall = seconds("stall_timeout", stall_timeout, allow_none=True)
        timeout_action = choice("on_timeout", on_timeout, CLEANUP_ACTIONS)
        kill_action = choice("on_kill_action", on_kill_action, CLEANUP_ACTIONS)
        feedback = choice("on_user_feedback", on_user_feedback, FEEDBACK_POLICIES)
        no_changes = choice("on_no_changes", on_no_changes, NO_CHANGES_POLICIES)
        flag("wait_for_completion", wait_for_completion)
        defer = flag("deferrable", deferrable)
        if feedback == "reply" and not (isinstance(auto_reply, str) and auto_reply.strip()):
            raise JulesConfigError('on_user_feedback="reply" needs auto_reply: the answer to send to Jules.')
        return cls(
            deferrable=defer,
            poll_interval=poll,
            timeout=total,
            stall_timeout=stall,
            target_states=tuple(str(s) for s in target_states),
            stop_on_feedback=feedback != "wait",
            on_timeout=timeout_action,
            on_kill_action=kill_action,
            on_user_feedback=feedback,
            inline_patch_limit=integer("inline_patch_limit", inline_patch_limit, minimum=0),
            max_poll_errors=integer("max_poll_errors", max_poll_errors, minimum=1, maximum=1_000_000),
            auto_reply=optional_string("auto_reply", auto_reply),
            artifacts_path=optional_string("artifacts_path", artifacts_path),
            on_no_changes=no_changes,
        )
