"""What the reply sorter returns: the kind of a received message and, for a
bounce, every failed recipient with its status, hardness and reason."""
from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("bounce", "complaint", "auto-reply", "unsubscribe", "reply", "other")

# The bounce reasons (the taxonomy of Sisimai, named the same so figures compare).
REASONS = (
    "userunknown", "hostunknown", "mailboxfull", "exceedlimit", "filtered", "rejected",
    "blocked", "spamdetected", "virusdetected", "policyviolation", "securityerror",
    "authfailure", "requireptr", "badreputation", "notcompliantrfc", "norelaying",
    "notaccept", "suspend", "hasmoved", "expired", "networkerror", "systemerror",
    "systemfull", "toomanyconn", "ratelimited", "mesgtoobig", "contenterror",
    "syntaxerror", "mailererror", "onhold", "undefined",
)


@dataclass
class Recipient:
    address: str
    status: str | None = None       # enhanced status code "5.1.1", None when the report gives none
    hard: bool | None = None        # the address itself is undeliverable (never retry it)
    reason: str | None = None       # one of REASONS (None for a complaint's recipient)


@dataclass
class Classification:
    kind: str = "other"             # one of KINDS
    hard: bool | None = None        # bounce: any recipient hard; None for the other kinds
    reason: str | None = None       # bounce: the first failed recipient's reason
    recipients: list[Recipient] = field(default_factory=list)
    # The Message-ID (without <>) of the message this one answers: from the
    # returned message or headers of a report, else In-Reply-To / References.
    original_message_id: str | None = None

    def as_dict(self) -> dict:
        """Everything, original_message_id included (for the API; to_json keeps the CLI's fixed keys)."""
        return {**self.to_json(), "original_message_id": self.original_message_id}

    def to_json(self, file=None) -> dict:
        """The stable JSON shape `posthouse classify` prints (keys fixed: outside checks parse them)."""
        out = {}
        if file is not None:
            out["file"] = str(file)
        out.update(kind=self.kind, hard=self.hard, reason=self.reason,
                   recipients=[{"address": r.address, "status": r.status, "hard": r.hard, "reason": r.reason}
                               for r in self.recipients])
        return out
