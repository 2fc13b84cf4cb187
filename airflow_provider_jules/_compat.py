"""Names that moved between Airflow 3.1 and 3.3, imported from where each version has them."""

from __future__ import annotations

try:  # Airflow >= 3.2 (Task SDK)
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException, TaskDeferred  # type: ignore[no-redef]

from airflow.sdk.exceptions import AirflowException

__all__ = ["AirflowException", "AirflowFailException", "TaskDeferred"]
