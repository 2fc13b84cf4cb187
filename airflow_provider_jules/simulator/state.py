"""What the app and the Python API share: the engine, the request log with its counters, and the faults.

:class:`SimulatorState` is thread-safe: the server's event loop and the test's thread both use it.
"""

from __future__ import annotations

import collections
import random
import threading
from typing import Any

from airflow_provider_jules.simulator.config import FaultConfig, FaultRule, SimulatorConfig
from airflow_provider_jules.simulator.engine import Engine


class SimulatorState:
    """Engine + request log + stats + faults: everything the app and the Python API share."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self._lock = threading.Lock()
        self.generation = 0  # bumped by each reset of the log
        self.set_faults(config.faults)
        self.reset_log()

    # ---- log / stats
    def reset_log(self) -> None:
        """A clean log. A request still being answered (e.g. held by an injected latency) belongs to the
        log it arrived under: it is not recorded in this one (see :meth:`record`)."""
        with self._lock:
            self.generation += 1
            self.log: collections.deque[dict[str, Any]] = collections.deque(
                maxlen=self.config.max_recorded_requests
            )
            self.by_route: collections.Counter[str] = collections.Counter()
            self.by_status: collections.Counter[str] = collections.Counter()
            self.by_route_status: dict[str, collections.Counter[str]] = {}
            self.total_requests = 0

    def record(self, entry: dict[str, Any], generation: int | None = None) -> None:
        """Log one answered request; ``generation`` is :attr:`generation` when it arrived (a request that
        arrived before a reset is left out of the new log)."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            self.log.append(entry)
            self.total_requests += 1
            route = entry["route"]
            status = str(entry["status"])
            self.by_route[route] += 1
            self.by_status[status] += 1
            self.by_route_status.setdefault(route, collections.Counter())[status] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": self.total_requests,
                "requests_per_route": dict(self.by_route),
                "requests_per_status": dict(self.by_status),
                "requests_per_route_status": {k: dict(v) for k, v in self.by_route_status.items()},
                "sessions_created": self.engine.sessions_created,
                "sessions_live": self.engine.live_count(),
                "simulated_time": self.engine.clock.now_us() / 1e6,
                "speed": self.engine.clock.speed,
            }

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.log if route is None or e["route"] == route]

    # ---- faults
    def set_faults(self, faults: FaultConfig) -> None:
        with self._lock:
            self.faults = faults
            self._fault_rng = random.Random(f"faults:{faults.seed}")
            self._fault_seen = [0] * len(faults.rules)
            self._fault_fired = [0] * len(faults.rules)

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self.faults.rules.append(rule)
            self._fault_seen.append(0)
            self._fault_fired.append(0)

    def fault_firings(self) -> list[int]:
        """How many times each fault rule has fired, in the rules' order."""
        with self._lock:
            return list(self._fault_fired)

    def pick_fault(self, route: str) -> FaultRule | None:
        with self._lock:
            for i, rule in enumerate(self.faults.rules):
                if rule.route != "*" and rule.route != route:
                    continue
                if rule.count is not None and self._fault_fired[i] >= rule.count:
                    continue
                self._fault_seen[i] += 1
                if self._fault_seen[i] <= rule.skip:
                    continue
                if rule.probability < 1.0 and self._fault_rng.random() >= rule.probability:
                    continue
                self._fault_fired[i] += 1
                return rule
            return None

    def reset(self) -> None:
        self.engine.reset()
        self.engine.clock.set_speed(self.config.speed)
        self.set_faults(FaultConfig())
        self.reset_log()
