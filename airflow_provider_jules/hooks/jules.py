"""``JulesHook``: the ``jules`` connection and the whole Jules API, sync and async.

The connection: API key in ``password`` ("API Key" in the UI), optional ``host`` ("Base URL", default
``https://jules.googleapis.com``; plain http only to loopback, e.g. the bundled simulator), optional extras
``timeout`` (seconds per HTTP attempt: connect, send and the whole body), ``max_attempts`` (per call,
retries included), ``max_response_bytes`` (cap on one response body, decompressed), ``proxy`` (an
``http(s)://`` proxy for the API; without it the environment's ``HTTPS_PROXY``/``NO_PROXY`` apply; a
loopback Base URL never uses a proxy) and ``pull_request_hosts`` (GitHub Enterprise hosts whose pull request
links are kept besides github.com's, see :mod:`airflow_provider_jules.links.urls`).

The sync methods use :class:`~airflow_provider_jules.client.JulesClient` (requests); the ``a``-prefixed twins
use one :class:`~airflow_provider_jules.client.AsyncJulesClient` (httpx) per hook, resolved with
``aget_connection`` so a trigger never blocks its event loop; the async clients of one event loop share a
few connection pools (a triggerer's Jules triggers hold a few warm connections between them). Call
:meth:`aclose` when done.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_jules.client.errors import JulesConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_jules.client.aio import AsyncJulesClient
    from airflow_provider_jules.client.retry import RetryPolicy
    from airflow_provider_jules.client.sync import JulesClient

Json = dict[str, Any]


class JulesHook(BaseHook):
    """Interact with the Jules REST API (v1alpha).

    :param jules_conn_id: the Airflow connection of type ``jules``.
    :param timeout: seconds per HTTP request; overrides the connection's ``timeout`` extra.
    :param retry_policy: overrides the default :class:`~airflow_provider_jules.client.retry.RetryPolicy`.
    """

    conn_name_attr = "jules_conn_id"
    default_conn_name = "jules_default"
    conn_type = "jules"
    hook_name = "Jules"

    def __init__(
        self,
        jules_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(jules_conn_id, str) or not jules_conn_id.strip():
            raise JulesConfigError("jules_conn_id must name an Airflow connection, e.g. 'jules_default'.")
        self.jules_conn_id = jules_conn_id
        self._timeout = timeout
        self._retry_policy = retry_policy
        self._async_client: AsyncJulesClient | None = None
        self._async_extra: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"JulesHook(jules_conn_id={self.jules_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow 3.1; 3.2+ reads the same from ``get_provider_info()``."""
        from airflow_provider_jules.get_provider_info import get_provider_info

        form = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": list(form["hidden-fields"]),
            "relabeling": dict(form["relabeling"]),
            "placeholders": dict(form["placeholders"]),
        }

    # ------------------------------------------------------------------------------------------ wiring
    def _client_kwargs(self, conn: Connection) -> dict[str, Any]:
        from airflow.sdk.log import mask_secret

        from airflow_provider_jules.client import (
            DEFAULT_MAX_RESPONSE_BYTES,
            DEFAULT_TIMEOUT,
            MAX_RESPONSE_BYTES,
        )
        from airflow_provider_jules.client.retry import RetryPolicy

        if conn.password:
            mask_secret(conn.password)
        extra = conn.extra_dejson if conn.extra else {}
        timeout = self._timeout if self._timeout is not None else _number(extra, "timeout", DEFAULT_TIMEOUT)
        policy = self._retry_policy
        if policy is None and "max_attempts" in extra:
            policy = RetryPolicy(max_attempts=int(_number(extra, "max_attempts", 6, maximum=20)))
        max_bytes = _number(
            extra, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, maximum=MAX_RESPONSE_BYTES
        )
        proxy = extra.get("proxy")
        if proxy is not None and not isinstance(proxy, str):
            raise JulesConfigError("The Jules connection extra 'proxy' must be a URL string.")
        _pull_request_hosts(extra)  # a bad value fails the task before any request, as the other extras do
        return {
            "api_key": conn.password or "",
            "base_url": conn.host or None,
            "timeout": timeout,
            "retry_policy": policy,
            "max_response_bytes": int(max_bytes),
            "proxy": proxy or None,
        }

    def _not_found(self, exc: Exception) -> JulesConfigError:
        env = "AIRFLOW_CONN_" + self.jules_conn_id.upper()
        return JulesConfigError(
            f"The connection {self.jules_conn_id!r} is not defined: create it (type 'Jules', API key in the "
            f'password field) in Admin > Connections, or set {env}=\'{{"conn_type": "jules", '
            f'"password": "<key>"}}\'.'
        )

    def get_conn(self) -> JulesClient:
        """The synchronous client (built once per hook)."""
        return self.client

    @cached_property
    def _connection(self) -> Connection:
        """The connection, read once per hook (the sync client and :attr:`pull_request_hosts` share it)."""
        try:
            return self.get_connection(self.jules_conn_id)
        except Exception as exc:
            if type(exc).__name__ == "AirflowNotFoundException":
                raise self._not_found(exc) from None
            raise

    @cached_property
    def client(self) -> JulesClient:
        from airflow_provider_jules.client.sync import JulesClient

        return JulesClient(**self._client_kwargs(self._connection))

    def new_client(self) -> JulesClient:
        """A synchronous client of its own, from the same connection (not :attr:`client`, which the hook's
        calls share): for a caller that fits each call into a deadline of its own by setting the client's
        ``timeout`` and ``retry_policy`` (the managed-agent hook, :mod:`airflow_provider_jules.invocation`).
        Close it when done."""
        from airflow_provider_jules.client.sync import JulesClient

        return JulesClient(**self._client_kwargs(self._connection))

    @cached_property
    def pull_request_hosts(self) -> tuple[str, ...]:
        """The hosts the connection's extra ``pull_request_hosts`` adds to github.com for pull request links
        (GitHub Enterprise servers), lowercase; ``()`` without it. Read in the worker, where the results, the
        XComs and the extra links are made; the trigger never handles a URL, so its kwargs need none."""
        conn = self._connection
        return _pull_request_hosts(conn.extra_dejson if conn.extra else {})

    async def aget_client(self) -> AsyncJulesClient:
        """The asynchronous client: one per hook, for a trigger's whole life (its connections are shared)."""
        if self._async_client is None:
            from airflow_provider_jules.client.aio import AsyncJulesClient

            try:
                conn = await self.aget_connection(self.jules_conn_id)
            except Exception as exc:
                if type(exc).__name__ == "AirflowNotFoundException":
                    raise self._not_found(exc) from None
                raise
            self._async_client = AsyncJulesClient(**self._client_kwargs(conn))
            self._async_extra = dict(conn.extra_dejson) if conn.extra else {}
        return self._async_client

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (the first page of one source). The answer never holds the key:
        it is masked in any text the server sent back."""
        client: JulesClient | None = None
        try:
            client = self.client
            access = client.check_access()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            return False, message if client is None else client.redact(message)
        more = " (and more)" if access.more else ""
        return True, f"Connected to Jules at {client.base_url}: {access.sources} source(s) visible{more}."

    # ------------------------------------------------------------------------------------------ sync API
    def create_session(
        self,
        prompt: str,
        *,
        source: str | None = None,
        starting_branch: str | None = None,
        title: str | None = None,
        require_plan_approval: bool | None = None,
        automation_mode: str | None = None,
    ) -> Json:
        return self.client.create_session(
            prompt,
            source=source,
            starting_branch=starting_branch,
            title=title,
            require_plan_approval=require_plan_approval,
            automation_mode=automation_mode,
        )

    def get_session(self, session_id: str) -> Json:
        return self.client.get_session(session_id)

    def list_sessions(self, *, page_size: int | None = None, archived: bool | None = None) -> Iterator[Json]:
        return self.client.list_sessions(page_size=page_size, archived=archived)

    def delete_session(self, session_id: str) -> None:
        self.client.delete_session(session_id)

    def archive_session(self, session_id: str) -> Json:
        return self.client.archive_session(session_id)

    def unarchive_session(self, session_id: str) -> Json:
        return self.client.unarchive_session(session_id)

    def send_message(self, session_id: str, prompt: str) -> None:
        self.client.send_message(session_id, prompt)

    def approve_plan(self, session_id: str) -> None:
        self.client.approve_plan(session_id)

    def list_activities(
        self, session_id: str, *, created_after: str | int | None = None, new_session: bool = False
    ) -> Iterator[Json]:
        return self.client.list_activities(session_id, created_after=created_after, new_session=new_session)

    def get_activity(self, session_id: str, activity_id: str) -> Json:
        return self.client.get_activity(session_id, activity_id)

    def list_sources(self, *, filter: str | None = None) -> Iterator[Json]:
        return self.client.list_sources(filter=filter)

    def get_source(self, source: str) -> Json:
        return self.client.get_source(source)

    # ------------------------------------------------------------------------------------------ async API
    async def acreate_session(self, prompt: str, **fields: Any) -> Json:
        return await (await self.aget_client()).create_session(prompt, **fields)

    async def aget_session(self, session_id: str) -> Json:
        return await (await self.aget_client()).get_session(session_id)

    async def alist_sessions(
        self, *, page_size: int | None = None, archived: bool | None = None
    ) -> AsyncIterator[Json]:
        client = await self.aget_client()
        async for item in client.list_sessions(page_size=page_size, archived=archived):
            yield item

    async def alist_session_pages(
        self, *, page_size: int | None = None, archived: bool | None = None
    ) -> AsyncIterator[list[Json]]:
        """The session list page by page (see ``AsyncJulesClient.list_session_pages``)."""
        client = await self.aget_client()
        async for page in client.list_session_pages(page_size=page_size, archived=archived):
            yield page

    async def apull_request_hosts(self) -> tuple[str, ...]:
        """:attr:`pull_request_hosts`, read with ``aget_connection`` (for a trigger's event loop)."""
        await self.aget_client()
        return _pull_request_hosts(self._async_extra)

    async def adelete_session(self, session_id: str) -> None:
        await (await self.aget_client()).delete_session(session_id)

    async def aarchive_session(self, session_id: str) -> Json:
        return await (await self.aget_client()).archive_session(session_id)

    async def aunarchive_session(self, session_id: str) -> Json:
        return await (await self.aget_client()).unarchive_session(session_id)

    async def asend_message(self, session_id: str, prompt: str) -> None:
        await (await self.aget_client()).send_message(session_id, prompt)

    async def aapprove_plan(self, session_id: str) -> None:
        await (await self.aget_client()).approve_plan(session_id)

    async def alist_activities(
        self, session_id: str, *, created_after: str | int | None = None, new_session: bool = False
    ) -> AsyncIterator[Json]:
        client = await self.aget_client()
        async for item in client.list_activities(
            session_id, created_after=created_after, new_session=new_session
        ):
            yield item

    async def aget_activity(self, session_id: str, activity_id: str) -> Json:
        return await (await self.aget_client()).get_activity(session_id, activity_id)

    async def alist_sources(self, *, filter: str | None = None) -> AsyncIterator[Json]:
        client = await self.aget_client()
        async for item in client.list_sources(filter=filter):
            yield item

    async def aget_source(self, source: str) -> Json:
        return await (await self.aget_client()).get_source(source)


def _pull_request_hosts(extra: dict[str, Any]) -> tuple[str, ...]:
    from airflow_provider_jules.links.urls import PULL_REQUEST_HOSTS_EXTRA, allowed_hosts

    try:
        return allowed_hosts(extra.get(PULL_REQUEST_HOSTS_EXTRA))
    except ValueError as exc:
        raise JulesConfigError(
            f"The Jules connection extra {PULL_REQUEST_HOSTS_EXTRA!r} must name the hosts of a GitHub "
            f"Enterprise server, e.g. 'github.example.com': {exc}."
        ) from None


def _number(extra: dict[str, Any], key: str, default: float, *, maximum: float | None = None) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError, OverflowError):
        raise JulesConfigError(
            f"The Jules connection extra {key!r} must be a number, got {value!r}."
        ) from None
    if not math.isfinite(number):
        raise JulesConfigError(f"The Jules connection extra {key!r} must be a finite number, got {value!r}.")
    if number <= 0:
        raise JulesConfigError(f"The Jules connection extra {key!r} must be positive, got {value!r}.")
    if maximum is not None and number > maximum:
        raise JulesConfigError(
            f"The Jules connection extra {key!r} must be at most {maximum:g}, got {value!r}."
        )
    return number
