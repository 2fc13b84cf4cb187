"""Argument checks, under their old name: written once in :mod:`airflow_provider_jules.client.validation`.

The client needs the same checks and stands alone (it imports nothing else of the package), so they live
there; this module only re-exports them for the package's other parts.
"""

from __future__ import annotations

from airflow_provider_jules.client.validation import (
    MAX_DURATION_SECONDS,
    boolean,
    duration,
    integer,
    optional_string,
)

__all__ = ["MAX_DURATION_SECONDS", "boolean", "duration", "integer", "optional_string"]
