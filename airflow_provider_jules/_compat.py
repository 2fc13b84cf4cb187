"""Names that moved between Airflow 3.1 and 3.3, imported from where each version has them.

The ``type: ignore`` comments cover the version that lacks a name: mypy runs against 3.1 and 3.3.
"""

from __future__ import annotations

from typing import Any

try:  # Airflow >= 3.2 (Task SDK)
    from airflow.sdk.exceptions import (  # type: ignore[attr-defined]
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

try:  # Airflow >= 3.2 (Task SDK)
    from airflow.sdk.exceptions import (  # type: ignore[attr-defined]
        AirflowOptionalProviderFeatureException,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowOptionalProviderFeatureException,
    )

try:  # Airflow >= 3.2
    from airflow.sdk import conf as _conf  # type: ignore[attr-defined]
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf as _conf  # type: ignore[no-redef,assignment]

from airflow.sdk.exceptions import AirflowException  # type: ignore[attr-defined]

conf: Any = _conf

try:  # Airflow >= 3.3: a human-in-the-loop wait parks the task in ``awaiting_input`` (no trigger)
    from airflow.sdk.exceptions import TaskAwaitingInput as _TaskAwaitingInput  # type: ignore[attr-defined]
except ImportError:  # Airflow 3.1 / 3.2: the wait is a deferral to the standard provider's HITLTrigger
    _TaskAwaitingInput = None  # type: ignore[misc,assignment,unused-ignore]

TaskAwaitingInput: Any = _TaskAwaitingInput

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowOptionalProviderFeatureException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskAwaitingInput",
    "TaskDeferred",
    "conf",
]
