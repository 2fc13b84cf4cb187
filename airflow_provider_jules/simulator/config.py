"""Configuration objects of the Jules API simulator (plain dataclasses, no third-party imports)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Stable route names, used by fault rules, stats and the request log.
ROUTES: tuple[str, ...] = (
    "create_session",
    "get_session",
    "list_sessions",
    "delete_session",
    "send_message",
    "approve_plan",
    "archive_session",
    "unarchive_session",
    "list_activities",
    "get_activity",
    "list_sources",
    "get_source",
)

#: Scenario names understood by ``sim:scenario=NAME`` and ``SimulatorConfig.scenario``.
SCENARIOS: tuple[str, ...] = (
    "happy",
    "silent_completion",
    "user_feedback",
    "failure",
    "no_outputs",
    "stuck",
    "unknown_state",
    "bash_output",
    "no_changes",
)


@dataclass
class FaultRule:
    """One fault-injection rule.

    A request to ``route`` (a name from :data:`ROUTES`, or ``"*"`` for every API route) matches the
    rule; the first ``skip`` matching requests pass through untouched, then each match fires with
    ``probability`` (drawn from the fault RNG, seeded by ``FaultConfig.seed``) until ``count`` firings
    have happened (``None`` = unlimited).

    When the rule fires, ``latency_ms`` is added, then, if ``status`` is not ``None``, the request is
    answered with that status in the google.rpc envelope (429 -> RESOURCE_EXHAUSTED, 500 -> INTERNAL,
    503 -> UNAVAILABLE, ...). ``retry_after`` adds a ``Retry-After`` header (seconds, or an HTTP date
    when ``retry_after_http_date`` is true). ``store=True`` on ``create_session`` first creates and
    stores the session and then answers the error (the "ambiguous create" of quirk Q22).
    """

    route: str = "*"
    status: int | None = 503
    count: int | None = 1
    probability: float = 1.0
    skip: int = 0
    retry_after: float | None = None
    retry_after_http_date: bool = False
    latency_ms: float = 0.0
    store: bool = False
    message: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {sorted(unknown)}")
        rule = cls(**data)
        if rule.route != "*" and rule.route not in ROUTES:
            raise ValueError(f"unknown route {rule.route!r}; expected one of {ROUTES} or '*'")
        return rule


@dataclass
class FaultConfig:
    """Fault-injection configuration (replaceable at run time).

    * ``rules``: :class:`FaultRule` list, evaluated in order, first firing rule wins.
    * ``latency_ms``: latency added to every API request.
    * ``transient_404_seconds``: ``list_activities``/``get_activity`` answer 404 NOT_FOUND while the
      session is younger than this many *simulated* seconds (quirk Q18).
    * ``transient_404_requests``: the first N activities requests of each session answer 404 (Q18).
    * ``seed``: seed of the RNG used for probabilistic rules.
    """

    rules: list[FaultRule] = field(default_factory=list)
    latency_ms: float = 0.0
    transient_404_seconds: float = 0.0
    transient_404_requests: int = 0
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault config field(s): {sorted(unknown)}")
        kwargs = dict(data)
        kwargs["rules"] = [
            r if isinstance(r, FaultRule) else FaultRule.from_dict(r) for r in data.get("rules", [])
        ]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SourceSpec:
    """One connected GitHub repository of the simulated account."""

    owner: str
    repo: str
    is_private: bool = False
    default_branch: str = "main"
    branches: tuple[str, ...] = ("main",)
    #: Override the source id (default ``github/{owner}/{repo}``), e.g. ``github-myorg-myrepo`` (Q3).
    source_id: str | None = None

    @property
    def id(self) -> str:
        return self.source_id or f"github/{self.owner}/{self.repo}"


@dataclass
class SimulatorConfig:
    """Configuration of a simulator instance. Every field has a default.

    ``speed`` is simulated seconds per real second (1.0 = real time). ``scenario`` is the default
    scenario for sessions whose prompt carries no ``sim:scenario=`` marker. ``approval_timeout`` is
    the simulated time after which an unapproved plan silently completes (Q15; ``None`` disables).
    ``daily_quota`` limits session creations per simulated 24 h (``None`` = unlimited); exceeding it
    answers 400 FAILED_PRECONDITION. ``empty_reply_*`` choose between a zero-length body (``True``)
    and ``{}`` (``False``) for the three empty replies (Q8/Q9).
    """

    api_key: str = "sim-key"
    host: str = "127.0.0.1"
    port: int = 0
    speed: float = 1.0
    scenario: str = "happy"
    seed: int = 0
    approval_timeout: float | None = 600.0
    daily_quota: int | None = None
    default_steps: int = 5
    sources: list[SourceSpec] | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    empty_reply_send_message: bool = True
    empty_reply_delete: bool = True
    empty_reply_approve_plan: bool = False
    max_recorded_requests: int = 10_000
    allow_remote: bool = False
    #: Simulated wall-clock start (epoch seconds); ``None`` = the real time at start-up.
    start_time: float | None = None
    #: Network model (real time, not simulated): every HTTP request waits one round trip before it is
    #: answered, and the first request of a new connection waits for its handshakes too (TCP, plus TLS 1.3
    #: when serving HTTPS: one round trip each). 0 = loopback as it is.
    round_trip_ms: float = 0.0
    #: Serve HTTPS with this certificate chain and private key (PEM files); ``None`` = plain HTTP.
    tls_certfile: str | None = None
    tls_keyfile: str | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; expected one of {SCENARIOS}")
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.round_trip_ms < 0:
            raise ValueError("round_trip_ms must be >= 0")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
