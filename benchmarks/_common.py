"""Shared helpers of the benchmarks: the simulator as a separate process, loopback HTTP, numbers."""

from __future__ import annotations

import json
import os
import platform
import resource
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789"  # long enough that Airflow's secret masker does not warn about it
#: Where the benchmarks write their JSON results (ignored by git through .tmp/).
OUT_DIR = REPO / ".tmp" / "bench"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- simulator
class SimulatorProcess:
    """``python -m airflow_provider_jules.simulator`` in its own process (optionally pinned to CPUs)."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        scenario: str = "happy",
        cpus: set[int] | None = None,
        tls_dir: Path | None = None,
        round_trip_ms: float = 0.0,
    ) -> None:
        """``tls_dir``: serve HTTPS with a certificate from a throw-away CA made there (its ``ca.pem`` is
        what clients trust); ``round_trip_ms``: the simulator's network model (see ``NetworkModel``)."""
        cmd = [sys.executable, "-m", "airflow_provider_jules.simulator", "--port", "0"]
        cmd += ["--speed", str(speed), "--scenario", scenario, "--api-key", API_KEY]
        self.ca: Path | None = None
        self.ssl_context: ssl.SSLContext | None = None
        if tls_dir is not None:
            from airflow_provider_jules.simulator.tls import make_throwaway_ca

            files = make_throwaway_ca(tls_dir)
            self.ca = files.ca
            self.ssl_context = ssl.create_default_context(cafile=str(files.ca))
            cmd += ["--tls-cert", str(files.cert), "--tls-key", str(files.key)]
        if round_trip_ms:
            cmd += ["--round-trip-ms", str(round_trip_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.proc.pid, cpus)
        assert self.proc.stdout is not None
        self.url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "listening on" in line:
                self.url = line.split("listening on", 1)[1].split()[0]
                break
        if not self.url:
            self.stop()
            raise RuntimeError("the simulator did not start")
        self.speed = speed

    @property
    def conn_json(self) -> str:
        return json.dumps({"conn_type": "jules", "host": self.url, "password": API_KEY})

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"x-goog-api-key": API_KEY}
        if data is not None:
            headers["content-type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310
        with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context) as resp:  # noqa: S310
            raw = resp.read()
        return json.loads(raw) if raw.strip() else {}

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", path, {} if body is None else body)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/_simulator/stats")
        return result

    def create_session(self, prompt: str) -> dict[str, Any]:
        body = {
            "prompt": prompt,
            "sourceContext": {
                "source": "sources/github/myorg/myrepo",
                "githubRepoContext": {"startingBranch": "main"},
            },
        }
        result: dict[str, Any] = self.post("/v1alpha/sessions", body)
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def route_count(stats: dict[str, Any], route: str) -> int:
    return int(stats.get("requests_per_route", {}).get(route, 0))


def non_2xx(stats: dict[str, Any]) -> int:
    return sum(int(n) for code, n in stats.get("requests_per_status", {}).items() if not code.startswith("2"))


# ------------------------------------------------------------------------------------------- process
def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0.0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) / 2**20
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def write_json(name: str, data: Any) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path
