"""Closing line of the imaptest run: N passed, N failed, N skipped, and each failure."""
from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from .test_imaptest import RESULTS
    from .imaptest_runner import summary
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("imaptest scripts")
    for name, (status, detail) in sorted(RESULTS.items()):
        if status == "failed":
            write(f"*** {name}: {detail.splitlines()[0] if detail else ''}")
            for extra in detail.splitlines()[1:4]:
                write(f"    {extra[:300]}")
    write("imaptest: " + summary(RESULTS))
