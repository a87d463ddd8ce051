"""`facefactory up` supervision without Airflow: restart budget and the supervise loop."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

from facefactory.commands.up import supervise
from facefactory.supervisor import RestartBudget


def test_budget_allows_limit_restarts_per_window_then_refuses() -> None:
    budget = RestartBudget(limit=2, window_s=60)
    assert budget.allow("scheduler", 0.0) == (True, 1)
    assert budget.allow("scheduler", 10.0) == (True, 2)
    assert budget.allow("scheduler", 20.0) == (False, 2)
    assert budget.allow("triggerer", 20.0) == (True, 1)  # counted per component
    assert budget.allow("scheduler", 61.0) == (True, 2)  # the first restart left the window


@dataclass
class FakeEnv:
    """Components are real short-lived processes: one that exits is 'restarted' by a new one."""

    exits_left: dict[str, int]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)

    def start(self, name: str) -> None:
        code = 3 if self.exits_left[name] > 0 else None
        self.exits_left[name] -= 1
        args = [sys.executable, "-c", f"raise SystemExit({code})" if code else "import time; time.sleep(30)"]
        self.procs[name] = subprocess.Popen(args)

    def dead(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def restart(self, name: str) -> None:
        self.restarts.append(name)
        self.start(name)

    def tail_logs(self, chars: int = 2000, names: tuple[str, ...] | None = None) -> str:
        return f"(log of {names})"

    def kill_all(self) -> None:
        for p in self.procs.values():
            p.kill()
            p.wait()


def test_a_component_past_its_budget_stops_up_with_a_line_naming_it(capsys) -> None:
    env = FakeEnv({"scheduler": 99, "triggerer": 0})
    env.start("scheduler")
    env.start("triggerer")
    try:
        assert supervise(env, RestartBudget(limit=3, window_s=600), poll_s=0.05) == 1
        others_alive = env.procs["triggerer"].poll() is None  # not stopped by the scheduler's exits
    finally:
        env.kill_all()
    assert others_alive
    err = capsys.readouterr().err
    assert env.restarts == ["scheduler"] * 3
    assert "component scheduler exited with code 3; restarting it (restart 1 of at most 3" in err
    assert "restart 3 of at most 3 in 10 min" in err
    assert "component scheduler exited with code 3 after 3 restarts in 10 min; stopping" in err
