"""Closing line of the imaptest run, per store: N passed, N failed, N skipped,
and each failure. The results come in the tests' reports (user_properties),
which pytest-xdist's workers send to the process that prints the summary."""
from __future__ import annotations

REPORTED: dict[tuple[str, str], tuple[str, str]] = {}     # (store, script) -> (status, detail)


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == "imaptest":
            store, name, status, detail = value
            REPORTED[(store, name)] = (status, detail)


def pytest_terminal_summary(terminalreporter):
    from .imaptest_runner import summary
    if not REPORTED:
        return
    write = terminalreporter.write_line
    terminalreporter.section("imaptest scripts")
    for store in sorted({s for s, _ in REPORTED}):
        results = {name: r for (s, name), r in REPORTED.items() if s == store}
        for name, (status, detail) in sorted(results.items()):
            if status == "failed":
                write(f"*** [{store}] {name}: {detail.splitlines()[0] if detail else ''}")
                for extra in detail.splitlines()[1:4]:
                    write(f"    {extra[:300]}")
        write(f"imaptest [{store}]: " + summary(results))
