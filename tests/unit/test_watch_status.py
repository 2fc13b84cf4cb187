"""The status of a Watch's terminal event: an enum in the code, the same plain strings in every event."""

from __future__ import annotations

import json

import pytest

from airflow_provider_jules.watch import EVENT_STATUSES, EventStatus, InvalidEventError, Watch, validate_event

SID = "14550388554331055113"


def test_the_statuses_are_the_five_strings_every_release_sent():
    assert EVENT_STATUSES == {"target", "terminal", "needs_input", "timeout", "error"}
    assert {status.value for status in EventStatus} == EVENT_STATUSES


@pytest.mark.parametrize("status", list(EventStatus))
def test_an_event_carries_the_plain_string(status):
    event = Watch(session_id=SID, target_states=["COMPLETED"]).event(status, reason="r", message="m")
    assert type(event["status"]) is str
    assert json.dumps(event["status"]) == f'"{status.value}"'
    assert validate_event(event) is event


def test_an_event_from_the_watch_serializes_as_before():
    watch = Watch(session_id=SID, target_states=["COMPLETED"], end_time=10.0)
    event = watch.check_time(11.0)
    assert json.dumps(event) == (
        '{"status": "timeout", "reason": "deadline", "message": "Session 14550388554331055113 did not finish '
        'before the timeout.", "session_id": "14550388554331055113", "state": null, "cursor": null, '
        '"last_progress_at": null, "question_activity_id": null, "end_time": 10.0, "stall_timeout": null, '
        '"target_states": ["COMPLETED"], "stop_on_feedback": true}'
    )


def test_an_unknown_status_names_the_allowed_ones():
    allowed = r"\['error', 'needs_input', 'target', 'terminal', 'timeout'\]"
    with pytest.raises(InvalidEventError, match=allowed):
        validate_event({"status": "success", "session_id": SID})
