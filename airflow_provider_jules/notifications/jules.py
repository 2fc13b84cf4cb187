"""``JulesFixNotifier``: a failed task asks Jules for the fix, once per failure, and links it back.

Use it as any Airflow notifier, on a task, in ``default_args`` or on the DAG::

    with DAG(..., default_args={"on_failure_callback": JulesFixNotifier(source="acme/pipelines")}): ...

What happens on a failure (docs: "Self-healing pipelines"):

1. The failure is read from the callback context (:mod:`~airflow_provider_jules.fixes.report`): DAG, task,
   run, try, operator, exception and traceback, the innermost frame in the DAG's own code, the DAG file's
   path in the repository, the tail of the try's log where the worker has it.
2. Its signature (:func:`~airflow_provider_jules.fixes.text.signature`) goes into the session title; every
   text passes the :class:`~airflow_provider_jules.fixes.text.Redactor` before it is sent.
3. :class:`~airflow_provider_jules.fixes.requester.FixRequester` reuses a live session of the same
   signature, holds the daily cap, or opens one and settles a race with a twin.
4. The failed task instance gets the XCom ``jules_fix`` (the "Jules Fix" link reads it) and a log line with
   the session's URL.

It never raises into Airflow's callback chain, never changes the task's state, and returns within
``time_budget`` seconds whatever the API does (the API calls run in a helper thread that the callback stops
waiting for).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseNotifier

from airflow_provider_jules.client import validation
from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import source_name
from airflow_provider_jules.links.jules import FIX_XCOM_KEY

PROMPT_FILE_EXTENSIONS = (".md", ".txt", ".jinja")
MAX_TIME_BUDGET = 120.0


class JulesFixNotifier(BaseNotifier):
    """Ask Jules to fix a failed task: one session (and pull request) per failure signature.

    :param source: the repository Jules works on: ``owner/repo`` or ``sources/github/owner/repo``. Without
        it, the repository (and branch) of the DAG's git bundle on GitHub is used; with neither, the
        notifier logs a warning and opens nothing. Templated.
    :param starting_branch: the branch Jules starts from (default: the git bundle's tracked branch, else
        the repository's default branch). Templated.
    :param jules_conn_id: the Jules connection. Templated.
    :param prompt: extra instructions for Jules, inline or a prompt file (``.md``, ``.txt``, ``.jinja``)
        next to the DAG file, as the operators take it. Templated.
    :param auto_create_pr: the fix arrives as a pull request for a person to review (nothing is merged).
    :param require_plan_approval: Jules waits for a person to approve its plan in the Jules app.
    :param max_sessions_per_day: the most fix sessions the notifier opens on the connection's Jules account
        in 24 hours (counted on the account, over every DAG and deployment). ``0`` opens none.
    :param dedup_window: how long (seconds or a ``timedelta``) a live fix session stands for its failure:
        the same failure within it opens nothing new and points at that session.
    :param time_budget: seconds the whole notifier may take (Airflow ends a failed task's process about
        20 s after the failure is reported): past it, the callback returns and links nothing.
    :param log_tail_lines: how many lines of the failed try's log Jules gets (``0``: none).
    :param redact_patterns: extra regular expressions; every match is replaced by ``***`` in what Jules
        is told (after Airflow's secrets masker and URL credentials).
    """

    template_fields: Sequence[str] = ("source", "starting_branch", "prompt", "jules_conn_id")
    template_ext: Sequence[str] = PROMPT_FILE_EXTENSIONS

    def __init__(
        self,
        *,
        source: str | None = None,
        starting_branch: str | None = None,
        jules_conn_id: str = "jules_default",
        prompt: str | None = None,
        auto_create_pr: bool = True,
        require_plan_approval: bool = False,
        max_sessions_per_day: int = 10,
        dedup_window: float | timedelta = timedelta(days=7),
        time_budget: float = 15.0,
        log_tail_lines: int = 200,
        redact_patterns: Sequence[str] | None = None,
    ) -> None:
        from airflow_provider_jules.fixes.text import compile_patterns

        super().__init__()
        self.source = _checked_source(source)
        self.starting_branch = validation.optional_string("starting_branch", starting_branch)
        if not isinstance(jules_conn_id, str) or not jules_conn_id.strip():
            raise JulesConfigError("jules_conn_id must name an Airflow connection, e.g. 'jules_default'.")
        self.jules_conn_id = jules_conn_id
        self.prompt = validation.optional_string("prompt", prompt)
        self.auto_create_pr = bool(validation.boolean("auto_create_pr", auto_create_pr))
        self.require_plan_approval = bool(validation.boolean("require_plan_approval", require_plan_approval))
        self.max_sessions_per_day = validation.integer(
            "max_sessions_per_day", max_sessions_per_day, minimum=0, maximum=10_000
        )
        self.dedup_window = validation.duration("dedup_window", dedup_window, maximum=90 * 86400.0) or 0.0
        self.time_budget = validation.duration("time_budget", time_budget, maximum=MAX_TIME_BUDGET) or 0.0
        self.log_tail_lines = validation.integer("log_tail_lines", log_tail_lines, minimum=0, maximum=5000)
        compile_patterns(redact_patterns)  # a bad pattern is an error at DAG parse
        self.redact_patterns = list(redact_patterns or [])

    # ------------------------------------------------------------------------------ Airflow's entry points
    def resolve_template_files(self) -> None:
        """A prompt file is read when the notifier renders, with the DAG's template folder (at construction
        there is no DAG yet)."""
        self.prepare_template()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """As Airflow's, also when the context's ``dag`` is a serialized DAG without a template
        environment (``dag.test()`` runs DAG-level callbacks with one). A prompt file that could not be
        read is left out: Airflow 3.1 keeps a field's value when it renders to nothing, so the file's
        name would otherwise be sent as the instructions."""
        if jinja_env is None and not hasattr(context.get("dag"), "get_template_env"):
            jinja_env = self.get_template_env()
        prompt = self.prompt
        super().render_template_fields(context, jinja_env)
        if self.prompt == prompt and _names_file(prompt):
            self.prompt = None

    def render_template(
        self, content: Any, context: Any, jinja_env: Any = None, seen_oids: Any = None
    ) -> Any:
        """A value that merely ends like a file name ("... and update README.md") is inline text; a prompt
        file that is not found is logged and left out (the session still opens)."""
        if isinstance(content, str) and content.endswith(tuple(self.template_ext)):
            env = jinja_env or self.get_template_env(dag=context.get("dag"))
            if any(c.isspace() for c in content):
                return self._render(env.from_string(content), context)
            try:
                return self._render(env.get_template(content), context)
            except Exception as exc:
                self.log.warning(
                    "Jules fix: the prompt file %r could not be read (%s): left out.", content, exc
                )
                return None
        return super().render_template(content, context, jinja_env, seen_oids)

    def __call__(self, *args: Any) -> None:
        """Never raises: a notifier's failure must not change the failed task's outcome or later callbacks."""
        try:
            context: Any = args[0] if len(args) == 1 else {"dag": args[0]}
            run = copy.copy(self)  # render a copy: one notifier object serves every task of a DAG
            run._update_context(context)
            run.render_template_fields(context)
            run.notify(context)
        except Exception as exc:
            self.log.warning("Jules fix: no fix session was requested: %s: %s", type(exc).__name__, exc)

    def notify(self, context: Any) -> None:
        from airflow_provider_jules.fixes.flow import FixFlow

        FixFlow(self, self.log).run(context)


def _names_file(value: object) -> bool:
    """A prompt value that names a prompt file (no whitespace, a prompt file extension)."""
    return (
        isinstance(value, str)
        and value.endswith(PROMPT_FILE_EXTENSIONS)
        and not any(c.isspace() for c in value)
    )


def _checked_source(source: object) -> str | None:
    value = validation.optional_string("source", source)
    if value is None or "{{" in value:
        return value
    source_name(value)  # a malformed source is an error at DAG parse, not at the first failure
    return value


__all__ = ["FIX_XCOM_KEY", "JulesFixNotifier"]
