"""`posthouse contact add|list|show|edit|merge|delete` and
`posthouse private add|remove|list`: the CRM from the command line."""
from __future__ import annotations

import json
import os
import sys

from .errors import CrmError


def register(subparsers) -> None:
    p = subparsers.add_parser("contact", help="manage CRM contacts",
                              description="Add, list, show, edit, merge and delete contacts.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a contact (prints it as JSON)",
                             description="Add a contact; its earlier mail is linked at once. Prints it as JSON.")
    _contact_fields(add)
    add.add_argument("--email", action="append", default=[], metavar="ADDR", help="an email address (repeatable)")
    add.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    add.set_defaults(func=cmd_contact_add)

    ls = actions.add_parser("list", help="list contacts, one a line", description="List contacts, one a line.")
    ls.add_argument("--email", metavar="ADDR", help="the contact with this address")
    ls.add_argument("--tag", help="contacts with this tag")
    ls.add_argument("--q", metavar="TEXT", help="contacts whose name, address or company contains TEXT")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    ls.add_argument("--json", action="store_true", help="one JSON object a line")
    ls.set_defaults(func=cmd_contact_list)

    show = actions.add_parser("show", help="show a contact with its activities (JSON)",
                              description="Show a contact and its latest activities as JSON.")
    show.add_argument("id", type=int, help="the contact's id")
    show.add_argument("--limit", type=int, default=50, help="activities shown (default 50)")
    show.set_defaults(func=cmd_contact_show)

    edit = actions.add_parser("edit", help="change a contact (prints it as JSON)",
                              description="Change a contact's fields; fields not given stay.")
    edit.add_argument("id", type=int, help="the contact's id")
    _contact_fields(edit)
    edit.add_argument("--add-email", action="append", default=[], metavar="ADDR", help="an address to add")
    edit.add_argument("--remove-email", action="append", default=[], metavar="ADDR", help="an address to remove")
    edit.add_argument("--tag", action="append", default=None, help="the tags (repeatable; replaces them)")
    edit.add_argument("--no-tags", action="store_true", help="remove every tag")
    edit.add_argument("--no-company", action="store_true", help="the contact has no company")
    edit.add_argument("--opted-out", choices=["yes", "no"], help="the contact opted out of mail")
    edit.set_defaults(func=cmd_contact_edit)

    merge = actions.add_parser("merge", help="merge OTHER into KEEP",
                               description="Merge contact OTHER into KEEP: addresses, tags and activities "
                                           "move to KEEP; OTHER is deleted.")
    merge.add_argument("keep", type=int, help="the contact that stays")
    merge.add_argument("other", type=int, help="the contact merged into it and deleted")
    merge.set_defaults(func=cmd_contact_merge)

    rm = actions.add_parser("delete", help="delete a contact", description="Delete a contact and its activities.")
    rm.add_argument("id", type=int, help="the contact's id")
    rm.set_defaults(func=cmd_contact_delete)

    p = subparsers.add_parser("private", help="addresses and domains whose mail is never logged",
                              description="The private list of a user (--owner) or of the whole server: mail "
                                          "with one of these addresses or domains, in its header or its text, "
                                          "is never logged.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("add", "put an entry on the list (what was logged of it goes)"),
                         ("remove", "take an entry off the list"), ("list", "print the list, one entry a line")):
        a = actions.add_parser(action, help=text, description=text[:1].upper() + text[1:] + ".")
        if action != "list":
            a.add_argument("entry", help="an address (ann@example.com) or a domain (example.com)")
        a.add_argument("--owner", metavar="USER", help="the user whose list it is (default: the whole server's)")
        a.set_defaults(func=cmd_private)


def _contact_fields(p) -> None:
    p.add_argument("--name", help="the full name (split into first and last name)")
    p.add_argument("--first-name", help="the first name")
    p.add_argument("--last-name", help="the last name")
    p.add_argument("--phone", help="a phone number")
    p.add_argument("--company", help="the company's name (found, or made)")
    p.add_argument("--title", help="the job title")
    p.add_argument("--notes", help="free text")


def _reflected(engine):
    """Own addresses and account owners read from the accounts table, when the
    accounts part has made it (crm/ doesn't import accounts/)."""
    from sqlalchemy import MetaData, Table, inspect, select
    if not inspect(engine).has_table("accounts"):
        return (lambda: set()), (lambda _account_id: None)
    accounts = Table("accounts", MetaData(), autoload_with=engine)

    def own() -> set[str]:
        out = set()
        if "addresses" in accounts.c:
            with engine.connect() as conn:
                for addresses in conn.execute(select(accounts.c.addresses)).scalars():
                    out.update(a for a in (addresses or ()) if isinstance(a, str))
        return out

    def owner(account_id):
        with engine.connect() as conn:
            return conn.execute(select(accounts.c.owner).where(accounts.c.id == account_id)).scalar()
    return own, owner


def open_crm(args):
    from ..config import load_config
    from ..db.engine import make_engine
    from ..db.migrate import upgrade
    from .service import Crm
    config = load_config(args.config, args.data_dir)
    if not config.database_url:
        os.makedirs(config.data_dir, exist_ok=True)
    engine = make_engine(config.database_url, config.data_dir)
    upgrade(engine)
    own, owner = _reflected(engine)
    return Crm(engine, own_addresses=own, account_owner=owner,
               fold_plus=bool(getattr(config, "crm_fold_plus", False)))


def _run(args, work) -> int:
    try:
        crm = open_crm(args)
    except Exception as e:      # no database to be had: say so in one line
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(e, ValueError) and not isinstance(e, CrmError):
            raise               # a bad config: cli.main names every problem
        print(f"posthouse: the CRM database could not be opened: {e}", file=sys.stderr)
        return 1
    try:
        return work(crm) or 0
    except CrmError as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    finally:
        crm.engine.dispose()


def _print(obj, indent=None) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=indent))


def _fields(args) -> dict:
    return {k: getattr(args, k) for k in ("name", "first_name", "last_name", "phone", "company", "title", "notes")
            if getattr(args, k) is not None}


def cmd_contact_add(args) -> int:
    def work(crm):
        _print(crm.add_contact(emails=args.email, tags=args.tag, **_fields(args)))
    return _run(args, work)


def _line(c: dict) -> str:
    emails = ", ".join(e["address"] + (" (bouncing)" if e["bouncing"] else "") for e in c["emails"])
    parts = [str(c["id"]), c["name"] or "-", emails or "-"]
    if c["company"]:
        parts.append(c["company"]["name"])
    if c["tags"]:
        parts.append("[" + ", ".join(c["tags"]) + "]")
    return "\t".join(parts)


def cmd_contact_list(args) -> int:
    def work(crm):
        for c in crm.find_contacts(email=args.email, tag=args.tag, q=args.q, limit=args.limit):
            print(json.dumps(c, ensure_ascii=False) if args.json else _line(c))
    return _run(args, work)


def cmd_contact_show(args) -> int:
    def work(crm):
        from .errors import NotFound
        contact = crm.get_contact(args.id)
        if contact is None:
            raise NotFound(f"no contact {args.id}")
        contact["activities"] = crm.activities(contact_id=args.id, limit=args.limit)
        _print(contact, indent=2)
    return _run(args, work)


def cmd_contact_edit(args) -> int:
    def work(crm):
        fields = _fields(args)
        if args.no_company:
            fields["company"] = None
        if args.tag is not None or args.no_tags:
            fields["tags"] = [] if args.no_tags else args.tag
        if args.opted_out:
            fields["opted_out"] = args.opted_out == "yes"
        _print(crm.edit_contact(args.id, add_emails=args.add_email, remove_emails=args.remove_email, **fields))
    return _run(args, work)


def cmd_contact_merge(args) -> int:
    return _run(args, lambda crm: _print(crm.merge_contacts(args.keep, args.other)))


def cmd_contact_delete(args) -> int:
    def work(crm):
        crm.delete_contact(args.id)
        print(f"contact {args.id} deleted")
    return _run(args, work)


def cmd_private(args) -> int:
    def work(crm):
        scope = f"{args.owner}'s" if args.owner else "the server's"
        if args.action == "list":
            for item in crm.list_private(args.owner):
                print(item["entry"])
            return 0
        if args.action == "add":
            done = crm.add_private(args.entry, owner=args.owner)
            print(f"{done['entry']} is on {scope} private list")
        else:
            crm.remove_private(args.entry, owner=args.owner)
            print(f"{args.entry} is off {scope} private list")
    return _run(args, work)
