"""``@task.jules``: a TaskFlow task whose function returns the prompt of a Jules session.

.. code-block:: python

    @task.jules(source="acme/web", deferrable=True)
    def fix(issue: dict) -> str:
        return f"Fix issue #{issue['number']}: {issue['title']}"


    fix.expand(issue=open_issues())

The decorator takes every argument of
:class:`~airflow_provider_jules.operators.jules.JulesCreateSessionOperator` (``source``,
``starting_branch``, ``deferrable``, ``poll_interval``, ``timeout``, ``on_user_feedback``,
``on_no_changes``, ...), including the people-in-the-loop ones (``on_user_feedback="ask"``,
``question_timeout``, ``review="hitl"``, ``on_reject``, ``on_reject_task``, ``max_review_rounds``,
``review_plan="hitl"``, ``on_review_timeout``, ``assigned_users``, ``notifiers``), and returns the same
result dict. The function's return value is sent to Jules as it is (it is not rendered with Jinja again:
build it with Python), unless it names a prompt file
(``"prompts/fix.md"``, see the operator's ``prompt``), which is read and rendered with the function's
arguments in the Jinja context. An empty or non-string value fails the task before any request. When the
decorator names no ``source`` and the function has a ``source`` argument (``fix.expand(source=...)``), that
argument is the session's repository. Registered as ``task.jules`` through the provider info's
``task-decorators``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory
from airflow.sdk.definitions._internal.types import SET_DURING_EXECUTION
from airflow.sdk.definitions.context import context_merge

from airflow_provider_jules._compat import AirflowFailException
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

try:  # Airflow >= 3.2 (kept out of _compat: the operators module must not load the decorator machinery)
    from airflow.sdk.bases.decorator import determine_kwargs  # type: ignore[attr-defined]
except ImportError:  # Airflow 3.1
    from airflow.utils.operator_helpers import determine_kwargs  # type: ignore[no-redef,attr-defined]

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.bases.decorator import TaskDecorator


class _JulesDecoratedOperator(DecoratedOperator, JulesCreateSessionOperator):  # type: ignore[misc]
    """Calls the function for the prompt, then runs :class:`JulesCreateSessionOperator` with it."""

    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *JulesCreateSessionOperator.template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **JulesCreateSessionOperator.template_fields_renderers,
    }
    custom_operator_name: str = "@task.jules"
    # The rendered-fields view shows the prompt the function returned, not the placeholder.
    overwrite_rtif_after_execution: bool = True

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("source", None)
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            prompt=SET_DURING_EXECUTION,
            **kwargs,
        )

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        prompt = self.python_callable(*self.op_args, **kwargs)
        if not isinstance(prompt, str) or not prompt.strip():
            raise AirflowFailException(
                f"The function of @task.jules task {self.task_id!r} must return the prompt, a non-empty "
                f"string; it returned {_describe(prompt)}. Nothing was sent to Jules."
            )
        # A returned file name ("prompts/fix.md") is read and rendered like an operator's prompt file, with
        # the function's arguments in the Jinja context ({{ source }} in an .expand(source=...) task).
        self.prompt = self.render_template(prompt, context) if self._names_prompt_file(prompt) else prompt
        if self.source is None and isinstance(kwargs.get("source"), str):
            # fix.expand(source=repositories.output): the function's ``source`` argument is the repository
            # unless the decorator names one.
            self.source = kwargs["source"]
        return JulesCreateSessionOperator.execute(self, context)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return "an empty string"
    return f"a value of type {type(value).__name__}"


def jules_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """Wrap a function that returns a prompt into a :class:`JulesCreateSessionOperator` task."""
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_JulesDecoratedOperator,
        **kwargs,
    )
