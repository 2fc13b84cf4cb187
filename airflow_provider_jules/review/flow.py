"""The review flow: what a task does with a person in the loop, between two waits for Jules.

:class:`ReviewFlow` is owned by the task's follower
(:class:`~airflow_provider_jules.follower.SessionFollower`) and calls back only what :class:`Host` lists: it
opens a form when Jules asks, completes or proposes a plan, and acts on the person's answer when the task
resumes in ``resume_from_person``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from airflow_provider_jules import history
from airflow_provider_jules._compat import AirflowException, AirflowFailException, AirflowSkipException
from airflow_provider_jules.failures import JulesSessionError, fail_fast, final_error
from airflow_provider_jules.options import WaitOptions, seconds
from airflow_provider_jules.results import Outcome
from airflow_provider_jules.review import forms as rv
from airflow_provider_jules.review.notify import call_notifiers, form_info
from airflow_provider_jules.review.state import STEPS, ReviewOptions, ReviewState
from airflow_provider_jules.watch import EventStatus, validate_event

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

Json = dict[str, Any]

#: Waits resumed without a new request (the session still showed an answered one) before the task gives up.
MAX_IDLE_REWAITS = 20


class Host(Protocol):
    """What the review needs from the follower that owns it."""

    task: BaseOperator
    options: WaitOptions
    hook: Any
    log: Any  # the task's logger
    followed: str | None

    def read_session(self, sid: str) -> tuple[Json, list[Json]]: ...

    def snapshot(self, session: Json, activities: list[Json]) -> Json: ...

    def result(self, context: Context, session: Json, activities: list[Json], event: Json) -> Json: ...

    def judge(self, context: Context, status: str, result: Json) -> Json: ...

    def cleanup(self, sid: str, action: str, *, why: str) -> None: ...

    def rewait(
        self,
        context: Context,
        event: Json,
        session: Json,
        state: ReviewState | None,
        *,
        target_states: list[str] | None = None,
    ) -> Json: ...


class FormOpener:
    """Opens the question, change and plan forms of one task (each at most once per request), and keeps
    the review rounds in the task state store for a retry."""

    def __init__(self, host: Host, options: ReviewOptions) -> None:
        self.host = host
        self.options = options
        self.log = host.log

    # ------------------------------------------------------------------------------------ state
    def initial_state(self, context: Context, sid: str) -> ReviewState:
        """The state of a fresh try: the review rounds kept in the task state store (Airflow >= 3.3) by an
        earlier try that followed the same session."""
        rounds: list[Json] = []
        store: Any = context.get("task_state_store")
        if store is not None:
            try:
                kept = store.get(rv.ROUNDS_KEY)
            except Exception as exc:  # the store is a help for retries, never a reason to fail
                self.log.warning("Could not read the review rounds from the task state store: %s", exc)
                kept = None
            if (
                isinstance(kept, dict)
                and kept.get("session_id") == sid
                and isinstance(kept.get("rounds"), list)
            ):
                rounds = list(kept["rounds"])
        return ReviewState(rounds=rounds, forms=0)

    def save_rounds(self, context: Context, sid: str, rounds: list[Json]) -> None:
        store: Any = context.get("task_state_store")
        if store is None:
            return
        try:
            store.set(rv.ROUNDS_KEY, {"session_id": sid, "rounds": rounds})
        except Exception as exc:
            self.log.warning("Could not keep the review rounds in the task state store: %s", exc)

    # ------------------------------------------------------------------------------------ opening forms
    def before_result(
        self, context: Context, event: Json, session: Json, activities: list[Json], state: ReviewState
    ) -> Json | None:
        """A question (``"ask"``) or a plan to review (``review_plan="hitl"``) opens its form; else None."""
        if event["status"] == EventStatus.NEEDS_INPUT and self.options.ask:
            return self._ask(context, event, session, activities, state)
        if (
            event["status"] == EventStatus.TARGET
            and self.options.review_plan
            and session.get("state") == "AWAITING_PLAN_APPROVAL"
        ):
            result = self.host.snapshot(session, activities)
            timeout = self.timeout(self.options.plan_review_timeout, event)
            plan_state = state.with_(step="plan", event=event)
            return self.open(context, plan_state, rv.plan_review_markdown(result), result, timeout)
        return None

    def after_result(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        result: Json,
        state: ReviewState,
    ) -> Json | None:
        """``review="hitl"``: a finished change opens the change form; else None."""
        if not (
            event["status"] == EventStatus.TARGET
            and self.options.review
            and result["outcome"] == Outcome.COMPLETED.value
        ):
            return None
        sid = event["session_id"]
        sent, latest_answered = history.completions_answered(activities)
        if latest_answered:
            self.log.info("Jules session %s: changes were already requested for this change; waiting.", sid)
            state = self.idle(state, sid)
            return self.host.rewait(context, event, session, state, target_states=["COMPLETED"])
        done = max(len(state.round_list), sent if self.options.owns_history else 0)
        number = done + 1
        request = rv.change_markdown(result, round_number=number, max_rounds=self.options.max_review_rounds)
        state = state.with_(step="change", event=event, round=number)
        return self.open(context, state, request, result, self.timeout(self.options.review_timeout, event))

    def _ask(
        self, context: Context, event: Json, session: Json, activities: list[Json], state: ReviewState
    ) -> Json:
        """Show Jules's question (once) and wait for the person's answer."""
        sid = event["session_id"]
        question = history.last_question(activities)
        qid = history.activity_id(question) if question else None
        if question is None or history.question_answered(activities, qid):
            self.log.info("Jules session %s: the current question was already answered; waiting.", sid)
            return self.host.rewait(context, event, session, self.idle(state, sid))
        result = self.host.snapshot(session, activities)
        text = history.question_text(question)
        request = rv.question_markdown(result, text)
        state = state.with_(step="question", event=event, question_id=qid)
        timeout = self.timeout(self.options.question_timeout, event)
        return self.open(context, state, request, result, timeout, question=text)

    def timeout(self, own: float | None, event: Json) -> float | None:
        """A form's timeout: its own, cut to what is left of the task's overall ``timeout``."""
        values = [v for v in (seconds("form timeout", own, allow_none=True),) if v is not None]
        end_time = event.get("end_time")
        if isinstance(end_time, (int, float)):
            values.append(max(1.0, float(end_time) - time.time()))
        return min(values) if values else None

    def idle(self, state: ReviewState, sid: str) -> ReviewState:
        """Count a wait resumed without a new request (already answered): bounded, never a silent loop."""
        idle = int(state.idle or 0) + 1
        if idle > MAX_IDLE_REWAITS:
            raise AirflowException(
                f"Jules session {sid} kept showing a request that was already answered ({idle} times); "
                "giving up. A retry of this task adopts the same session."
            )
        return state.with_(idle=idle)

    def open(
        self,
        context: Context,
        state: ReviewState,
        request: str,
        result: Json,
        timeout: float | None,
        *,
        question: str | None = None,
    ) -> NoReturn:
        """Show ``request`` to a person (Required Actions), tell the notifiers, and wait for the answer in
        resume_from_person."""
        forms = state.form_count + 1
        if forms > rv.MAX_FORMS:
            raise AirflowFailException(
                f"Jules session {result['session_id']}: {rv.MAX_FORMS} forms were opened for this task; "
                "giving up (every loop is bounded)."
            )
        state = state.with_(forms=forms)
        self.log.info("Waiting for a person on the Required Actions page:\n%s", request)
        context["ti"].xcom_push(key=rv.REQUEST_XCOM_KEY, value=request)
        options = rv.form_options(
            ask=self.options.ask, review=self.options.review, review_plan=self.options.review_plan
        )
        params = rv.form_params(ask=self.options.ask, review=self.options.review)
        step, limit = str(state.step), self.options.max_review_rounds
        subject = rv.subject_for(step, result, question=question, round_number=state.round, max_rounds=limit)
        users = self.options.assigned_users
        form = rv.build_form(request, result, options, params, subject=subject, assigned_users=users)

        def notify() -> None:
            info = form_info(
                context,
                form,
                kind=step,
                result=result,
                round_number=state.round,
                max_rounds=limit,
                timeout_seconds=timeout,
            )
            call_notifiers(self.options.notifiers, self.host.task, context, form, info, self.log)

        rv.open_form(
            self.host.task,
            context,
            form,
            method_name="resume_from_person",
            kwargs={"jules_state": state.to_json()},
            timeout_seconds=timeout,
            poke_interval=min(5.0, self.host.options.poll_interval),
            notify=notify if self.options.notifiers else None,
        )


class ReviewFlow:
    """The people in the loop of one task: the forms it opens (:class:`FormOpener`) and what each answer
    does when the task resumes in ``resume_from_person``."""

    def __init__(self, host: Host, options: ReviewOptions) -> None:
        self.host = host
        self.options = options
        self.log = host.log
        self.opener = FormOpener(host, options)

    def initial_state(self, context: Context, sid: str) -> ReviewState:
        return self.opener.initial_state(context, sid)

    def before_result(
        self, context: Context, event: Json, session: Json, activities: list[Json], state: ReviewState
    ) -> Json | None:
        return self.opener.before_result(context, event, session, activities, state)

    def after_result(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        result: Json,
        state: ReviewState,
    ) -> Json | None:
        return self.opener.after_result(context, event, session, activities, result, state)

    # ------------------------------------------------------------------------------------ answers
    def resume(self, context: Context, event: Any, jules_state: Json | None) -> Json:
        """The person answered (or the form timed out): act on the answer, then follow Jules."""
        state = ReviewState.from_json(dict(jules_state or {}))
        try:
            jules_event = validate_event(state.event)
        except ValueError as exc:
            raise AirflowException(f"Resumed from a Required Actions form without its state: {exc}") from None
        if state.step not in STEPS:
            raise AirflowException(f"Resumed from a Required Actions form of an unknown step {state.step!r}.")
        sid = jules_event["session_id"]
        self.host.followed = sid
        answer = rv.read_answer(event)
        session, activities = self.host.read_session(sid)
        who = answer.reviewer or "the reviewer"
        if answer.option is not None:
            self.log.info(
                "%s chose %r on the %s form of Jules session %s.", who, answer.option, state.step, sid
            )
        step = {"question": self._after_question, "plan": self._after_plan, "change": self._after_change}
        return step[str(state.step)](context, jules_event, session, activities, state, answer)

    def _after_question(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: ReviewState,
        answer: rv.Answer,
    ) -> Json:
        sid = event["session_id"]
        qid = state.question_id
        question = history.find(activities, qid)
        text = history.question_text(question) if question else "(the question is no longer in the session)"
        if answer.error is not None:
            if answer.timed_out:
                self.host.cleanup(
                    sid, self.host.options.on_timeout, why="got no answer to its question in time"
                )
                raise JulesSessionError(
                    Outcome.AWAITING_USER_FEEDBACK.value,
                    f"no one answered Jules's question before the question timeout. Jules asks: {text}",
                    session_id=sid,
                    url=session.get("url"),
                )
            raise AirflowException(f"The question form of Jules session {sid} failed: {answer.error}")
        if answer.option == rv.REJECT:
            return self._reject(
                context, sid, self.host.snapshot(session, activities), "Jules's question", answer
            )
        if history.question_answered(activities, qid):
            self.log.info("Jules session %s: the question was already answered; not sending it again.", sid)
            return self.host.rewait(context, event, session, state)
        if not answer.message:
            self.log.warning("The answer to Jules's question was empty; asking again.")
            result = self.host.snapshot(session, activities)
            timeout = self.opener.timeout(self.options.question_timeout, event)
            request = rv.question_markdown(result, text)
            return self.opener.open(context, state, request, result, timeout, question=text)
        self._send(sid, answer.message)
        self.log.info("Sent the answer of %s to Jules session %s.", answer.reviewer or "the person", sid)
        return self.host.rewait(context, event, session, state)

    def _after_plan(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: ReviewState,
        answer: rv.Answer,
    ) -> Json:
        sid = event["session_id"]
        if answer.timed_out:
            answer = self._on_review_timeout(answer, "the plan review", sid)
        if answer.error is not None:
            if answer.timed_out:
                self.host.cleanup(sid, self.host.options.on_timeout, why="got no plan review in time")
                raise final_error(
                    Outcome.PLAN_NOT_APPROVED.value,
                    "no one approved the plan before plan_review_timeout, which stays inside Jules's "
                    "approval window of about 10 minutes (quirk Q15).",
                    session_id=sid,
                    url=session.get("url"),
                )
            raise AirflowException(f"The plan form of Jules session {sid} failed: {answer.error}")
        result = self.host.snapshot(session, activities)
        if answer.option == rv.REJECT:
            return self._reject(context, sid, result, "Jules's plan", answer)
        if answer.option != rv.APPROVE:
            self.log.warning("%r does not apply to a plan (Approve or Reject); asking again.", answer.option)
            timeout = self.opener.timeout(self.options.plan_review_timeout, event)
            return self.opener.open(context, state, rv.plan_review_markdown(result), result, timeout)
        if session.get("state") == "AWAITING_PLAN_APPROVAL" and history.plan_pending(activities):
            try:
                self.host.hook.approve_plan(sid)
            except Exception as exc:
                raise fail_fast(exc) from exc
            by = answer.reviewer or ("on_review_timeout" if answer.timed_out else "reviewer")
            self.log.info("Approved the plan of Jules session %s (%s).", sid, by)
        elif result["outcome"] == Outcome.PLAN_NOT_APPROVED.value:
            raise final_error(
                Outcome.PLAN_NOT_APPROVED.value,
                "the plan was approved after Jules's approval window closed (quirk Q15).",
                session_id=sid,
                url=result["url"],
            )
        else:
            self.log.info("The plan of Jules session %s was already approved; not approving again.", sid)
        done = state.with_(plan_done=True)
        return self.host.rewait(context, event, session, done, target_states=["COMPLETED"])

    def _after_change(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: ReviewState,
        answer: rv.Answer,
    ) -> Json:
        sid = event["session_id"]
        result = self.host.result(context, session, activities, event)
        rounds = state.round_list
        number = int(state.round or len(rounds) + 1)
        result["review"] = rounds
        if answer.timed_out:
            answer = self._on_review_timeout(answer, f"review round {number}", sid)
        if answer.error is not None:
            if answer.timed_out:
                raise JulesSessionError(
                    result["outcome"],
                    f"no one answered review round {number} before the review timeout; the session and its "
                    "change are kept.",
                    session_id=sid,
                    url=result["url"],
                )
            raise AirflowException(f"The review form of Jules session {sid} failed: {answer.error}")

        def record(decision: str) -> list[Json]:
            kept = rv.record_round(
                rounds, decision=decision, answer=answer, result=result, round_number=number
            )
            self.opener.save_rounds(context, sid, kept)
            result["review"] = kept
            return kept

        if answer.option == rv.APPROVE:
            record("approved")
            return self.host.judge(context, "target", result)
        if answer.option == rv.REJECT:
            record("rejected")
            return self._reject(context, sid, result, "Jules's change", answer)
        if not answer.message:
            self.log.warning("%r came without a message for Jules; asking again.", answer.option)
            limit = self.options.max_review_rounds
            request = rv.change_markdown(result, round_number=number, max_rounds=limit)
            return self.opener.open(
                context, state, request, result, self.opener.timeout(self.options.review_timeout, event)
            )
        return self._request_changes(
            context, event, session, activities, state, answer, result, record, number
        )

    def _request_changes(
        self,
        context: Context,
        event: Json,
        session: Json,
        activities: list[Json],
        state: ReviewState,
        answer: rv.Answer,
        result: Json,
        record: Callable[[str], list[Json]],
        number: int,
    ) -> Json:
        """Request changes: send the message to Jules (once) and follow it, unless the last round is done."""
        sid = event["session_id"]
        limit = self.options.max_review_rounds
        if number >= limit:
            record("changes_requested")
            raise final_error(
                result["outcome"],
                f"review round {number} asked for changes, and max_review_rounds={limit} is "
                f"reached: the feedback was not sent to Jules. Feedback: {answer.message[:2000]}",
                session_id=sid,
                url=result["url"],
            )
        kept = record("changes_requested")
        if history.completions_answered(activities)[1]:
            self.log.info("Jules session %s: the changes were already requested; not sending again.", sid)
        else:
            self._send(sid, answer.message)
            self.log.info("Review round %d: sent the requested changes to Jules session %s.", number, sid)
        return self.host.rewait(
            context, event, session, state.with_(rounds=kept), target_states=["COMPLETED"]
        )

    def _on_review_timeout(self, answer: rv.Answer, what: str, sid: str) -> rv.Answer:
        """A plan or change review nobody answered in time: the answer ``on_review_timeout`` gives
        (Approve or Reject, marked timed out), or the timeout itself (``"fail"``)."""
        decision = self.options.on_review_timeout
        if decision == "fail":
            return answer
        self.log.warning(
            'No one answered %s of Jules session %s before its timeout: %s, as on_review_timeout="%s" says.',
            what,
            sid,
            "approving" if decision == "approve" else "rejecting",
            decision,
        )
        option = rv.APPROVE if decision == "approve" else rv.REJECT
        return rv.Answer(option, "", None, timed_out=True)

    def _send(self, sid: str, message: str) -> None:
        try:
            self.host.hook.send_message(sid, message)
        except Exception as exc:
            raise fail_fast(exc) from exc

    def _reject(self, context: Context, sid: str, result: Json, what: str, answer: rv.Answer) -> Json:
        """Reject: the session is archived, deleted or kept (``on_reject``); the task fails or skips."""
        who = answer.reviewer or "the reviewer"
        if answer.timed_out:
            who = 'on_review_timeout="reject" (no one answered in time)'
        self.host.cleanup(sid, self.options.on_reject, why=f"was rejected by {who}")
        text = f"Jules session {sid}: {who} rejected {what}."
        if answer.message:
            text += f" Comment: {answer.message[:2000]}"
        if self.options.on_reject_task == "skip":
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowSkipException(text + ' Skipping (on_reject_task="skip").')
        raise AirflowFailException(text)
