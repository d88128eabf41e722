"""Waiting on a condition with a deadline: the one place the tests poll (no bare sleeps elsewhere)."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline."""


def wait_until(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05,
               message: str = "") -> T:
    """Calls `predicate` until it returns something truthy and returns that; raises WaitTimeout
    (an AssertionError, so the test fails and says what it waited for) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(message or f"condition still false after {timeout_s:g} s")
        time.sleep(interval_s)


def holds_for(predicate: Callable[[], object], duration_s: float, interval_s: float = 0.05) -> bool:
    """Whether `predicate` stays truthy for all of `duration_s` (checked every `interval_s`): for
    "nothing happens" promises, where there is no event to wait for."""
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(interval_s)
    return bool(predicate())


async def async_wait_until(predicate: Callable[[], T | Awaitable[T]], timeout_s: float,
                           interval_s: float = 0.01, message: str = "") -> T:
    """wait_until for a coroutine: yields to the event loop between tries."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(message or f"condition still false after {timeout_s:g} s")
        await asyncio.sleep(interval_s)
