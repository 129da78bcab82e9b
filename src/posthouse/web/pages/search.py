"""The search form's fields (from, to, subject, text, date range, has
attachment) as IMAP SEARCH criteria, for the server to search: nothing is
searched here. Strings go quoted or as literals; dates are checked."""
from __future__ import annotations

from datetime import date, timedelta

from .mailops import quoted

TEXT_FIELDS = ("from", "to", "subject", "text")
MAX_FIELD = 200
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fields_of(params, *, strict: bool = False) -> dict:
    """The search fields set in params (a query string's), in a fixed order;
    strict: ValueError on a bad one (else it is left out)."""
    out: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = (params.get(name) or "").strip()
        if not value:
            continue
        if len(value) > MAX_FIELD or any(ord(c) < 32 for c in value):
            if strict:
                raise ValueError(f"{name}: at most {MAX_FIELD} characters, no control characters")
            continue
        out[name] = value
    for name in ("since", "until"):
        value = (params.get(name) or "").strip()
        if not value:
            continue
        try:
            date.fromisoformat(value) + timedelta(days=1)
        except (ValueError, OverflowError):
            if strict:
                raise ValueError(f"{name}: a date as YYYY-MM-DD") from None
            continue
        out[name] = value
    if params.get("attachment") in ("1", "on", "true"):
        out["attachment"] = "1"
    return out


def _imap_date(day: date) -> bytes:
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}".encode()


def criteria(fields: dict) -> list:
    """The criteria as command parts (bytes and literals), ANDed."""
    parts: list = []

    def add(*items):
        if parts:
            parts.append(b" ")
        parts.extend(items)
    for name, key in (("from", b"FROM "), ("to", b"TO "), ("subject", b"SUBJECT "), ("text", b"TEXT ")):
        if name in fields:
            add(key, quoted(fields[name]))
    if "since" in fields:
        add(b"SINCE " + _imap_date(date.fromisoformat(fields["since"])))
    if "until" in fields:       # (inclusive: BEFORE the next day)
        add(b"BEFORE " + _imap_date(date.fromisoformat(fields["until"]) + timedelta(days=1)))
    if "attachment" in fields:
        # IMAP has no "has an attachment" key: a multipart/mixed message, or a whole-message
        # file (application/...), is the usual stand-in (Roundcube asks much the same).
        add(b'OR HEADER Content-Type "multipart/mixed" HEADER Content-Type "application/"')
    return parts or [b"ALL"]
