"""Simulated time: the :class:`Clock` and the API's RFC 3339 timestamps (microseconds inside)."""

from __future__ import annotations

import datetime as dt
import re
import time

US = 1_000_000  # microseconds per second: the engine's unit of time

_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def format_ts(us: int) -> str:
    """RFC 3339 UTC with exactly 6 fractional digits and ``Z``."""
    secs, frac = divmod(us, US)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


def parse_ts_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp to integer nanoseconds since the epoch (ValueError if invalid)."""
    m = _TS.match(text)
    if not m:
        raise ValueError(text)
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    frac = int((m.group(2) or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + frac


class Clock:
    """Simulated clock: ``speed`` simulated seconds per real second, plus manual jumps."""

    def __init__(self, speed: float, start: float | None) -> None:
        self.speed = speed
        self._real0 = time.monotonic()
        self._sim0 = int((time.time() if start is None else start) * US)

    def now_us(self) -> int:
        return self._sim0 + int((time.monotonic() - self._real0) * self.speed * US)

    def advance(self, seconds: float) -> None:
        self._sim0 += int(seconds * US)

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._sim0 = self.now_us()
        self._real0 = time.monotonic()
        self.speed = speed
