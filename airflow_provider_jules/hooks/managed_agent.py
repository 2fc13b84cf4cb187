"""``JulesManagedAgentHook``: Jules behind the common AI provider's managed-agent contract (issue #23).

``BaseManagedAgentHook`` (``airflow.providers.common.ai.managed_agents.base``) is how the common AI provider
calls a vendor's agent: its ``ManagedAgentToolset`` hands a ``@task.agent`` model the agent as one tool, and
its ``FailoverManagedAgentClient`` tries interchangeable agents in order. Here the agent is a Jules
repository (``"acme/web"``, ``"sources/github/acme/web"``) on the hook's ``jules`` connection::

    from airflow_provider_jules.hooks.managed_agent import JulesManagedAgentHook

    web = JulesManagedAgentHook("jules_default").agent("acme/web")  # a BoundManagedAgent

Needs ``apache-airflow-providers-common-ai`` >= 1.0.0 (``pip install 'airflow-provider-jules[common-ai]'``;
it needs Python >= 3.11). Without it, importing this module raises ``AirflowOptionalProviderFeatureException``
(Airflow's signal for an optional feature whose dependency is missing) and the rest of the provider is the
same. The work itself is :mod:`airflow_provider_jules.invocation`; this module maps it to the contract.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_jules._compat import AirflowOptionalProviderFeatureException

try:
    from airflow.providers.common.ai.exceptions import ManagedAgentInvocationError, ManagedAgentRejected
    from airflow.providers.common.ai.managed_agents.base import (
        BaseManagedAgentHook,
        ManagedAgentCapabilities,
        ManagedAgentRef,
        ManagedAgentRequest,
        ManagedAgentResponse,
    )
except ImportError as exc:  # the contract is optional: the extra 'common-ai'
    raise AirflowOptionalProviderFeatureException(
        "JulesManagedAgentHook needs the common AI provider (apache-airflow-providers-common-ai >= 1.0.0, "
        f"Python >= 3.11): pip install 'airflow-provider-jules[common-ai]'. ({exc})"
    ) from exc

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import source_name
from airflow_provider_jules.hooks.jules import JulesHook
from airflow_provider_jules.invocation import (
    DEFAULT_INVOKE_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    Ask,
    Failure,
    Invocation,
    Settings,
    classify,
)

__all__ = ["PLATFORM", "JulesManagedAgentHook"]

#: The ``platform`` of every ``ManagedAgentRef`` of this hook (a metric tag of the common AI provider).
PLATFORM = "google.jules"


class JulesManagedAgentHook(JulesHook, BaseManagedAgentHook):  # type: ignore[misc]
    """Jules as a managed agent of the common AI provider; the agent is a repository (a Jules source).

    ``invoke_agent`` starts a session for the prompt (``AUTO_CREATE_PR``) on the agent's repository, or,
    with ``session_id``, sends the prompt to that session (``sendMessage``), and waits for Jules within the
    request's ``timeout``. The answer's ``text`` is Jules's last message of the round (or a summary), the pull
    request URL and the files changed; ``raw`` is the result dict of :mod:`airflow_provider_jules.results`;
    ``session_id`` continues the session; ``trace_ref`` is ``sessions/<id>``. A question from Jules is an
    answer too (``text`` ``"Jules asks: ..."``; reply with the ``session_id``). Failures are sorted into the
    contract's three classes (docs/managed_agent.rst).

    :param jules_conn_id: the Airflow connection of type ``jules``.
    :param invoke_timeout: seconds to wait when a request names no ``timeout`` (default one hour).
    :param poll_interval: the longest pause between two polls (default 15 s; the first polls come sooner).
    :param on_give_up: what happens to a session this call started when the call gives up before Jules
        finishes (the timeout, polling errors, a killed task): ``"archive"`` (default: pauses it),
        ``"delete"`` or ``"keep"``. A continued session is left as it is.
    :param kwargs: passed to :class:`~airflow_provider_jules.hooks.jules.JulesHook` (``timeout`` per HTTP
        request, ``retry_policy``).

    Vendor options (``ManagedAgentRequest.vendor_options``): ``starting_branch`` (default: the repository's
    default branch), ``title``, ``automation_mode`` (``"AUTO_CREATE_PR"``, the default, or
    ``"AUTOMATION_MODE_UNSPECIFIED"`` for no pull request), ``poll_interval`` and ``on_give_up``. Options
    that would re-target the call (``source``, ``jules_conn_id``, ``base_url``, ...) are refused.
    """

    agent_platform: ClassVar[str] = PLATFORM

    def __init__(
        self,
        jules_conn_id: str = JulesHook.default_conn_name,
        *,
        invoke_timeout: float = DEFAULT_INVOKE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_give_up: str = "archive",
        **kwargs: Any,
    ) -> None:
        super().__init__(jules_conn_id, **kwargs)
        self.settings = Settings.check(
            invoke_timeout=invoke_timeout, poll_interval=poll_interval, on_give_up=on_give_up
        )

    def __repr__(self) -> str:
        return f"JulesManagedAgentHook(jules_conn_id={self.jules_conn_id!r})"

    def resolve_agent(self, agent: str) -> ManagedAgentRef:
        """``sources/github/<owner>/<repo>`` on ``google.jules``; no network call."""
        try:
            name = source_name(agent)
        except JulesConfigError as exc:
            raise ManagedAgentInvocationError(f"Not a Jules agent: {exc}") from None
        return ManagedAgentRef(platform=PLATFORM, name=name)

    def get_agent_capabilities(self, agent: str) -> ManagedAgentCapabilities:
        """Sessions (a ``session_id`` continues one) and a trace reference; no structured output or usage."""
        return ManagedAgentCapabilities(sessions=True, structured_output=False, usage=False, trace=True)

    def invoke_agent(self, agent: str, request: ManagedAgentRequest) -> ManagedAgentResponse:
        """Ask Jules, wait within ``request.timeout`` and return its answer (blocking)."""
        try:
            ask = Ask.check(
                agent,
                prompt=request.prompt,
                messages=request.messages,
                session=request.session_id,
                timeout=request.timeout,
                vendor_options=request.vendor_options,
                settings=self.settings,
            )
            answer = Invocation(self, ask).run()
        except Exception as exc:
            failure = classify(exc)
            if failure is Failure.REJECTED:
                raise ManagedAgentRejected(str(exc)) from exc
            if failure is Failure.TERMINAL:
                raise ManagedAgentInvocationError(str(exc)) from exc
            raise  # transient: unchanged, for the failover group and Airflow's task retry
        return ManagedAgentResponse(
            text=answer.text,
            raw=answer.result,
            session_id=answer.session_id,
            trace_ref=answer.session_name,
        )
