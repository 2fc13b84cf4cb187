"""Names that moved between Airflow 3.1 and 3.3, imported from where each version has them."""

from __future__ import annotations

try:  # Airflow >= 3.2 (Task SDK)
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException, TaskDeferred  # type: ignore[no-redef]

try:  # Airflow >= 3.2
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

from airflow.sdk.exceptions import AirflowException

__all__ = ["AirflowException", "AirflowFailException", "TaskDeferred", "conf"]
