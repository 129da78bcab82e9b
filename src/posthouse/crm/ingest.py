"""The tracker's facts into the CRM's tables (Crm.apply): the message index,
its places, and activities for the contacts among the participants.

Replaying a fact changes nothing: a message is found again by its identity
(Message-ID, else the content hash), a place by (account, folder,
UIDVALIDITY, UID), an activity by (contact, message)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, bindparam, delete, select, tuple_, update

from ..tracker.facts import FolderRenamed, FolderReset, MessageChanged, MessageGone, MessageSeen
from .addresses import maybe_canonical
from .linking import link
from .parse import Parsed, parse, safe_text, snippet
from .privacy import PrivateList, level_rank
from .sqlutil import insert_ignore, upsert_many
from .tables import activities, contact_emails, contacts, message_addresses, message_places, messages, private_entries

log = logging.getLogger("posthouse.crm")

SENT_ROLES = ("from", "sender")
_FIND = select(messages.c.identity, messages.c.id, messages.c.privacy, messages.c.direction, messages.c.date
               ).where(messages.c.identity.in_(bindparam("identities", expanding=True)))
_CONTACTS_BY_ADDRESS = select(contact_emails.c.address, contact_emails.c.contact_id).where(
    contact_emails.c.address.in_(bindparam("addresses", expanding=True)))


MAX_FOLDER = 1000      # message_places.folder
FUTURE_SLACK = timedelta(days=1)    # a Date header this far past the arrival is not believed


def _cut(value, length: int):
    return value[:length] if isinstance(value, str) else value


def _flags(flags) -> list[str]:
    return [safe_text(f) for f in flags if isinstance(f, str)]


def _folder(name: str) -> str:
    """A folder name any database stores (one garbage name always maps to the same)."""
    return safe_text(name) if isinstance(name, str) else str(name)


def identity(message_id: str | None, content_hash: str) -> str:
    if message_id:
        if len(message_id) <= 500:
            return "m:" + message_id
        return "m#" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return "h:" + content_hash


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _classification_json(result) -> dict | None:
    """The sorter's verdict as plain JSON (anything else in it as text)."""
    try:
        if hasattr(result, "to_json"):
            value = result.to_json()
        elif dataclasses.is_dataclass(result):
            value = dataclasses.asdict(result)
        else:
            value = result
        if not isinstance(value, dict):
            return None
        return json.loads(safe_text(json.dumps(value, default=str, ensure_ascii=False)))
    except Exception:
        log.exception("crm: the reply sorter's verdict could not be stored")
    return None


class Ingest:
    """One apply() call: the settings it needs, and the private lists read once."""

    def __init__(self, crm, conn):
        self.crm = crm
        self.conn = conn
        self.own = {a for a in (maybe_canonical(x, fold_plus=crm.fold_plus) for x in crm.own_addresses()) if a}
        self._entries = None
        self._lists: dict = {}
        self._levels: dict = {}
        self._owners: dict = {}
        # For the CRM's events (crm/events.py), told after the commit:
        self.new_activities: dict[int, set[int]] = {}     # message row -> contacts newly tied to it
        self.sorted: dict[int, tuple[str, dict | None]] = {}    # message row -> (kind, classification)
        self.seen_at: dict[int, object] = {}              # message row -> the fact's place

    def owner(self, account_id: int):
        if account_id not in self._owners:
            self._owners[account_id] = self.crm.account_owner(account_id)
        return self._owners[account_id]

    def level(self, account_id: int) -> str:
        if account_id not in self._levels:
            self._levels[account_id] = self.crm.privacy_level(account_id)
        return self._levels[account_id]

    # -- privacy -----------------------------------------------------------------------
    def private_list(self, account_id: int) -> PrivateList:
        owner = self.owner(account_id)
        if owner not in self._lists:
            if self._entries is None:
                self._entries = self.conn.execute(select(private_entries.c.owner, private_entries.c.entry)).all()
            self._lists[owner] = PrivateList({e for o, e in self._entries if o is None or (owner and o == owner)})
        return self._lists[owner]

    def is_private(self, account_id: int, parsed: Parsed) -> bool:
        private = self.private_list(account_id)
        if not private:
            return False
        if any(private.address_is_private(a) for a in parsed.addresses()):
            return True
        return private.text_is_private(parsed.scan_text)

    # -- facts -------------------------------------------------------------------------
    def apply(self, facts) -> None:
        run: list[MessageSeen] = []       # consecutive MessageSeen, stored together (fewer round trips)
        for fact in facts:
            name = getattr(fact, "new_name", None) or getattr(getattr(fact, "place", None), "folder", "")
            if len(name or "") > MAX_FOLDER:    # no IMAP server names folders so; kept out, not stored cut
                log.warning("crm: a fact about a folder name of %d characters was skipped", len(name))
                continue
            if isinstance(fact, MessageSeen):
                run.append(fact)
                continue
            if run:
                self.seen(run)
                run = []
            if isinstance(fact, MessageChanged):
                self._place_update(fact.place, flags=_flags(fact.flags), modseq=fact.modseq)
            elif isinstance(fact, MessageGone):
                self._place_update(fact.place, gone=True)
            elif isinstance(fact, FolderReset):
                c = message_places.c
                self.conn.execute(update(message_places).where(
                    c.account_id == fact.account_id, c.folder == _folder(fact.folder),
                    c.uidvalidity == fact.old_uidvalidity, c.gone_at.is_(None)).values(gone_at=_now()))
            elif isinstance(fact, FolderRenamed):
                c = message_places.c
                old_name, new_name = _folder(fact.old_name), _folder(fact.new_name)
                # Places left in an earlier folder of the new name that the renamed one's
                # would collide with are stale: they go.
                old = select(c.uidvalidity, c.uid).where(c.account_id == fact.account_id, c.folder == old_name)
                self.conn.execute(delete(message_places).where(
                    c.account_id == fact.account_id, c.folder == new_name, tuple_(c.uidvalidity, c.uid).in_(old)))
                self.conn.execute(update(message_places).where(
                    c.account_id == fact.account_id, c.folder == old_name).values(folder=new_name))
            else:
                log.warning("crm: a fact of an unknown kind was skipped: %r", type(fact).__name__)
        if run:
            self.seen(run)

    def _place_where(self, place):
        c = message_places.c
        return and_(c.account_id == place.account_id, c.folder == _folder(place.folder),
                    c.uidvalidity == place.uidvalidity, c.uid == place.uid)

    def _place_update(self, place, *, flags=None, modseq=None, gone=False) -> None:
        where = self._place_where(place)
        if gone:
            self.conn.execute(update(message_places).where(where, message_places.c.gone_at.is_(None))
                              .values(gone_at=_now()))
        else:
            self.conn.execute(update(message_places).where(where).values(flags=flags, modseq=modseq))

    def seen(self, facts: list[MessageSeen]) -> None:
        """MessageSeen facts, in order, with one statement per step for all of them."""
        todo = []       # (fact, parsed, identity, message_id, sent, level) of the facts to store
        for fact in facts:
            parsed = parse(fact.skeleton)
            if self.crm.fold_plus:
                for p in parsed.participants:
                    p["address"] = maybe_canonical(p["address"], fold_plus=True) or p["address"]
            if self.is_private(fact.place.account_id, parsed):
                # Never logged: no row, no place. (A copy logged before the entry was
                # added is removed by add_private.)
                continue
            sent = bool(parsed.addresses(SENT_ROLES) & self.own) or (fact.special_use or "").lower() == "\\sent"
            if not sent:    # Bcc counts on mail we sent; on received mail it is no participant
                parsed.participants = [p for p in parsed.participants if p["role"] != "bcc"]
            message_id = safe_text(fact.message_id) or parsed.message_id
            todo.append((fact, parsed, identity(message_id, fact.content_hash), message_id, sent,
                         self.level(fact.place.account_id)))
        if not todo:
            return
        keys = sorted({t[2] for t in todo})
        rows = {r.identity: r for r in self.conn.execute(_FIND, {"identities": keys})}
        new, first = {}, {}     # identity -> the values stored / the fact they came from
        for fact, parsed, key, message_id, sent, level in todo:
            if key not in rows and key not in new:
                first[key] = fact
                values = self._message_values(fact, parsed, message_id, level)
                values.update(identity=key, content_hash=fact.content_hash, first_seen=_now(),
                              direction="sent" if sent else "received")
                new[key] = values
        if new:
            # In identity order, as every writer does: two never wait on each other in a cycle.
            insert_ignore(self.conn, messages, [new[k] for k in sorted(new)], ["identity"])
            rows.update({r.identity: r for r in self.conn.execute(_FIND, {"identities": sorted(new)})})
            insert_ignore(self.conn, message_addresses, [
                {"message": rows[key].id, "address": p["address"], "role": p["role"]}
                for key, values in new.items() for p in values["participants"]], ["message", "address", "role"])
        stored = {key: (r.privacy, r.direction) for key, r in rows.items()}
        for fact, parsed, key, message_id, sent, level in todo:
            if first.get(key) is fact:
                continue        # stored from this very fact
            privacy, direction = stored[key]
            changes = {}
            if level_rank(level) > level_rank(privacy):     # a copy at a fuller level: store more
                changes.update(self._stored_text(fact, parsed, level))
            if sent and direction != "sent":
                changes["direction"] = "sent"
            if changes:
                row_id = rows[key].id
                self.conn.execute(update(messages).where(messages.c.id == row_id).values(**changes))
                if "direction" in changes:
                    self.conn.execute(update(activities).where(activities.c.message == row_id)
                                      .values(direction="sent"))
                stored[key] = (changes.get("privacy", privacy), changes.get("direction", direction))
        upsert_many(self.conn, message_places, [self._place(rows[t[2]].id, t[0]) for t in todo],
                    ["account_id", "folder", "uidvalidity", "uid"])
        if self.crm.classify is not None:
            done = set()
            for fact, parsed, key, _, sent, _ in todo:
                if key in new and key not in done and stored[key][1] != "sent":
                    done.add(key)
                    self._classify(rows[key].id, fact, parsed)
        # Activities: every participant that is a contact, one query for the run.
        wanted = set()
        for t in todo:
            wanted |= t[1].addresses()
        wanted -= self.own
        owners: dict[str, set[int]] = {}
        if wanted:
            for address, contact_id in self.conn.execute(_CONTACTS_BY_ADDRESS, {"addresses": sorted(wanted)}):
                owners.setdefault(address, set()).add(contact_id)
        pairs = {(c, rows[t[2]].id) for t in todo for a in t[1].addresses() - self.own for c in owners.get(a, ())}
        info = {rows[key].id: (stored[key][1], rows[key].date) for key in stored}
        for t in todo:
            self.seen_at.setdefault(rows[t[2]].id, t[0].place)
        self._note_new(link(self.conn, pairs, info))

    def _note_new(self, pairs) -> None:
        for contact_id, message_row in pairs:
            self.new_activities.setdefault(message_row, set()).add(contact_id)

    def _place(self, message_row: int, fact: MessageSeen) -> dict:
        # Seen again (a replay, or a copy that came back): brought up to date and not gone.
        place = fact.place
        return {"message": message_row, "account_id": place.account_id, "folder": _folder(place.folder),
                "uidvalidity": place.uidvalidity, "uid": place.uid,
                "emailid": _cut(safe_text(fact.emailid), 300), "flags": _flags(fact.flags), "modseq": fact.modseq,
                "special_use": _cut(safe_text(fact.special_use), 20), "seen_at": _now(), "gone_at": None}

    def _stored_text(self, fact: MessageSeen, parsed: Parsed, level: str) -> dict:
        rank = level_rank(level)
        attachments = [{"name": a.name if rank >= 1 else None, "content_type": a.content_type,
                        "size": a.size, "section": a.section} for a in fact.attachments]
        return {"privacy": level if level in ("metadata", "snippet", "full") else "metadata",
                "subject": parsed.subject if rank >= 1 else None,
                "snippet": snippet(parsed.text) if rank >= 1 else None,
                "text": parsed.text if rank >= 2 else None,
                "attachments": [{k: safe_text(v) if isinstance(v, str) else v for k, v in a.items()}
                                for a in attachments]}

    def _message_values(self, fact: MessageSeen, parsed: Parsed, message_id, level) -> dict:
        values = self._stored_text(fact, parsed, level)
        arrived = fact.internaldate.astimezone(timezone.utc)
        date = parsed.date
        if date is None or date > arrived + FUTURE_SLACK:     # no Date, or one from the future (spam): arrival
            date = arrived
        values.update(message_id=message_id, date=date,
                      participants=parsed.participants, in_reply_to=parsed.in_reply_to,
                      references=parsed.references, size=fact.size)
        return values

    # -- reply sorting -------------------------------------------------------------------
    def _classify(self, message_row: int, fact: MessageSeen, parsed: Parsed) -> None:
        try:
            result = self.crm.classify(fact.skeleton)
        except Exception:
            log.exception("crm: the reply sorter failed on a message (stored unsorted)")
            return
        kind = getattr(result, "kind", None)
        stored = _classification_json(result)
        values = {"kind": _cut(kind, 20) if isinstance(kind, str) else None, "classification": stored}
        answers = getattr(result, "original_message_id", None)
        if isinstance(answers, str) and answers and not parsed.in_reply_to:
            values["in_reply_to"] = safe_text(answers.strip("<> "))     # the thread: the message it answers
        self.conn.execute(update(messages).where(messages.c.id == message_row).values(**values))
        if isinstance(kind, str):
            self.sorted[message_row] = (kind, stored)
        if kind == "bounce":
            pairs = set()
            for recipient in getattr(result, "recipients", None) or ():
                address = maybe_canonical(getattr(recipient, "address", None), fold_plus=self.crm.fold_plus)
                if not address or address in self.own:
                    continue
                insert_ignore(self.conn, message_addresses,
                              [{"message": message_row, "address": address, "role": "bounced"}],
                              ["message", "address", "role"])
                hard = getattr(recipient, "hard", None)
                if hard is None:
                    hard = getattr(result, "hard", None)
                if hard:
                    reason = getattr(recipient, "reason", None) or getattr(result, "reason", None)
                    reason = _cut(safe_text(str(reason)), 200) if reason else None
                    self.conn.execute(update(contact_emails).where(contact_emails.c.address == address)
                                      .values(bouncing=True, bounce_reason=reason))
                for contact_id in self.conn.execute(select(contact_emails.c.contact_id)
                                                    .where(contact_emails.c.address == address)).scalars():
                    pairs.add((contact_id, message_row))
            self._note_new(link(self.conn, pairs))        # the bounce on the contact it concerns
        elif kind == "unsubscribe":
            senders = parsed.addresses(("from", "sender", "reply-to")) - self.own
            if senders:
                ids = select(contact_emails.c.contact_id).where(contact_emails.c.address.in_(senders))
                self.conn.execute(update(contacts).where(contacts.c.id.in_(ids)).values(opted_out=True))
