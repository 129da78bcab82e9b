"""Errors a command handler raises to end a command with NO or BAD."""
from __future__ import annotations


class CommandError(Exception):
    def __init__(self, status: str, text: str, code: str | None = None):
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def no(text: str, code: str | None = None) -> CommandError:
    return CommandError("NO", text, code)


def bad(text: str, code: str | None = None) -> CommandError:
    return CommandError("BAD", text, code)
