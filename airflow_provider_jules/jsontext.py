"""Tolerant reads of the API's JSON, and the text helpers that keep it short for logs and XCom.

Shared by the result builder (:mod:`airflow_provider_jules.results`), the diff reader
(:mod:`airflow_provider_jules.diffs`), the activity log (:mod:`airflow_provider_jules.activity_log`) and
the URL checks (:mod:`airflow_provider_jules.links.urls`). Nothing here raises on API data: a field of
another type reads as empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_provider_jules.client.models import activity_kind

Json = dict[str, Any]

ELLIPSIS = "…"


def string(value: object) -> str | None:
    """A string (possibly empty), else None."""
    return value if isinstance(value, str) else None


def text(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def as_dict(value: object) -> Json:
    """A dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def dicts(value: object) -> Iterator[Json]:
    """The dict items of a list (nothing for anything else)."""
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


def kind(activity: Json) -> str:
    """The union member of an activity (``planGenerated``, ...), or "" (never raises)."""
    try:
        return activity_kind(activity)
    except Exception:  # defensive: never raise on API data
        return ""


def member(activity: Json, name: str) -> Json:
    """The activity's union member ``name`` as a dict (empty when missing or not a dict)."""
    return as_dict(activity.get(name))


def utf8(value: str) -> bytes:
    """The UTF-8 bytes of ``value``."""
    # errors="replace": a lone surrogate (valid in JSON, invalid in UTF-8) must not raise.
    return value.encode("utf-8", errors="replace")


def cut(value: str, limit: int) -> str:
    """``value`` when it has at most ``limit`` characters, else its start ending with ``…`` (``limit``
    characters in all)."""
    return value if len(value) <= limit else value[: limit - 1] + ELLIPSIS


def one_line(value: str) -> str:
    """``value`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(value.split())
