"""The CRM's errors: messages safe to show to the user (API 4xx, CLI line)."""
from __future__ import annotations


class CrmError(ValueError):
    """A request the CRM refuses (bad address, unknown field, conflict)."""


class NotFound(CrmError):
    """No such contact, company, activity or message."""
