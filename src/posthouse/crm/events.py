"""What the CRM tells others after a batch of facts is committed: an activity
was logged, or a message was sorted as a bounce, complaint, auto-reply,
unsubscribe or reply. Webhooks, campaigns and live pages follow these; the
CRM neither knows nor waits for them (an observer that fails is logged)."""
from __future__ import annotations

from dataclasses import dataclass, field

# The sorter's kinds that are events of their own ("other" is not).
SORTED_KINDS = ("bounce", "complaint", "auto-reply", "unsubscribe", "reply")


@dataclass(frozen=True)
class CrmEvent:
    kind: str                          # "activity_created" or one of SORTED_KINDS
    message: int                       # the CRM's messages row id
    contact_ids: tuple[int, ...]       # contacts with an activity on it (for activity_created: the new ones)
    account_id: int | None = None      # where it was seen (the fact's place), when known
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    message_id: str | None = None      # the RFC 5322 Message-ID, without <>
    in_reply_to: str | None = None     # what it answers (for sorted replies: the campaign message)
    classification: dict | None = field(default=None, compare=False)   # the sorter's result, as stored


def events_of(engine, ingest) -> list[CrmEvent]:
    """The events of one committed apply(): read back the Message-IDs and, for
    sorted messages, every contact with an activity on them."""
    from sqlalchemy import select
    from .tables import activities, messages

    rows = sorted(set(ingest.new_activities) | {m for m, (kind, _) in ingest.sorted.items() if kind in SORTED_KINDS})
    if not rows:
        return []
    with engine.connect() as conn:
        ids = {r.id: (r.message_id, r.in_reply_to) for r in conn.execute(
            select(messages.c.id, messages.c.message_id, messages.c.in_reply_to).where(messages.c.id.in_(rows)))}
        contacts: dict[int, set[int]] = {}
        for contact_id, message in conn.execute(select(activities.c.contact_id, activities.c.message)
                                                .where(activities.c.message.in_(rows))):
            contacts.setdefault(message, set()).add(contact_id)

    def event(kind, row, contact_ids, classification=None) -> CrmEvent:
        place = ingest.seen_at.get(row)
        message_id, in_reply_to = ids.get(row, (None, None))
        return CrmEvent(kind, row, tuple(sorted(contact_ids)),
                        account_id=getattr(place, "account_id", None), folder=getattr(place, "folder", None),
                        uidvalidity=getattr(place, "uidvalidity", None), uid=getattr(place, "uid", None),
                        message_id=message_id, in_reply_to=in_reply_to, classification=classification)

    events = [event("activity_created", row, ingest.new_activities[row]) for row in sorted(ingest.new_activities)]
    events += [event(kind, row, contacts.get(row, ()), classification)
               for row, (kind, classification) in sorted(ingest.sorted.items()) if kind in SORTED_KINDS]
    return events
