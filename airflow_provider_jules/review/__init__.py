"""The review room: a person in the loop, on Airflow's own Required Actions page.

Three kinds of form, all answered in the Airflow UI (or its REST API) and never while a worker slot is held:

* a **question** (``on_user_feedback="ask"``): Jules's question, answered in a free-text field;
* a **change review** (``review="hitl"``): the finished change, with Approve / Request changes / Reject;
* a **plan review** (``review_plan="hitl"``): the plan's numbered steps, with Approve / Reject.

The wait for the person is Airflow's: on Airflow >= 3.3 the task raises ``TaskAwaitingInput`` (state
``awaiting_input``, no trigger; the scheduler enforces the timeout); on 3.1 and 3.2 it defers to the standard
provider's ``HITLTrigger``. Both resume the operator in ``resume_from_person`` with the state this module
keeps as plain JSON in the method kwargs (they live in the task instance row, so a triggerer restart loses
nothing), and the round history also in the task state store (Airflow >= 3.3, for retries).

**One form per task instance.** Airflow stores one HITL detail per task instance (its primary key is the
task instance id, kept across tries); a second ``upsert`` only clears the earlier response and keeps the
first subject, body and options. So every form a task opens after its first one *shows the first one's
text and options*. This module therefore gives each task instance one stable form:

* the options are fixed by the operator's configuration (:func:`form_options`), so every step finds the
  options it needs;
* the subject says what the first request asks and about what ("Jules asks: ...", "Review Jules's change
  (round 1 of 3): ...", "Approve Jules's plan: ..."; :func:`subject_for`); the body is written for the
  first request and says where the current one is: the task log and the ``jules_request`` XCom (both
  always show the latest question, change or plan), and the session and pull request links (whose pages
  always show the latest state); the notifiers (:mod:`.notify`) get each request's own subject.

The parts: :mod:`.forms` (what a form shows, how the task waits for it, how an answer is read),
:mod:`.state` (the checked :class:`ReviewOptions` and the typed :class:`ReviewState` carried from form to
form), :mod:`.flow` (:class:`ReviewFlow`, owned by the task's follower: which form opens when, and what
each answer does) and :mod:`.notify` (the task's notifiers, called once each time a form opens). Nothing
here imports the standard provider at DAG-parse time.
"""

from __future__ import annotations

from airflow_provider_jules.options import ASK, DEFAULT_MAX_REVIEW_ROUNDS, DEFAULT_PLAN_REVIEW_TIMEOUT, HITL
from airflow_provider_jules.review.flow import MAX_IDLE_REWAITS, ReviewFlow
from airflow_provider_jules.review.forms import (
    APPROVE,
    DIFF_EXCERPT_LINES,
    MAX_BODY_CHARS,
    MAX_FORMS,
    MESSAGE,
    MIN_AIRFLOW_VERSION,
    MIN_STANDARD_VERSION,
    ON_REJECT_ACTIONS,
    ON_REJECT_TASK,
    REJECT,
    REQUEST_CHANGES,
    REQUEST_XCOM_KEY,
    REVIEW_POLICIES,
    ROUNDS_KEY,
    SEND_ANSWER,
    STANDARD_PROVIDER,
    SUBJECT_MAX_CHARS,
    Answer,
    Form,
    build_form,
    change_markdown,
    form_options,
    form_params,
    hitl_missing,
    open_form,
    plan_markdown,
    plan_review_markdown,
    question_markdown,
    read_answer,
    record_round,
    reuse_note,
    subject_for,
    title_of,
)
from airflow_provider_jules.review.state import ReviewOptions, ReviewState

__all__ = [
    "APPROVE",
    "ASK",
    "DEFAULT_MAX_REVIEW_ROUNDS",
    "DEFAULT_PLAN_REVIEW_TIMEOUT",
    "DIFF_EXCERPT_LINES",
    "HITL",
    "MAX_BODY_CHARS",
    "MAX_FORMS",
    "MAX_IDLE_REWAITS",
    "MESSAGE",
    "MIN_AIRFLOW_VERSION",
    "MIN_STANDARD_VERSION",
    "ON_REJECT_ACTIONS",
    "ON_REJECT_TASK",
    "REJECT",
    "REQUEST_CHANGES",
    "REQUEST_XCOM_KEY",
    "REVIEW_POLICIES",
    "ROUNDS_KEY",
    "SEND_ANSWER",
    "STANDARD_PROVIDER",
    "SUBJECT_MAX_CHARS",
    "Answer",
    "Form",
    "ReviewFlow",
    "ReviewOptions",
    "ReviewState",
    "build_form",
    "change_markdown",
    "form_options",
    "form_params",
    "hitl_missing",
    "open_form",
    "plan_markdown",
    "plan_review_markdown",
    "question_markdown",
    "read_answer",
    "record_round",
    "reuse_note",
    "subject_for",
    "title_of",
]
