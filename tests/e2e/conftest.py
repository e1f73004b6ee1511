"""Print how long each notebook took in the browser, after the end-to-end tests."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            seconds = dict(getattr(report, "user_properties", [])).get("e2e_seconds")
            if getattr(report, "when", None) == "call" and seconds is not None:
                rows.append((report.nodeid.rpartition("::")[2], seconds, outcome))
    if rows:
        terminalreporter.section("JupyterLab end to end: seconds per notebook")
        for name, seconds, outcome in rows:
            terminalreporter.write_line(f"{seconds:7.1f}  {name}  {outcome}")
        terminalreporter.write_line(f"{sum(seconds for _, seconds, _ in rows):7.1f}  total")
