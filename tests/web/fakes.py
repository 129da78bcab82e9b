"""In-memory stand-ins for the parts the web app sits on (the CRM, the account
store, documents), implementing the contract's methods (/work/wt/CONTRACT22.md)
just far enough for the API's tests. The real ones are swapped in at integration."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone

from posthouse.web.errors import CrmError, DocumentError, NotFound


class FakeCrm:
    def __init__(self):
        self.contacts: dict[int, dict] = {}
        self.companies: dict[int, dict] = {}
        self.activity_rows: dict[int, dict] = {}
        self.private = []
        self._ids = itertools.count(1)

    # contacts
    def add_contact(self, *, name=None, first_name=None, last_name=None, emails=(), phone=None,
                    company=None, title=None, tags=(), notes=None) -> dict:
        for address in emails:
            if self.find_contacts(email=address):
                raise CrmError(f"{address} is already on a contact")
        id = next(self._ids)
        self.contacts[id] = {"id": id, "name": name, "first_name": first_name, "last_name": last_name,
                             "emails": [{"address": a, "bouncing": False, "bounce_reason": None} for a in emails],
                             "phone": phone, "company": self._company(company), "title": title,
                             "tags": list(tags), "notes": notes, "opted_out": False,
                             "created_at": datetime.now(timezone.utc).isoformat(), "last_contacted": None}
        return self.contacts[id]

    def _company(self, name):
        if name is None:
            return None
        for c in self.companies.values():
            if c["name"] == name:
                return {"id": c["id"], "name": name}
        c = self.add_company(name)
        return {"id": c["id"], "name": name}

    def get_contact(self, id):
        return self.contacts.get(id)

    def find_contacts(self, *, email=None, q=None, tag=None, company_id=None, limit=100, offset=0):
        out = []
        for c in self.contacts.values():
            if email and email.lower() not in {e["address"].lower() for e in c["emails"]}:
                continue
            if q and q.lower() not in (c["name"] or "").lower():
                continue
            if tag and tag not in c["tags"]:
                continue
            if company_id and (c["company"] or {}).get("id") != company_id:
                continue
            out.append(c)
        return out[offset:offset + limit]

    def edit_contact(self, id, *, add_emails=(), remove_emails=(), **fields):
        c = self.contacts.get(id)
        if c is None:
            raise NotFound(f"no contact {id}")
        if "company" in fields:
            fields["company"] = self._company(fields["company"])
        if "tags" in fields:
            fields["tags"] = list(fields["tags"])
        c.update(fields)
        c["emails"] = [e for e in c["emails"] if e["address"] not in remove_emails]
        c["emails"] += [{"address": a, "bouncing": False, "bounce_reason": None} for a in add_emails]
        return c

    def merge_contacts(self, keep_id, other_id):
        keep, other = self.contacts.get(keep_id), self.contacts.get(other_id)
        if keep is None or other is None:
            raise NotFound("no such contact")
        keep["emails"] += other["emails"]
        for a in self.activity_rows.values():
            if a["contact_id"] == other_id:
                a["contact_id"] = keep_id
        del self.contacts[other_id]
        return keep

    def delete_contact(self, id):
        if self.contacts.pop(id, None) is None:
            raise NotFound(f"no contact {id}")

    # private lists

    def add_private(self, entry, owner=None):
        entry = entry.strip().lower()
        if "." not in entry:
            raise CrmError(f"not an address or a domain: {entry}")
        if {"entry": entry, "owner": owner} not in self.private:
            self.private.append({"entry": entry, "owner": owner})
        return {"entry": entry, "owner": owner}

    def remove_private(self, entry, owner=None):
        if {"entry": entry.lower(), "owner": owner} not in self.private:
            raise NotFound(f"{entry} is not on the private list")
        self.private.remove({"entry": entry.lower(), "owner": owner})

    def list_private(self, owner=None):
        return [p for p in self.private if p["owner"] == owner]

    # companies
    def add_company(self, name, domains=()):
        id = next(self._ids)
        self.companies[id] = {"id": id, "name": name, "domains": list(domains)}
        return self.companies[id]

    def get_company(self, id):
        return self.companies.get(id)

    def list_companies(self, q=None):
        return [c for c in self.companies.values() if not q or q.lower() in c["name"].lower()]

    # activities
    def log(self, contact_id, subject, places, direction="received", kind=None) -> dict:
        """(test helper) an activity as the CRM would have logged it from the tracker's facts."""
        id = next(self._ids)
        self.activity_rows[id] = {
            "id": id, "contact_id": contact_id, "direction": direction, "date": "2026-12-01T10:00:00+00:00",
            "subject": subject, "participants": [{"role": "from", "name": "X", "address": "x@example.org"}],
            "snippet": "hello", "text": None, "attachments": [], "kind": kind, "message": 1000 + id,
            "thread": {"message_id": f"m{id}@example.org", "in_reply_to": None, "references": []},
            "places": [{"account_id": p[0], "folder": p[1], "uidvalidity": 7, "uid": p[2],
                        "message_id": f"m{id}@example.org", "emailid": None, "gone": p[3] if len(p) > 3 else False}
                       for p in places]}
        return self.activity_rows[id]

    def activities(self, *, contact_id=None, company_id=None, kind=None, since=None, until=None,
                   account_ids=None, limit=100, offset=0):
        rows = [a for a in reversed(self.activity_rows.values())
                if (contact_id is None or a["contact_id"] == contact_id) and (kind is None or a["kind"] == kind)
                and (account_ids is None or any(p["account_id"] in account_ids for p in a["places"]))]
        return rows[offset:offset + limit]

    def get_activity(self, id):
        return self.activity_rows.get(id)

    def contact_from_message(self, message_id):
        activity = next(a for a in self.activity_rows.values() if a["message"] == message_id)
        sender = next(p for p in activity["participants"] if p["role"] == "from")
        found = self.find_contacts(email=sender["address"])
        if found:
            raise CrmError(f"{sender['address']} is already on contact {found[0]['id']}")
        return self.add_contact(name=sender["name"], emails=(sender["address"],))


@dataclass
class FakeAccount:
    id: int
    owner: str
    kind: str = "imap"
    imap_host: str = "imap.example.org"
    imap_port: int = 993
    imap_tls: str = "implicit"
    login: str = "login"
    auth: str = "password"
    oauth_provider: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_tls: str | None = None
    tls_pin: str | None = None
    since: object = None
    privacy: str = "snippet"
    addresses: list = field(default_factory=list)
    state: str = "active"
    state_reason: str = ""
    secret: str = "hunter2-never-shown"      # (the real Account has none: it must never leak either way)


class FakeAccounts:
    def __init__(self, *accounts: FakeAccount):
        self.rows = {a.id: a for a in accounts}

    def get(self, id):
        return self.rows.get(id)

    def list(self, owner=None):
        return [a for a in self.rows.values() if owner is None or a.owner == owner]


class FakeDocuments:
    def __init__(self):
        self.rows: dict[int, dict] = {}
        self.blobs: dict[int, bytes] = {}
        self._ids = itertools.count(1)

    def add(self, contact_id, filename, content_type, data):
        if data.startswith(b"%PDF") and b"%%EOF" not in data:
            raise DocumentError(f"{filename}: not a readable PDF")
        id = next(self._ids)
        text = data.decode("utf-8", "replace")
        self.rows[id] = {"id": id, "contact_id": contact_id, "filename": filename, "content_type": content_type,
                         "size": len(data), "sha256": "0" * 64, "created_at": "2026-12-01T10:00:00+00:00",
                         "text_excerpt": text[:100], "_text": text}
        self.blobs[id] = data
        return self.rows[id]

    def get(self, id):
        return self.rows.get(id)

    def data(self, id):
        return self.blobs.get(id)

    def list(self, contact_id):
        return [r for r in self.rows.values() if r["contact_id"] == contact_id]

    def delete(self, id):
        self.blobs.pop(id, None)
        return self.rows.pop(id, None) is not None

    def search(self, q, *, contact_id=None, limit=50):
        hits = [{"document_id": r["id"], "contact_id": r["contact_id"], "filename": r["filename"],
                 "snippet": r["_text"][:50]}
                for r in reversed(self.rows.values())
                if all(w in r["_text"].lower() for w in q.lower().split())
                and (contact_id is None or r["contact_id"] == contact_id)]
        return hits[:limit]
