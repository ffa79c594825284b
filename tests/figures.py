"""Figures the reliability and security tests report: faults, attacks, lost, duplicated.

Tests call `record("worker killed (SIGKILL)", faults=1, runs=40, lost=0, duplicated=0)`;
the totals are printed at the end of the pytest run (the hook below is imported by
tests/conftest.py), so CI logs show what was proven, and the README's reliability
section quotes them.
"""

from collections import Counter, defaultdict

FIGURES: dict[str, Counter] = defaultdict(Counter)


def record(family: str, **counts: int) -> None:
    """Add `counts` to a test family's totals (several tests may feed one family)."""
    FIGURES[family].update({name: int(value) for name, value in counts.items()})


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability and security figures")
    for family in sorted(FIGURES):
        counts = ", ".join(f"{name} {value:,}" for name, value in FIGURES[family].items())
        terminalreporter.write_line(f"{family}: {counts}")
