"""The CRM: contacts, companies, activities, private lists, and the FactSink
the tracker feeds (apply). Contacts are plain dicts (see CONTRACT22)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .addresses import canonical, canonical_domain, domain_of, split_name
from .errors import CrmError, NotFound
from .freemail import company_name, is_free_mail
from .events import events_of
from .ingest import Ingest
from .linking import bounces_earlier, link_earlier, touch_last_contacted
from .privacy import canonical_entry
from .sqlutil import as_utc, iso
from .tables import (activities, companies, company_domains, contact_emails, contact_tags, contacts,
                     message_addresses, message_places, messages, private_entries, utcnow)

EDITABLE = {"name", "first_name", "last_name", "phone", "company", "title", "tags", "notes", "opted_out"}
# What _activities reads of a message and of its places.
_ACTIVITY_MESSAGE_COLUMNS = (messages.c.id, messages.c.message_id, messages.c.subject, messages.c.participants,
                             messages.c.in_reply_to, messages.c.references, messages.c.snippet, messages.c.text,
                             messages.c.attachments, messages.c.kind)
_ACTIVITY_PLACE_COLUMNS = (message_places.c.message, message_places.c.account_id, message_places.c.folder,
                           message_places.c.uidvalidity, message_places.c.uid, message_places.c.emailid,
                           message_places.c.flags)
_LENGTHS = {"name": 300, "first_name": 200, "last_name": 200, "phone": 100, "title": 300}

log = logging.getLogger("posthouse.crm")


class Crm:
    def __init__(self, engine, *, own_addresses: Callable[[], set[str]] = lambda: set(),
                 privacy_level: Callable[[int], str] = lambda account_id: "snippet",
                 classify: Callable[[bytes], object] | None = None,
                 account_owner: Callable[[int], str | None] = lambda account_id: None,
                 fold_plus: bool = False):
        self.engine = engine
        self.own_addresses = own_addresses
        self.privacy_level = privacy_level
        self.classify = classify
        self.account_owner = account_owner
        self.fold_plus = fold_plus
        # Called after each apply() commits, with the CrmEvents it made (crm/events.py).
        self.observers: list[Callable[[list], None]] = []

    @classmethod
    def for_accounts(cls, engine, accounts, *, classify=None, fold_plus: bool = False) -> "Crm":
        """A Crm wired to an AccountStore (duck-typed: own_addresses(), get(id)
        -> an account with .owner and .privacy): own addresses, each account's
        owner and privacy level. An account it doesn't know: least kept."""
        def privacy_level(account_id):
            account = accounts.get(account_id)
            return getattr(account, "privacy", None) or "metadata"

        def account_owner(account_id):
            return getattr(accounts.get(account_id), "owner", None)
        return cls(engine, own_addresses=accounts.own_addresses, privacy_level=privacy_level,
                   classify=classify, account_owner=account_owner, fold_plus=fold_plus)

    # -- facts ---------------------------------------------------------------------------
    def apply(self, facts) -> None:
        """The FactSink: all of `facts` in one transaction; replays change nothing."""
        with self.engine.begin() as conn:
            ingest = Ingest(self, conn)
            ingest.apply(facts)
        if self.observers and (ingest.new_activities or ingest.sorted):
            self._tell(events_of(self.engine, ingest))

    def _tell(self, events) -> None:
        for observer in list(self.observers):
            try:
                observer(events)
            except Exception:
                log.exception("crm: an observer of its events failed (the facts are stored)")

    @contextmanager
    def _writing(self):
        """A transaction for a user's change; a unique key broken by a
        concurrent change becomes a CrmError to show."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise CrmError("a conflicting change was made at the same time; try again") from None

    # -- addresses -------------------------------------------------------------------------
    def _canonical(self, address) -> str:
        return canonical(address, fold_plus=self.fold_plus)

    def _own(self) -> set[str]:
        out = set()
        for a in self.own_addresses():
            try:
                out.add(self._canonical(a))
            except CrmError:
                pass
        return out

    def _claim_addresses(self, conn, contact_id: int, addresses) -> list[str]:
        """Give a contact addresses (canonical, not ours, not another contact's);
        returns the ones that are new to it."""
        wanted = []
        for raw in addresses:
            address = self._canonical(raw)
            if address not in wanted:
                wanted.append(address)
        own = self._own() if wanted else set()
        added = []
        for address in wanted:
            if address in own:
                raise CrmError(f"{address} is one of our own addresses, never a contact's")
            holder = conn.execute(select(contact_emails.c.contact_id)
                                  .where(contact_emails.c.address == address)).scalar()
            if holder == contact_id:
                continue
            if holder is not None:
                raise CrmError(f"{address} already belongs to contact {holder}")
            conn.execute(insert(contact_emails).values(contact_id=contact_id, address=address, bouncing=False))
            added.append(address)
        return added

    # -- companies -------------------------------------------------------------------------
    def _company_for_domain(self, conn, domain: str) -> int | None:
        """The company of a (non-free-mail) domain, made when there is none."""
        if is_free_mail(domain):
            return None
        found = conn.execute(select(company_domains.c.company_id).where(company_domains.c.domain == domain)).scalar()
        if found is not None:
            return found
        company_id = conn.execute(insert(companies).values(name=company_name(domain), created_at=utcnow())
                                  .returning(companies.c.id)).scalar_one()
        conn.execute(insert(company_domains).values(company_id=company_id, domain=domain))
        return company_id

    def _resolve_company(self, conn, company) -> int | None:
        """A company given as an id, a {id} dict or a name (found or made)."""
        if company is None or company == "":
            return None
        if isinstance(company, dict):
            company = company.get("id") or company.get("name")
        if isinstance(company, bool):
            raise CrmError("a company is an id or a name")
        if isinstance(company, int):
            if conn.execute(select(companies.c.id).where(companies.c.id == company)).scalar() is None:
                raise NotFound(f"no company {company}")
            return company
        if not isinstance(company, str):
            raise CrmError("a company is an id or a name")
        name = " ".join(company.split())[:300]
        found = conn.execute(select(companies.c.id).where(func.lower(companies.c.name) == name.lower())
                             .order_by(companies.c.id)).scalar()
        if found is not None:
            return found
        return conn.execute(insert(companies).values(name=name, created_at=utcnow())
                            .returning(companies.c.id)).scalar_one()

    def add_company(self, name, domains=()) -> dict:
        if not isinstance(name, str) or not name.strip():
            raise CrmError("a company needs a name")
        with self._writing() as conn:
            company_id = conn.execute(insert(companies).values(name=" ".join(name.split())[:300], created_at=utcnow())
                                      .returning(companies.c.id)).scalar_one()
            for raw in domains:
                domain = canonical_domain(raw.lstrip("@"))
                if is_free_mail(domain):
                    raise CrmError(f"{domain} is a free-mail domain: it makes no company")
                holder = conn.execute(select(company_domains.c.company_id)
                                      .where(company_domains.c.domain == domain)).scalar()
                if holder is not None:
                    raise CrmError(f"{domain} already belongs to company {holder}")
                conn.execute(insert(company_domains).values(company_id=company_id, domain=domain))
            return self._company(conn, company_id)

    def _company(self, conn, company_id) -> dict | None:
        row = conn.execute(select(companies).where(companies.c.id == company_id)).first()
        if row is None:
            return None
        domains = conn.execute(select(company_domains.c.domain).where(company_domains.c.company_id == company_id)
                               .order_by(company_domains.c.domain)).scalars().all()
        return {"id": row.id, "name": row.name, "domains": list(domains), "created_at": iso(row.created_at)}

    def get_company(self, id) -> dict | None:
        with self.engine.connect() as conn:
            return self._company(conn, id)

    def list_companies(self, q=None, *, limit=None, offset=0) -> list[dict]:
        """By name; limit/offset: one page of them (None: all)."""
        with self.engine.connect() as conn:
            query = select(companies.c.id).order_by(companies.c.name, companies.c.id)
            if limit is not None:
                query = query.limit(max(0, min(int(limit), 1000))).offset(max(0, int(offset)))
            if q:
                domains = select(company_domains.c.company_id).where(
                    company_domains.c.domain.icontains(q, autoescape=True))
                query = query.where(or_(companies.c.name.icontains(q, autoescape=True), companies.c.id.in_(domains)))
            return [self._company(conn, i) for i in conn.execute(query).scalars().all()]

    # -- contacts --------------------------------------------------------------------------
    @staticmethod
    def _field(name, value):
        if name == "opted_out":
            return bool(value)
        if value is None:
            return None
        if not isinstance(value, str):
            raise CrmError(f"{name} must be text")
        value = value.strip() if name == "notes" else " ".join(value.split())
        if name in _LENGTHS and len(value) > _LENGTHS[name]:
            raise CrmError(f"{name} is too long (at most {_LENGTHS[name]} characters)")
        return value or None

    @staticmethod
    def _tags(tags) -> list[str]:
        if isinstance(tags, str):
            tags = [tags]
        out = []
        for tag in tags or ():
            if not isinstance(tag, str) or not tag.strip() or len(tag.strip()) > 100:
                raise CrmError(f"not a tag: {tag!r}")
            if tag.strip() not in out:
                out.append(tag.strip())
        return out

    def add_contact(self, *, name=None, first_name=None, last_name=None, emails=(), phone=None,
                    company=None, title=None, tags=(), notes=None) -> dict:
        if isinstance(emails, str):
            emails = [emails]
        name, first_name, last_name = (self._field("name", name), self._field("first_name", first_name),
                                       self._field("last_name", last_name))
        if name and not (first_name or last_name):
            first_name, last_name = split_name(name)
        if not name and (first_name or last_name):
            name = " ".join(p for p in (first_name, last_name) if p)
        tags = self._tags(tags)
        if not (name or emails):
            raise CrmError("a contact needs a name or an email address")
        with self._writing() as conn:
            company_id = self._resolve_company(conn, company)
            contact_id = conn.execute(insert(contacts).values(
                name=name, first_name=first_name, last_name=last_name, phone=self._field("phone", phone),
                title=self._field("title", title), notes=self._field("notes", notes), company_id=company_id,
                opted_out=False, created_at=utcnow()).returning(contacts.c.id)).scalar_one()
            added = self._claim_addresses(conn, contact_id, emails)
            if company_id is None:
                self._company_from_addresses(conn, contact_id, added)
            for tag in tags:
                conn.execute(insert(contact_tags).values(contact_id=contact_id, tag=tag))
            link_earlier(conn, contact_id, set(added))
            bounces_earlier(conn, set(added))
            return self._contacts(conn, [contact_id])[0]

    def _company_from_addresses(self, conn, contact_id, addresses) -> None:
        for address in addresses:
            company_id = self._company_for_domain(conn, domain_of(address))
            if company_id is not None:
                conn.execute(update(contacts).where(contacts.c.id == contact_id).values(company_id=company_id))
                return

    def get_contact(self, id) -> dict | None:
        with self.engine.connect() as conn:
            found = self._contacts(conn, [id])
            return found[0] if found else None

    def _require(self, conn, id) -> None:
        if conn.execute(select(contacts.c.id).where(contacts.c.id == id)).scalar() is None:
            raise NotFound(f"no contact {id}")

    def find_contacts(self, *, email=None, q=None, tag=None, company_id=None, limit=100, offset=0,
                      contacted_since=None, contacted_until=None, bouncing=None, opted_out=None) -> list[dict]:
        """contacted_since/until: last_contacted in [since, until); bouncing /
        opted_out: True or False to keep only those that are (or aren't); None: either."""
        query = select(contacts.c.id).order_by(contacts.c.id)
        if contacted_since is not None:
            query = query.where(contacts.c.last_contacted >= as_utc(contacted_since))
        if contacted_until is not None:
            query = query.where(contacts.c.last_contacted < as_utc(contacted_until))
        if bouncing is not None:
            has_bouncing = contacts.c.id.in_(select(contact_emails.c.contact_id)
                                             .where(contact_emails.c.bouncing.is_(True)))
            query = query.where(has_bouncing if bouncing else ~has_bouncing)
        if opted_out is not None:
            query = query.where(contacts.c.opted_out.is_(bool(opted_out)))
        if email is not None:
            try:
                address = self._canonical(email)
            except CrmError:
                return []
            query = query.where(contacts.c.id.in_(select(contact_emails.c.contact_id)
                                                  .where(contact_emails.c.address == address)))
        if tag:
            query = query.where(contacts.c.id.in_(select(contact_tags.c.contact_id).where(contact_tags.c.tag == tag)))
        if company_id is not None:
            query = query.where(contacts.c.company_id == company_id)
        if q:
            q = q.strip()
            like = lambda column: column.icontains(q, autoescape=True)     # noqa: E731  (% and _ are plain)
            query = query.where(or_(
                like(contacts.c.name), like(contacts.c.first_name), like(contacts.c.last_name),
                contacts.c.id.in_(select(contact_emails.c.contact_id).where(like(contact_emails.c.address))),
                contacts.c.company_id.in_(select(companies.c.id).where(like(companies.c.name)))))
        query = query.limit(max(0, min(int(limit), 1000))).offset(max(0, int(offset)))
        with self.engine.connect() as conn:
            return self._contacts(conn, conn.execute(query).scalars().all())

    def _contacts(self, conn, ids) -> list[dict]:
        ids = list(ids)
        if not ids:
            return []
        rows = {r.id: r for r in conn.execute(select(contacts).where(contacts.c.id.in_(ids)))}
        emails: dict[int, list] = {}
        for r in conn.execute(select(contact_emails).where(contact_emails.c.contact_id.in_(ids))
                              .order_by(contact_emails.c.id)):
            emails.setdefault(r.contact_id, []).append(
                {"address": r.address, "bouncing": bool(r.bouncing), "bounce_reason": r.bounce_reason})
        tags: dict[int, list] = {}
        for r in conn.execute(select(contact_tags).where(contact_tags.c.contact_id.in_(ids))
                              .order_by(contact_tags.c.tag)):
            tags.setdefault(r.contact_id, []).append(r.tag)
        company_ids = {r.company_id for r in rows.values() if r.company_id is not None}
        names = dict(conn.execute(select(companies.c.id, companies.c.name)
                                  .where(companies.c.id.in_(company_ids))).all()) if company_ids else {}
        out = []
        for i in ids:
            r = rows.get(i)
            if r is None:
                continue
            out.append({
                "id": r.id, "name": r.name, "first_name": r.first_name, "last_name": r.last_name,
                "emails": emails.get(i, []), "phone": r.phone,
                "company": {"id": r.company_id, "name": names.get(r.company_id)} if r.company_id else None,
                "title": r.title, "tags": tags.get(i, []), "notes": r.notes, "opted_out": bool(r.opted_out),
                "created_at": iso(r.created_at), "last_contacted": iso(r.last_contacted)})
        return out

    def edit_contact(self, id, *, add_emails=(), remove_emails=(), **fields) -> dict:
        unknown = set(fields) - EDITABLE
        if unknown:
            raise CrmError(f"no such contact field: {', '.join(sorted(unknown))}")
        if isinstance(add_emails, str):
            add_emails = [add_emails]
        if isinstance(remove_emails, str):
            remove_emails = [remove_emails]
        with self._writing() as conn:
            self._require(conn, id)
            values = {k: self._field(k, v) for k, v in fields.items() if k not in ("company", "tags")}
            if "name" in values and values["name"] and not ({"first_name", "last_name"} & set(fields)):
                values["first_name"], values["last_name"] = split_name(values["name"])
            if "company" in fields:
                values["company_id"] = self._resolve_company(conn, fields["company"])
            if values:
                conn.execute(update(contacts).where(contacts.c.id == id).values(**values))
            if "tags" in fields:
                tags = self._tags(fields["tags"])
                conn.execute(delete(contact_tags).where(contact_tags.c.contact_id == id))
                for tag in tags:
                    conn.execute(insert(contact_tags).values(contact_id=id, tag=tag))
            for raw in remove_emails:
                address = self._canonical(raw)
                done = conn.execute(delete(contact_emails).where(contact_emails.c.contact_id == id,
                                                                 contact_emails.c.address == address))
                if done.rowcount == 0:
                    raise CrmError(f"{address} is not an address of contact {id}")
            added = self._claim_addresses(conn, id, add_emails)
            if added and "company" not in fields and conn.execute(
                    select(contacts.c.company_id).where(contacts.c.id == id)).scalar() is None:
                self._company_from_addresses(conn, id, added)
            link_earlier(conn, id, set(added))
            bounces_earlier(conn, set(added))
            return self._contacts(conn, [id])[0]

    def merge_contacts(self, keep_id, other_id) -> dict:
        """`other` folded into `keep`: its addresses, tags and activities move
        (one activity per message), its empty fields fill keep's; other is deleted."""
        if keep_id == other_id:
            raise CrmError("a contact cannot be merged with itself")
        with self._writing() as conn:
            keep = conn.execute(select(contacts).where(contacts.c.id == keep_id)).first()
            other = conn.execute(select(contacts).where(contacts.c.id == other_id)).first()
            if keep is None or other is None:
                raise NotFound(f"no contact {keep_id if keep is None else other_id}")
            fill = {k: getattr(other, k) for k in ("name", "first_name", "last_name", "phone", "title", "company_id")
                    if getattr(keep, k) is None and getattr(other, k) is not None}
            if other.notes and other.notes != keep.notes:
                fill["notes"] = f"{keep.notes}\n\n{other.notes}" if keep.notes else other.notes
            fill["opted_out"] = bool(keep.opted_out or other.opted_out)
            fill["created_at"] = min(keep.created_at, other.created_at)
            conn.execute(update(contacts).where(contacts.c.id == keep_id).values(**fill))
            conn.execute(update(contact_emails).where(contact_emails.c.contact_id == other_id)
                         .values(contact_id=keep_id))
            tags_of = lambda i: conn.execute(     # noqa: E731
                select(contact_tags.c.tag).where(contact_tags.c.contact_id == i)).scalars().all()
            keep_tags = set(tags_of(keep_id))
            for tag in tags_of(other_id):
                if tag not in keep_tags:
                    conn.execute(insert(contact_tags).values(contact_id=keep_id, tag=tag))
            # Activities move, but a message both had stays one activity.
            both = select(activities.c.message).where(activities.c.contact_id == keep_id)
            conn.execute(update(activities).where(activities.c.contact_id == other_id,
                                                  activities.c.message.not_in(both)).values(contact_id=keep_id))
            self._delete(conn, other_id)
            touch_last_contacted(conn, [keep_id])
            return self._contacts(conn, [keep_id])[0]

    def _delete(self, conn, id) -> None:
        for table in (activities, contact_emails, contact_tags):
            conn.execute(delete(table).where(table.c.contact_id == id))
        conn.execute(delete(contacts).where(contacts.c.id == id))

    def delete_contact(self, id) -> None:
        with self._writing() as conn:
            self._require(conn, id)
            self._delete(conn, id)

    # -- from email to record ----------------------------------------------------------------
    def contact_from_message(self, message_id: int) -> dict:
        """A contact from a message's sender (the name split), with its earlier
        mail linked; the existing contact when the sender already is one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(messages.c.participants).where(messages.c.id == message_id)).first()
        if row is None:
            raise NotFound(f"no message {message_id}")
        own = self._own()
        senders = [p for role in ("from", "sender", "reply-to") for p in row.participants or ()
                   if p.get("role") == role and p.get("address")]
        if not senders:
            raise CrmError("the message has no sender address")
        sender = next((p for p in senders if p["address"] not in own), None)
        if sender is None:
            raise CrmError("the message was sent from one of our own addresses")
        existing = self.find_contacts(email=sender["address"], limit=1)
        if existing:
            return existing[0]
        first, last = split_name(sender.get("name"))
        return self.add_contact(name=" ".join(p for p in (first, last) if p) or None, first_name=first,
                                last_name=last, emails=[sender["address"]])

    # -- activities ------------------------------------------------------------------------
    def activities(self, *, contact_id=None, company_id=None, kind=None, since=None, until=None,
                   account_ids=None, limit=100, offset=0) -> list[dict]:
        """Newest first. account_ids: only messages with a place in one of
        those accounts (a user's view: the web API passes the caller's)."""
        query = (select(activities.c.id).join(messages, messages.c.id == activities.c.message)
                 .order_by(activities.c.date.desc(), activities.c.id.desc()))
        if account_ids is not None:
            query = query.where(activities.c.message.in_(
                select(message_places.c.message).where(message_places.c.account_id.in_(list(account_ids)))))
        if contact_id is not None:
            query = query.where(activities.c.contact_id == contact_id)
        if company_id is not None:
            query = query.where(activities.c.contact_id.in_(
                select(contacts.c.id).where(contacts.c.company_id == company_id)))
        if kind:
            query = query.where(messages.c.kind == kind)
        if since is not None:
            query = query.where(activities.c.date >= as_utc(since))
        if until is not None:
            query = query.where(activities.c.date < as_utc(until))
        query = query.limit(max(0, min(int(limit), 1000))).offset(max(0, int(offset)))
        with self.engine.connect() as conn:
            return self._activities(conn, conn.execute(query).scalars().all())

    def get_activity(self, id) -> dict | None:
        with self.engine.connect() as conn:
            found = self._activities(conn, [id])
            return found[0] if found else None

    def _activities(self, conn, ids) -> list[dict]:
        ids = list(ids)
        if not ids:
            return []
        rows = {r.id: r for r in conn.execute(select(activities).where(activities.c.id.in_(ids)))}
        message_ids = {r.message for r in rows.values()}
        # Only the columns an activity shows: the others (classification, dates
        # kept as text in SQLite) cost a decode per row, ~half of a contact page's
        # 100 activities.
        found = {m.id: m for m in conn.execute(select(*_ACTIVITY_MESSAGE_COLUMNS)
                                               .where(messages.c.id.in_(message_ids)))}
        places: dict[int, list] = {}
        for p in conn.execute(select(*_ACTIVITY_PLACE_COLUMNS,
                                     message_places.c.gone_at.is_not(None).label("is_gone"))
                              .where(message_places.c.message.in_(message_ids))
                              .order_by(message_places.c.id)):
            places.setdefault(p.message, []).append({
                "account_id": p.account_id, "folder": p.folder, "uidvalidity": p.uidvalidity, "uid": p.uid,
                "message_id": found[p.message].message_id, "emailid": p.emailid, "flags": p.flags or [],
                "gone": bool(p.is_gone)})
        out = []
        for i in ids:
            a = rows.get(i)
            if a is None:
                continue
            m = found[a.message]
            out.append({
                "id": a.id, "contact_id": a.contact_id, "message": a.message, "direction": a.direction,
                "date": iso(a.date), "subject": m.subject, "participants": m.participants or [],
                "snippet": m.snippet, "text": m.text,
                "attachments": [{k: v for k, v in x.items()} for x in (m.attachments or [])],
                "thread": {"message_id": m.message_id, "in_reply_to": m.in_reply_to,
                           "references": m.references or []},
                "kind": m.kind, "places": places.get(a.message, [])})
        return out

    # -- private lists -----------------------------------------------------------------------
    def add_private(self, entry: str, owner: str | None = None) -> dict:
        """Mail with `entry` (an address or a domain) is never logged for `owner`
        (None: anyone). What was logged of it before goes (found by its header
        addresses; message text is not kept to look through)."""
        entry = canonical_entry(entry, fold_plus=self.fold_plus)
        if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > 200):
            raise CrmError("an owner is a user name (at most 200 characters)")
        with self._writing() as conn:
            exists = conn.execute(select(private_entries.c.id).where(
                private_entries.c.entry == entry, self._owner_is(owner))).scalar()
            if exists is None:
                conn.execute(insert(private_entries).values(owner=owner, entry=entry, created_at=utcnow()))
            self._forget(conn, entry, owner)
        return {"entry": entry, "owner": owner}

    @staticmethod
    def _owner_is(owner):
        return private_entries.c.owner.is_(None) if owner is None else private_entries.c.owner == owner

    def _forget(self, conn, entry: str, owner: str | None) -> None:
        if "@" in entry:
            match = message_addresses.c.address == entry
        else:
            address = message_addresses.c.address
            match = or_(address.endswith("@" + entry, autoescape=True), address.endswith("." + entry, autoescape=True))
        found = conn.execute(select(message_addresses.c.message).where(match).distinct()).scalars().all()
        for message_row in found:
            held = conn.execute(select(message_places.c.id, message_places.c.account_id)
                                .where(message_places.c.message == message_row)).all()
            drop = [p.id for p in held if owner is None or self.account_owner(p.account_id) == owner]
            if drop:
                conn.execute(delete(message_places).where(message_places.c.id.in_(drop)))
            if len(drop) == len(held):      # no copy left anyone may see: the message goes
                touched = conn.execute(select(activities.c.contact_id)
                                       .where(activities.c.message == message_row)).scalars().all()
                for table, column in ((activities, activities.c.message),
                                      (message_addresses, message_addresses.c.message)):
                    conn.execute(delete(table).where(column == message_row))
                conn.execute(delete(messages).where(messages.c.id == message_row))
                touch_last_contacted(conn, set(touched))

    def remove_private(self, entry: str, owner: str | None = None) -> None:
        entry = canonical_entry(entry, fold_plus=self.fold_plus)
        with self._writing() as conn:
            done = conn.execute(delete(private_entries).where(private_entries.c.entry == entry,
                                                              self._owner_is(owner)))
            if done.rowcount == 0:
                raise NotFound(f"{entry} is not on the private list" + (f" of {owner}" if owner else ""))

    def list_private(self, owner=None) -> list[dict]:
        """The private list of `owner` (None: the whole server's)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(private_entries.c.entry, private_entries.c.owner)
                                .where(self._owner_is(owner)).order_by(private_entries.c.entry)).all()
        return [{"entry": r.entry, "owner": r.owner} for r in rows]
