"""The google.rpc envelope becomes a typed error; any other body still gives a clear one."""

from __future__ import annotations

import pytest

from airflow_provider_jules.client import (
    JulesAPIError,
    JulesAuthError,
    JulesInvalidArgumentError,
    JulesNotFoundError,
    JulesQuotaExhaustedError,
    JulesRateLimitError,
    JulesServerError,
)
from airflow_provider_jules.client.errors import error_from_response
from tests.fakes import Reply, Script, call

CASES = [
    (401, "UNAUTHENTICATED", JulesAuthError),
    (403, "PERMISSION_DENIED", JulesAuthError),
    (404, "NOT_FOUND", JulesNotFoundError),
    (400, "INVALID_ARGUMENT", JulesInvalidArgumentError),
    (400, "FAILED_PRECONDITION", JulesQuotaExhaustedError),
    (429, "RESOURCE_EXHAUSTED", JulesRateLimitError),
    (500, "INTERNAL", JulesServerError),
    (503, "UNAVAILABLE", JulesServerError),
]


@pytest.mark.parametrize(("http", "status", "cls"), CASES)
def test_envelope_maps_to_typed_error(http, status, cls):
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": []}]
    body = f'{{"error": {{"code": {http}, "message": "m-{status}", "status": "{status}", "details": []}}}}'
    err = error_from_response(http, body.encode())
    assert type(err) is cls
    assert (err.code, err.status, err.message, err.details) == (http, status, f"m-{status}", [])
    err2 = error_from_response(
        http,
        b'{"error": {"code": %d, "status": "%s", "message": "x", "details": %s}}'
        % (http, status.encode(), str(details).replace("'", '"').encode()),
    )
    assert err2.details == details


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "502 Bad Gateway"),
        (b"", "empty body"),
        (b"{not json", "{not json"),
        (b'{"error": "a string"}', '"error": "a string"'),
        (b"[1, 2]", "[1, 2]"),
    ],
)
def test_malformed_error_bodies_still_give_a_clear_error(body, fragment):
    err = error_from_response(502, body, reason="Bad Gateway")
    assert isinstance(err, JulesServerError)
    assert fragment in str(err) and "502" in str(err)


def test_quota_error_says_what_to_do():
    err = error_from_response(
        400,
        b'{"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": "Precondition check failed."}}',
    )
    assert "daily Jules session quota" in str(err)


def test_auth_error_says_where_the_key_goes():
    assert "password field" in str(error_from_response(401, b""))


def test_unknown_4xx_is_a_plain_api_error():
    err = error_from_response(409, b'{"error": {"code": 409, "status": "ABORTED", "message": "conflict"}}')
    assert type(err) is JulesAPIError and err.status == "ABORTED"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_non_json_success_body_is_a_clear_error(kind):
    with pytest.raises(JulesAPIError, match="not JSON"):
        call(kind, Script(Reply(body=b"<html>oops</html>")), "get_session", "1")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_error_names_the_call(kind):
    reply = Reply(
        404,
        json={"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found."}},
    )
    with pytest.raises(JulesNotFoundError) as info:
        call(kind, Script(reply), "get_session", "42")
    assert "GET /v1alpha/sessions/42" in str(info.value)
    assert "Requested entity was not found." in str(info.value)


def test_the_key_echoed_by_the_server_is_masked_in_the_error():
    key = "k-echo-1234567890"
    body = f'{{"error": {{"code": 400, "status": "INVALID_ARGUMENT", "message": "bad key {key}", '
    body += f'"details": [{{"reason": "{key}"}}]}}}}'
    err = error_from_response(400, body.encode(), secret=key)
    assert key not in str(err) and key not in repr(err.details)
    assert "bad key ***" in str(err)
    html = error_from_response(502, f"<p>{key}</p>".encode(), secret=key)
    assert key not in str(html) and "***" in str(html)


def test_deeply_nested_error_body_still_gives_the_typed_error():
    err = error_from_response(503, b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(err, JulesServerError) and len(str(err)) < 1000


def test_the_snippet_reads_only_the_start_of_a_huge_error_body():
    err = error_from_response(502, b"<h1>Bad Gateway</h1>" + b"x" * 50_000_000)
    assert "Bad Gateway" in str(err) and len(str(err)) < 1000
