"""A production-shaped Airflow for the system tests (issue #21): PostgreSQL, the CeleryExecutor with Redis.

* :func:`postgres_server` runs Debian's PostgreSQL (``initdb`` into a throw-away folder, ``postgres`` on a
  free 127.0.0.1 port; as the ``postgres`` user when the tests run as root: PostgreSQL refuses root).
* :func:`redis_server` runs ``redis-server`` on a free 127.0.0.1 port, without persistence.
* :func:`production_stack` starts both, then :func:`harness.airflow_stack` on them (``airflow db migrate``
  against PostgreSQL, the CeleryExecutor, the Celery result backend in PostgreSQL) with the components asked
  for, e.g. two ``celery worker``, two schedulers, two triggerers, the API server and the DAG processor.

Every process is started here and stopped here, by PID. :func:`require_production_stack` skips a local run
that lacks PostgreSQL, Redis or the ``system`` extra, with the command that installs them; under CI
(``CI=true``) it fails instead: CI must not skip these tests.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.system.harness import AirflowStack, airflow_stack, free_port, poll, say, tail

#: The Python packages of the ``system`` extra (pyproject.toml) the stack needs.
MODULES = ("psycopg2", "asyncpg", "redis", "celery", "airflow.providers.celery")
APT = "apt-get install -y postgresql redis-server"
PIP = "make venv (the `system` extra: pip install -e '.[system]')"
DB_USER = "airflow"
DB_NAME = "airflow"


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``postgres`` (Debian: /usr/lib/postgresql/<version>/bin, off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


def _is_root() -> bool:
    return os.geteuid() == 0


def _pg_user() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` when we are root (it refuses root), else ourselves."""
    return "postgres" if _is_root() else None


def missing_requirements() -> list[str]:
    """What this machine lacks for the production stack, each with the command that installs it."""
    missing: list[str] = []
    pg = postgres_bin()
    if pg is None or not (pg / "initdb").exists():
        missing.append(f"PostgreSQL (initdb, postgres): {APT}")
    elif _is_root():
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append(f"the 'postgres' user (PostgreSQL refuses to run as root): {APT}")
    if shutil.which("redis-server") is None:
        missing.append(f"redis-server: {APT}")
    modules = []
    for module in MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                modules.append(module)
        except ModuleNotFoundError:
            modules.append(module)
    if modules:
        missing.append(f"Python packages {', '.join(modules)}: {PIP}")
    return missing


def require_production_stack() -> None:
    """Skip (a local run) or fail (CI) when the machine cannot run the production stack."""
    missing = missing_requirements()
    if not missing:
        return
    message = "the production-shaped stack needs " + "; ".join(missing)
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{message} (CI must not skip these tests; .ci/run installs them)", pytrace=False)
    pytest.skip(message)


# ------------------------------------------------------------------------------------------- services
def _stop(name: str, proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float = 30) -> None:
    """``sig`` to one process we started (by PID), bounded wait, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{name} (pid {proc.pid}) ignored {sig.name} for {timeout:.0f} s; killing it")
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def _service(
    name: str, args: list[str], log: Path, cwd: Path, stop_signal: signal.Signals, as_postgres: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    user = _pg_user() if as_postgres else None
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, user=user, group=user
        )
    try:
        yield proc
    finally:
        _stop(name, proc, stop_signal)


def _ready(name: str, proc: subprocess.Popen[bytes], log: Path, probe: Any, timeout: float = 60) -> None:
    def alive() -> None:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{tail(log)}")

    poll(f"{name} to accept connections", probe, timeout, interval=0.2, check=alive)


@contextlib.contextmanager
def postgres_server(root: Path) -> Iterator[str]:
    """A throw-away PostgreSQL on 127.0.0.1 with database ``airflow`` owned by user ``airflow`` (trust auth,
    loopback only). Yields the libpq DSN."""
    import psycopg2

    pg = postgres_bin()
    assert pg is not None
    data = root / "pgdata"
    data.mkdir()
    log = root / "postgres.out"
    if _is_root():
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
    began = time.monotonic()
    init = subprocess.run(
        [str(pg / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
        cwd=root,
        capture_output=True,
        timeout=120,
        user=_pg_user(),
        group=_pg_user(),
    )
    assert init.returncode == 0, init.stdout.decode()[-3000:] + init.stderr.decode()[-3000:]
    port = free_port()
    args = [
        str(pg / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={data}",
        # A test database: nothing survives the test, so no durability (and less disk and CPU).
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=300",
    ]
    # SIGINT: PostgreSQL's fast shutdown (clients disconnected, no wait for them).
    with _service("postgres", args, log, root, signal.SIGINT, as_postgres=True) as proc:
        admin = f"host=127.0.0.1 port={port} user={DB_USER} dbname=postgres connect_timeout=5"

        def accepts() -> bool | None:
            with contextlib.suppress(psycopg2.OperationalError):
                psycopg2.connect(admin).close()
                return True
            return None

        _ready("postgres", proc, log, accepts)
        with contextlib.closing(psycopg2.connect(admin)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        say(f"PostgreSQL (pid {proc.pid}) on 127.0.0.1:{port} in {time.monotonic() - began:.1f} s")
        yield f"host=127.0.0.1 port={port} user={DB_USER} dbname={DB_NAME} connect_timeout=5"


@contextlib.contextmanager
def redis_server(root: Path) -> Iterator[str]:
    """A throw-away redis-server on 127.0.0.1 (no persistence). Yields the broker URL."""
    import redis

    port = free_port()
    log = root / "redis.out"
    args = [
        str(shutil.which("redis-server")),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    with _service("redis-server", args, log, root, signal.SIGTERM) as proc:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2)

        def pong() -> bool | None:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                return True if client.ping() else None
            return None

        _ready("redis-server", proc, log, pong)
        client.close()
        say(f"redis-server (pid {proc.pid}) on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}/0"


def celery_env(dsn: str, broker: str) -> dict[str, str]:
    """Airflow's configuration for PostgreSQL and the CeleryExecutor (environment variables)."""
    parts = dict(item.split("=", 1) for item in dsn.split())
    url = f"{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{url}",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        # The explicit driver: the result backend's SQLAlchemy URL goes through Celery's db+ scheme.
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{url}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
    }


def worker_ready(stack: AirflowStack, name: str, timeout: float = 120) -> None:
    """Wait (bounded) until Celery worker ``name`` consumes tasks (its banner's "ready." line)."""

    def ready() -> bool | None:
        text = stack.log_path(name).read_text(errors="replace")
        return True if f"{name}@127.0.0.1 ready." in text else None

    poll(f"celery worker {name} to be ready", ready, timeout, interval=0.5, check=stack.check_alive)


@contextlib.contextmanager
def production_stack(
    sim: Any,
    components: list[str],
    bundles: list[tuple[str, Path]],
    extra_env: dict[str, str] | None = None,
) -> Iterator[AirflowStack]:
    """PostgreSQL, Redis and the given Airflow components (CeleryExecutor); all stopped and removed after."""
    require_production_stack()
    root = Path(tempfile.mkdtemp(prefix="jules-system-pg-"))
    try:
        with postgres_server(root) as dsn, redis_server(root) as broker:
            env = {**celery_env(dsn, broker), **(extra_env or {})}
            with airflow_stack(sim, components, bundles, env, dsn=dsn) as stack:
                with stack.logs_on_failure():
                    for name in components:
                        if name.startswith("celery-worker"):
                            worker_ready(stack, name)
                yield stack
    finally:
        shutil.rmtree(root, ignore_errors=True)
