"""Clocks the runtime reads time from: the real monotonic clock, or a manual one for virtual time.

The core never reads a clock itself; the driver passes ``now`` (seconds) into every call. Wall
time (for timestamps shown to people and stored with revisions) is ``wall()``; a manual clock
derives it from a fixed epoch so that replays produce identical traces.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ("Clock", "ManualClock", "RealClock")


class Clock(Protocol):
    """What the runtime needs from a clock."""

    virtual: bool

    def now(self) -> float:
        """Monotonic seconds, for deadlines."""
        ...

    def wall(self) -> float:
        """Unix seconds, for timestamps people read."""
        ...


class RealClock:
    """The machine's clocks."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ManualClock:
    """Virtual time that moves only when told to, so timers fire the same way on every run."""

    virtual = True

    def __init__(self, start: float = 0.0, epoch: float = 1_767_225_600.0) -> None:
        self._now = start
        self._epoch = epoch

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    def set(self, now: float) -> None:
        """Move to ``now``; time never goes backwards."""
        if now < self._now:
            raise ValueError(f"virtual time cannot go backwards: {now!r} < {self._now!r}")
        self._now = now
