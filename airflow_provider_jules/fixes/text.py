"""What a fix session is called and told: the failure signature, the title that carries it, the redaction
every sent text passes through, and the prompt.

Pure functions over a :class:`~airflow_provider_jules.fixes.report.FailureReport`; the only Airflow call is
the secrets masker (:func:`airflow_redact`), looked up when a text is redacted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.jsontext import cut

if TYPE_CHECKING:
    from airflow_provider_jules.fixes.report import FailureReport

#: The marker a fix session's title starts with: ``[jules-fix <16 hex>]``. It survives a title cut at the
#: end, and it is how the notifier finds its own sessions in the account's session list.
TITLE_MARK = "[jules-fix {}]"
_MARK = re.compile(r"^\s*\[jules-fix ([0-9a-f]{16})\]")
_TASK = re.compile(r"^\s*\[jules-fix [0-9a-f]{16}\] Fix (\S+):")
TITLE_LIMIT = 200
NO_EXCEPTION = "NoException"
# user:password@ (or token@) in any scheme://host URL: the credentials go, the rest of the URL stays.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@:]+(?::[^\s/@]*)?@")
MASK = "***"


def signature(report: FailureReport) -> str:
    """16 hex digits from the DAG id, task id, exception type and the innermost frame of the DAG's own
    code (file and function). No line number, no message, no run id: the same bug in another run, another
    try or another deployment has the same signature; a line moved by an unrelated edit keeps it."""
    frame = report.frame
    parts = [
        report.dag_id,
        report.task_id,
        report.exception_type or NO_EXCEPTION,
        frame.file if frame else "",
        frame.function if frame else "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def title(report: FailureReport, sig: str) -> str:
    """``[jules-fix <sig>] Fix <dag>.<task>: <ExceptionType>``, at most 200 characters."""
    what = report.exception_type or "failure"
    return cut(f"{TITLE_MARK.format(sig)} Fix {report.dag_id}.{report.task_id}: {what}", TITLE_LIMIT)


def signature_of(session_title: object) -> str | None:
    """The signature in a session title written by :func:`title`, else None."""
    if not isinstance(session_title, str):
        return None
    m = _MARK.match(session_title)
    return m.group(1) if m else None


def task_of(session_title: object) -> str:
    """The ``<dag>.<task>`` a fix session's title names, else "" (Airflow ids hold no spaces)."""
    m = _TASK.match(session_title) if isinstance(session_title, str) else None
    return m.group(1) if m else ""


def compile_patterns(patterns: object) -> tuple[re.Pattern[str], ...]:
    """The ``redact_patterns`` argument: a list of regexes, each checked now (a clear error at DAG parse)."""
    if patterns is None:
        return ()
    if isinstance(patterns, str) or not isinstance(patterns, Iterable):
        raise JulesConfigError(
            f"redact_patterns must be a list of regular expressions, got {type(patterns).__name__}."
        )
    compiled = []
    for p in patterns:
        if not isinstance(p, str) or not p:
            raise JulesConfigError(f"redact_patterns: each pattern must be a non-empty string, got {p!r}.")
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise JulesConfigError(
                f"redact_patterns: {p!r} is not a valid regular expression: {exc}."
            ) from None
    return tuple(compiled)


def airflow_redact(text: str) -> str:
    """Airflow's secrets masker over ``text``: every secret the process has seen (connection passwords and
    extras it fetched, variables with a sensitive name, the Jules API key, ``mask_secret`` values)."""
    from airflow.sdk.log import redact  # type: ignore[attr-defined]

    result = redact(text)
    return result if isinstance(result, str) else text


class Redactor:
    """Every text sent to Jules passes here: Airflow's secrets masker, credentials in URLs, then the
    user's ``redact_patterns`` (each match becomes ``***``)."""

    def __init__(self, patterns: tuple[re.Pattern[str], ...] = (), secrets: Iterable[str] = ()) -> None:
        self.patterns = patterns
        self.secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def __call__(self, text: str) -> str:
        text = airflow_redact(text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)
        for pattern in self.patterns:
            text = pattern.sub(MASK, text)
        return text


def prompt(report: FailureReport, sig: str, extra: str | None) -> str:
    """The fix request (redact it before sending): what failed, where, the traceback, the log tail."""
    frame = report.frame
    lines = [
        "An Apache Airflow task failed. Find the cause in this repository and fix it with the smallest "
        "safe change, with a test when the repository has tests. Open a pull request for a person to "
        "review; do not change unrelated code.",
        "",
        "## The failure",
        f"- DAG id: {report.dag_id}",
        f"- Task id: {report.task_id}",
        f"- Run id: {report.run_id}",
        f"- Try number: {report.try_number if report.try_number is not None else 'unknown'}",
        f"- Operator: {report.operator or 'unknown'}",
        f"- DAG file: {report.dag_file or 'unknown'}",
    ]
    if report.commit:
        lines.append(f"- DAG bundle commit: {report.commit}")
    if report.exception_type:
        lines.append(f"- Exception: {report.exception_type}: {cut(report.message, 2000)}")
    else:
        lines.append(f"- Exception: not available ({report.no_exception_reason})")
    if frame:
        lines.append(
            f"- Innermost frame in the DAG's code: {frame.file}, function {frame.function}, line {frame.line}"
        )
    lines.append(f"- Failure signature: {sig}")
    if report.traceback:
        lines += ["", "## Traceback", "```", report.traceback.rstrip(), "```"]
    lines += ["", "## Task log (last lines of the failed try)"]
    if report.log_tail:
        lines += ["```", report.log_tail.rstrip(), "```"]
    else:
        lines.append(f"Not available: {report.log_note}")
    if extra and extra.strip():
        lines += ["", "## Instructions from the DAG's owners", extra.strip()]
    return "\n".join(lines) + "\n"
