"""The run marker: which task instance (and which series of its tries) a session belongs to.

The operators put the marker at the end of every session title they create (:func:`run_marker`), so a retry
finds the session its earlier try created (the marker search); the forms show the title without it
(:func:`strip_marker`). Built and parsed here only.
"""

from __future__ import annotations

import hashlib
import re

#: ``[airflow-<16 hex digits>]`` at the end of a title, with the spaces around it.
MARKER_PATTERN = re.compile(r"\s*\[airflow-[0-9a-f]{16}\]\s*$")


def run_marker(
    dag_id: str, run_id: str, task_id: str, map_index: int | None, series: int | None = None
) -> str:
    """The deterministic marker of one task instance's tries of one series, put in the session title.

    ``series`` is the task instance's ``max_tries``: the same for a try and its retries, set anew by
    Airflow when the task instance is cleared. So a retry finds the session of its earlier try, and a
    cleared task does not.
    """
    key = f"{dag_id}\x1f{run_id}\x1f{task_id}\x1f{map_index if map_index is not None else -1}"
    if series is not None:
        key += f"\x1f{series}"
    return "airflow-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def marked_title(base: str, marker: str) -> str:
    """The session title: ``base`` with the marker appended (see :func:`strip_marker`)."""
    return f"{base} [{marker}]"


def strip_marker(title: str) -> str:
    """The title without the provider's task-instance marker."""
    return MARKER_PATTERN.sub("", title).strip()


def series_of(ti: object) -> int | None:
    """Which series of tries this one belongs to: ``max_tries`` changes on every clear, not on a retry."""
    value = getattr(ti, "max_tries", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
