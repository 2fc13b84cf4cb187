"""How a Jules task fails: the named error of a session's failing outcome, and which errors skip retries.

Shared by the follower, the review and the operators (none of them imports another for it).
"""

from __future__ import annotations

from airflow_provider_jules._compat import AirflowException, AirflowFailException
from airflow_provider_jules.links.urls import check_session_url
from airflow_provider_jules.watch import is_fatal


class JulesSessionError(AirflowException):
    """A Jules session ended with an outcome that fails the task; carries the outcome and the session link
    (only a link that passes :func:`~airflow_provider_jules.links.urls.check_session_url`: the message goes
    to the task log, whose view makes links of URLs)."""

    def __init__(self, outcome: str, detail: str, *, session_id: str, url: str | None) -> None:
        self.outcome = outcome
        self.session_id = session_id
        self.url = url = check_session_url(url)[0] if url else None
        where = f" Open {url} to see the session." if url else ""
        super().__init__(f"Jules session {session_id} ended with outcome '{outcome}': {detail}{where}")


def fail_fast(exc: BaseException) -> BaseException:
    """Errors no retry can fix (bad input, bad key, quota) fail the task at once, without burning retries."""
    if is_fatal(exc):
        failed: BaseException = AirflowFailException(str(exc))
        return failed
    return exc


def final_error(outcome: str, detail: str, *, session_id: str, url: str | None) -> AirflowFailException:
    """A :class:`JulesSessionError` that no retry can fix, raised as AirflowFailException."""
    return AirflowFailException(str(JulesSessionError(outcome, detail, session_id=session_id, url=url)))
