"""The public names of ``client/`` that the rest of the package uses (issue #19 item 4: it stands alone).

The hook and the trigger reach nothing private of the client: the connection test is ``check_access`` and
``redact``, the settings' defaults and bounds are the package's public constants, the argument checks live in
``client.validation`` and the poll bound is ``client.timeouts.bounded``.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_jules import client, options
from airflow_provider_jules.client import validation
from airflow_provider_jules.client.errors import JulesAuthError, JulesConfigError
from airflow_provider_jules.client.timeouts import bounded
from tests.fakes import API_KEY, Reply, Script, sync_client


def test_check_access_sends_one_first_page_request_of_one_source() -> None:
    script = Script(Reply(json={"sources": [{"name": "sources/github/o/r"}], "nextPageToken": "t"}))
    access = sync_client(script).check_access()
    assert (access.sources, access.more) == (1, True)
    assert [(s.method, s.path, s.query) for s in script.sent] == [
        ("GET", "/v1alpha/sources", {"pageSize": "1"})
    ]


def test_check_access_on_an_empty_list_sees_no_source_and_no_more() -> None:
    access = sync_client(Script(Reply(json={}))).check_access()
    assert (access.sources, access.more) == (0, False)


def test_check_access_raises_the_typed_error_of_a_refused_key() -> None:
    refused = Reply(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad key"}})
    with pytest.raises(JulesAuthError):
        sync_client(Script(refused)).check_access()


def test_redact_masks_the_clients_key_and_leaves_other_text_alone() -> None:
    c = sync_client(Script())
    assert c.redact(f"echo {API_KEY}!") == "echo ***!"
    assert c.redact("nothing secret") == "nothing secret"


def test_the_settings_constants_are_public_and_are_the_clients_defaults() -> None:
    from airflow_provider_jules.client._base import DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES
    from airflow_provider_jules.client._core import DEFAULT_MAX_RESPONSE_BYTES

    assert client.DEFAULT_TIMEOUT == DEFAULT_TIMEOUT == 30.0
    assert client.DEFAULT_MAX_RESPONSE_BYTES == DEFAULT_MAX_RESPONSE_BYTES
    assert client.MAX_RESPONSE_BYTES == MAX_RESPONSE_BYTES == 2**30
    with pytest.raises(AttributeError):
        client.NO_SUCH_NAME  # noqa: B018


def test_the_argument_checks_are_written_once_in_the_client() -> None:
    for name in ("duration", "integer", "boolean", "optional_string"):
        assert getattr(options, name) is getattr(validation, name), name  # the wait's checks are the client's
    with pytest.raises(JulesConfigError, match="timeout"):
        validation.duration("timeout", 0)


def test_bounded_is_public_and_bounds_an_awaitable() -> None:
    async def main() -> None:
        assert await bounded(asyncio.sleep(0, result=7), 1.0) == 7
        assert await bounded(asyncio.sleep(0, result=8), None) == 8
        with pytest.raises(asyncio.TimeoutError):
            await bounded(asyncio.sleep(10), 0.01)

    asyncio.run(main())
