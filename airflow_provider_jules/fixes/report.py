"""A failed task, read from an Airflow callback context: what Jules is told about it.

:func:`read_failure` never raises: every part it cannot read (no exception in a DAG processor callback, no
log file under ``dag.test()``, no git bundle) becomes an empty field and a note saying why. Texts are bounded
here (traceback, message, log tail); they are redacted later, once, just before sending.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_jules.jsontext import cut

MAX_TRACEBACK_CHARS = 20_000
MAX_MESSAGE_CHARS = 4_000
MAX_LOG_BYTES = 256 * 1024
MAX_LOG_LINE_CHARS = 2_000
NO_EXCEPTION_IN_DAG_PROCESSOR = (
    "this callback ran in Airflow's DAG processor, which gets no exception: a DAG-level "
    "on_failure_callback, or a task that was killed or failed from outside (a timeout of its heartbeat, a "
    "person marking it failed); read the task's log in Airflow"
)
_GITHUB = re.compile(r"(?i)^(?:[a-z+]+://)?(?:[^@/\s]+@)?github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Frame:
    """The innermost traceback frame inside the DAG's own code (file relative to the repository)."""

    file: str
    function: str
    line: int


@dataclass(frozen=True)
class Bundle:
    """Where the DAG came from, when its bundle is a git repository on GitHub (never its credentials)."""

    repository: str | None = None  # owner/repo
    branch: str | None = None
    commit: str | None = None
    subdir: str = ""


@dataclass(frozen=True)
class FailureReport:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int | None
    operator: str
    exception_type: str  # "" when the callback got no exception
    message: str
    traceback: str
    frame: Frame | None
    dag_file: str
    log_tail: str
    log_note: str  # why there is no log tail
    bundle: Bundle
    no_exception_reason: str = NO_EXCEPTION_IN_DAG_PROCESSOR

    @property
    def commit(self) -> str | None:
        return self.bundle.commit


def read_failure(context: Any, *, log_tail_lines: int) -> FailureReport:
    """The report of the failure ``context`` describes (a task or DAG callback context)."""
    ti = _get(context, "ti")
    dag = _get(context, "dag") or _attr(_attr(ti, "task"), "dag")
    exc = _get(context, "exception")
    bundle = read_bundle(ti)
    root = code_root(_attr(dag, "fileloc"), ti, bundle)
    dag_file = _dag_file(dag, root)
    exception_type, message, tb_text, frame = "", "", "", None
    if isinstance(exc, BaseException):
        exception_type = _type_name(exc)
        message = cut(str(exc), MAX_MESSAGE_CHARS)
        tb_text = _traceback_text(exc)
        frame = innermost_frame(exc, root)
    elif isinstance(exc, str) and exc:
        exception_type, message = "AirflowTaskFailure", cut(exc, MAX_MESSAGE_CHARS)
    tail, note = (
        ("", "the callback ran outside the task's worker")
        if exc is None
        else read_log_tail(ti, log_tail_lines)
    )
    task = getattr(ti, "task", None)
    return FailureReport(
        dag_id=str(_attr(ti, "dag_id") or _attr(dag, "dag_id") or ""),
        task_id=str(_attr(ti, "task_id") or ""),
        run_id=str(_attr(ti, "run_id") or _get(context, "run_id") or ""),
        try_number=_int(_attr(ti, "try_number")),
        operator=_operator(task),
        exception_type=exception_type,
        message=message,
        traceback=tb_text,
        frame=frame,
        dag_file=dag_file,
        log_tail=tail,
        log_note=note,
        bundle=bundle,
    )


def _get(context: Any, key: str) -> Any:
    try:
        return context.get(key)
    except Exception:
        return None


def _attr(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # RuntimeTaskInstance properties can raise outside a worker
        return None


def _operator(task: Any) -> str:
    """The operator class, with the decorator's name for a TaskFlow task (``@task (...Operator)``)."""
    if task is None:
        return ""
    kind = str(_attr(task, "task_type") or type(task).__name__)
    name = _attr(task, "operator_name")
    return f"{name} ({kind})" if isinstance(name, str) and name and name != kind else kind


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _folder(fileloc: object) -> Path | None:
    return Path(fileloc).resolve().parent if isinstance(fileloc, str) and fileloc else None


def read_bundle(ti: Any) -> Bundle:
    """A git DAG bundle's GitHub repository, tracked branch and commit (the bundle version)."""
    bundle = _attr(ti, "bundle_instance")
    if bundle is None:
        return Bundle()
    url = _attr(bundle, "repo_url")
    if not isinstance(url, str) or not url:
        url = _attr(_attr(bundle, "hook"), "repo_url")
    m = _GITHUB.match(url.strip()) if isinstance(url, str) else None
    version = _attr(bundle, "version")
    branch = _attr(bundle, "tracking_ref")
    if isinstance(branch, str) and branch.startswith("refs/heads/"):
        branch = branch[len("refs/heads/") :]
    subdir = _attr(bundle, "subdir")
    return Bundle(
        repository=f"{m.group(1)}/{m.group(2)}" if m else None,
        branch=branch if isinstance(branch, str) and branch and m else None,
        commit=version if isinstance(version, str) and version else None,
        subdir=subdir.strip("/") if isinstance(subdir, str) else "",
    )


@dataclass(frozen=True)
class CodeRoot:
    """The folder the DAG's own code lives in, and its path inside the repository (``prefix``)."""

    path: Path
    prefix: str = ""

    def relative(self, file: str | os.PathLike[str]) -> str | None:
        """``file``'s path in the repository, or None when it is not under this root."""
        try:
            rel = Path(file).resolve().relative_to(self.path).as_posix()
        except (ValueError, OSError):
            return None
        return "/".join(p for p in (self.prefix, rel) if p)


def code_root(fileloc: object, ti: Any = None, bundle: Bundle | None = None) -> CodeRoot | None:
    """The git work tree the DAG file is in (a parent folder holding ``.git``); else the DAG bundle's folder
    (a git bundle's checkout without ``.git``: its ``subdir`` is the prefix); else the DAG file's folder."""
    folder = _folder(fileloc)
    for parent in [folder, *folder.parents][:25] if folder else []:
        if (parent / ".git").exists():
            return CodeRoot(parent)
    path = _attr(_attr(ti, "bundle_instance"), "path")
    if isinstance(path, (str, os.PathLike)):
        return CodeRoot(Path(path).resolve(), bundle.subdir if bundle else "")
    return CodeRoot(folder) if folder else None


def _dag_file(dag: Any, root: CodeRoot | None) -> str:
    fileloc = _attr(dag, "fileloc")
    found = root.relative(fileloc) if isinstance(fileloc, str) and fileloc and root else None
    if found:
        return found
    rel = _attr(dag, "relative_fileloc")
    if isinstance(rel, (str, os.PathLike)) and str(rel):
        return Path(rel).as_posix()
    return Path(fileloc).name if isinstance(fileloc, str) else ""


def _traceback_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= MAX_TRACEBACK_CHARS else "...\n" + text[-MAX_TRACEBACK_CHARS:]


def innermost_frame(exc: BaseException, root: CodeRoot | None) -> Frame | None:
    """The deepest frame of ``exc``'s traceback whose file is under ``root`` and not an installed package."""
    if root is None:
        return None
    found = None
    for fs in traceback.extract_tb(exc.__traceback__, limit=500):
        path = Path(fs.filename)
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            continue
        rel = root.relative(path)
        if rel is not None:
            found = Frame(rel, fs.name, fs.lineno or 0)
    return found


def read_log_tail(ti: Any, lines: int) -> tuple[str, str]:
    """The last ``lines`` lines of the failed try's local log file, and a note when there is none."""
    if lines <= 0:
        return "", "log_tail_lines=0"
    try:
        path = log_file(ti)
    except Exception as exc:
        return "", f"the log file's path could not be worked out ({type(exc).__name__})"
    if path is None or not path.is_file():
        return "", (
            "this worker has no local log file for the try (logs go elsewhere: dag.test() prints them, a "
            "remote log handler uploads them)"
        )
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - MAX_LOG_BYTES))
        raw = f.read(MAX_LOG_BYTES).decode("utf-8", "replace").splitlines()
    shown = [cut(_log_line(line), MAX_LOG_LINE_CHARS) for line in raw[-lines:]]
    return "\n".join(shown), ""


def log_file(ti: Any) -> Path | None:
    """``[logging] base_log_folder`` / the rendered ``log_filename_template``, as the worker writes it."""
    from airflow_provider_jules._compat import conf

    template = conf.get("logging", "log_filename_template")
    base = conf.get("logging", "base_log_folder")
    if not template or not base:
        return None
    if "{{" in template:
        import jinja2

        rel = jinja2.Template(template).render(ti=ti, try_number=ti.try_number)
    else:
        rel = template.format(dag_id=ti.dag_id, task_id=ti.task_id, try_number=ti.try_number)
    return Path(str(base)) / str(rel)


def _log_line(line: str) -> str:
    """A structured (JSON) log line as ``timestamp LEVEL event``; any other line as it is."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "event" not in record:
        return line
    parts = [str(record.get("timestamp", "")), str(record.get("level", "")).upper(), str(record["event"])]
    return " ".join(p for p in parts if p)
