"""CAPABILITY, NOOP, LOGOUT, ID, ENABLE."""
from __future__ import annotations

from ...import __version__
from ..errors import bad
from ..protocol.tokens import Atom, ParenList, String
from ..protocol.writer import nstring

ENABLEABLE = {"IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC"}


async def capability(session, cmd):
    session.args(cmd).end()
    session.untagged("CAPABILITY " + " ".join(session.capability_list()))


async def noop(session, cmd):
    session.args(cmd).end()


async def logout(session, cmd):
    session.untagged("BYE Logging out")
    session.tagged(cmd.tag, "OK", "LOGOUT completed")
    await session.close()
    session.conn.close()


async def id_command(session, cmd):
    args = session.args(cmd)
    tok = args.next("ID parameters")
    if isinstance(tok, ParenList):
        items = tok.items
        if len(items) % 2 or len(items) > 60 or not all(isinstance(i, (Atom, String)) for i in items):
            raise bad("Invalid ID parameters")
    elif not (isinstance(tok, Atom) and tok.upper == "NIL"):
        raise bad("ID takes a list or NIL")
    args.end()
    fields = [("name", "Posthouse"), ("version", __version__), ("vendor", "Posthouse")]
    worker = getattr(session.ctx.service, "worker_number", None)
    if worker is not None:      # several session processes (workers.py): which one this is
        fields.append(("x-posthouse-worker", str(worker)))
    body = " ".join(nstring(k).decode() + " " + nstring(v).decode() for k, v in fields)
    session.untagged(f"ID ({body})")


async def enable(session, cmd):
    args = session.args(cmd)
    if not args.more():
        raise bad("ENABLE needs capability names")
    newly = []
    while args.more():
        name = args.atom("capability").upper()
        if name in ENABLEABLE and name not in session.enabled:
            session.enabled.add(name)
            newly.append("IMAP4rev2" if name == "IMAP4REV2" else name)
            if name == "QRESYNC":         # RFC 7162 3.2.3: QRESYNC implies CONDSTORE
                session.qresync = True
            if name in ("CONDSTORE", "QRESYNC"):
                await session.start_condstore()
    session.untagged("ENABLED" + "".join(" " + n for n in newly))
