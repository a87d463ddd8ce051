"""Restart policy of `facefactory up`: a component that exits is started again, within a budget.

Why: on the embedded default one component dying (the scheduler on a locked SQLite database,
the triggerer on a bad callback) used to stop the whole stack and every order in flight with it.
Restarting it is what a process manager (systemd, Kubernetes) would do; the budget keeps a
component that cannot start from spinning forever, and then `up` stops with its log tail.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

DEFAULT_LIMIT = 5
DEFAULT_WINDOW_S = 600.0


@dataclass
class RestartBudget:
    """At most `limit` restarts of one component within any `window_s` seconds."""

    limit: int = DEFAULT_LIMIT
    window_s: float = DEFAULT_WINDOW_S
    _history: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, name: str, now: float) -> tuple[bool, int]:
        """(may restart now, restarts of `name` within the window counting this one)."""
        times = self._history.setdefault(name, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return False, len(times)
        times.append(now)
        return True, len(times)


def restart_line(name: str, code: int | None, count: int, budget: RestartBudget) -> str:
    """The log line an operator greps for: which component, how it ended, how many restarts."""
    return (f"facefactory: component {name} exited with code {code}; restarting it "
            f"(restart {count} of at most {budget.limit} in {budget.window_s / 60:g} min)")


def give_up_line(name: str, code: int | None, budget: RestartBudget) -> str:
    return (f"facefactory: component {name} exited with code {code} after {budget.limit} restarts "
            f"in {budget.window_s / 60:g} min; stopping everything")
