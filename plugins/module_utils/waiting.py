# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting with a deadline, and the one clock for timestamps the collection writes."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Tuple, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], Tuple[bool, T]], timeout: float, interval: float,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> Tuple[bool, T]:
    """Call check() until it says done or the deadline passes; (done, what the last call said).

    check runs at least once, and once more at the deadline, so a timeout of 0 is one look.
    """
    deadline = clock() + timeout
    while True:
        done, value = check()
        if done or clock() >= deadline:
            return done, value
        sleep(interval)


def utc_now() -> str:
    """An RFC 3339 UTC timestamp with microseconds, as labels and annotations record it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
