"""``bounded``: a time bound on an awaitable, cheap enough for every read and write of a connection.

Public: the async client bounds each attempt and each network read with it, and a caller that follows a
session (the trigger) bounds a whole poll with the same function.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``asyncio.wait_for``, without the task it creates per call before Python 3.12 (``asyncio.timeout``).

    Raises ``TimeoutError`` (``asyncio.TimeoutError``) when ``seconds`` pass; ``None`` means no bound.
    """
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10
