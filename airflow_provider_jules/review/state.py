"""The review's typed parts: the checked options (:class:`ReviewOptions`) and the state a task carries from
one form to the next (:class:`ReviewState`).

The state travels as plain JSON in the method kwargs of a deferral (``jules_state``): it lives in the task
instance row, so a triggerer or worker restart loses nothing. :meth:`ReviewState.to_json` writes exactly the
keys the provider has always written, and :meth:`ReviewState.from_json` reads every state a deferred task of
an earlier release stored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.options import (
    ASK,
    HITL,
    REVIEW_TIMEOUT_DECISIONS,
    choice,
    hitl_users,
    integer,
    notifier_list,
    seconds,
)
from airflow_provider_jules.review.forms import (
    ON_REJECT_ACTIONS,
    ON_REJECT_TASK,
    REVIEW_POLICIES,
    hitl_missing,
)

Json = dict[str, Any]

#: The steps a form can be open for.
STEPS = ("question", "change", "plan")
#: What a new wait keeps of the state (the rest belongs to the form just answered).
KEPT_ACROSS_WAITS = ("rounds", "forms", "plan_done", "idle")


@dataclass(frozen=True)
class ReviewOptions:
    """The people-in-the-loop arguments of a task, checked once (:meth:`check`)."""

    ask: bool  # on_user_feedback="ask"
    review: bool  # review="hitl"
    review_plan: bool  # review_plan="hitl"
    question_timeout: float | None
    review_timeout: float | None
    plan_review_timeout: float | None
    on_reject: str
    on_reject_task: str
    max_review_rounds: int
    #: True when every completion of the session belongs to this task (it created the session): a retry
    #: can then count the change requests already sent from the session's history.
    owns_history: bool = False
    #: What a plan or change review nobody answers in time does: fail, approve or reject.
    on_review_timeout: str = "fail"
    #: Who may answer the forms (Airflow's HITLUser dicts); empty: anyone allowed to answer the DAG's forms.
    assigned_users: tuple[dict[str, str], ...] = ()
    #: Called once each time a form opens (Airflow notifiers).
    notifiers: tuple[Any, ...] = ()

    @property
    def person_steps(self) -> bool:
        return self.ask or self.review or self.review_plan

    @classmethod
    def check(
        cls,
        *,
        on_user_feedback: str,
        wait_for_completion: object,
        require_plan_approval: object,
        question_timeout: object,
        review: object,
        review_timeout: object,
        plan_review_timeout: object,
        review_plan: object,
        on_reject: object,
        on_reject_task: object,
        max_review_rounds: object,
        owns_history: bool = False,
        on_review_timeout: object = "fail",
        assigned_users: object = None,
        notifiers: object = None,
    ) -> ReviewOptions:
        """The checked options; "ask" and "hitl" need Airflow's human-in-the-loop feature."""
        question = seconds("question_timeout", question_timeout, allow_none=True)
        change = seconds("review_timeout", review_timeout, allow_none=True)
        plan = seconds("plan_review_timeout", plan_review_timeout, allow_none=True)
        users = hitl_users(assigned_users)
        if review not in REVIEW_POLICIES:
            raise JulesConfigError(f'review must be None or "hitl", got {review!r}.')
        if review_plan not in REVIEW_POLICIES:
            raise JulesConfigError(f'review_plan must be None or "hitl", got {review_plan!r}.')
        options = cls(
            ask=on_user_feedback == ASK,
            review=review == HITL,
            review_plan=review_plan == HITL,
            question_timeout=question,
            review_timeout=change,
            plan_review_timeout=plan,
            on_reject=choice("on_reject", on_reject, ON_REJECT_ACTIONS),
            on_reject_task=choice("on_reject_task", on_reject_task, ON_REJECT_TASK),
            max_review_rounds=integer("max_review_rounds", max_review_rounds, minimum=1, maximum=50),
            owns_history=owns_history,
            on_review_timeout=choice("on_review_timeout", on_review_timeout, REVIEW_TIMEOUT_DECISIONS),
            assigned_users=tuple(users),
            notifiers=tuple(notifier_list(notifiers)),
        )
        if options.review_plan and not require_plan_approval:
            raise JulesConfigError('review_plan="hitl" needs require_plan_approval=True.')
        if options.person_steps and not wait_for_completion:
            raise JulesConfigError(
                'on_user_feedback="ask", review="hitl" and review_plan="hitl" need wait_for_completion=True.'
            )
        if options.person_steps:
            missing = hitl_missing()
            if missing:
                raise JulesConfigError(missing)
        return options


@dataclass(frozen=True)
class ReviewState:
    """Where a task is in its review: a field left None is absent from the stored JSON.

    ``rounds``: the change reviews so far; ``forms``: the forms opened (bounded); ``plan_done``: the plan
    was reviewed; ``idle``: waits resumed without a new request; ``step``, ``event``, ``question_id`` and
    ``round``: the form that is open (its step, the trigger event it answers, the question, the round).
    """

    rounds: list[Json] | None = None
    forms: int | None = None
    plan_done: bool | None = None
    idle: int | None = None
    step: str | None = None
    event: Json | None = None
    question_id: str | None = None
    round: int | None = None

    @classmethod
    def from_json(cls, data: Json) -> ReviewState:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def to_json(self) -> Json:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def kept(self) -> ReviewState:
        """The part of the state a new wait carries on (the open form's part is done)."""
        return ReviewState(**{name: getattr(self, name) for name in KEPT_ACROSS_WAITS})

    def with_(self, **changes: Any) -> ReviewState:
        return replace(self, **changes)

    @property
    def round_list(self) -> list[Json]:
        return list(self.rounds or [])

    @property
    def form_count(self) -> int:
        return int(self.forms or 0)
