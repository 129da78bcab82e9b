"""An asyncio IMAP client connection on the project's sans-IO codec.

One command runs at a time (a lock). Responses are read by the command that
waits for them; untagged updates that are not part of its answer (EXISTS,
EXPUNGE, VANISHED, FETCH of flags, STATUS from NOTIFY...) are queued in
`updates` for the caller to take. Any I/O failure, timeout or garbage makes
the connection unusable and raises ConnectionLost.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass, field
from datetime import datetime

from ..imap.protocol import mutf7
from ..imap.protocol.responses import (
    Capability, Continuation, Enabled, ESearch, Exists, Expunge, Fetch, Flags, ListEntry, Recent, ResponseError,
    ResponseReader, Search, Status, StatusResponse, UidSet, Vanished, as_number)
from ..imap.protocol.tokens import Atom
from .errors import BadResponse, ConnectionLost, ImapError, LoginFailed, NoResponse
from .transport import Endpoint, connect_tcp, start_tls

FetchItem = Fetch
SPECIAL_USE = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


@dataclass
class Folder:
    name: str                       # decoded
    delimiter: str | None
    attributes: frozenset[str]
    special_use: str | None
    raw_name: bytes = b""

    @property
    def selectable(self) -> bool:
        lower = {a.lower() for a in self.attributes}
        return "\\noselect" not in lower and "\\nonexistent" not in lower


@dataclass
class Selected:
    name: str
    uidvalidity: int | None = None
    uidnext: int | None = None
    exists: int = 0
    highestmodseq: int | None = None    # None: NOMODSEQ / no CONDSTORE
    readonly: bool = True
    vanished: list[UidSet] = field(default_factory=list)    # QRESYNC's VANISHED (EARLIER)
    changed: list[Fetch] = field(default_factory=list)      # QRESYNC's FETCH of changed flags


class _Lit:
    """A literal in a command being sent."""
    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class ImapConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, endpoint: Endpoint):
        self._reader, self._writer = reader, writer
        self.endpoint = endpoint
        self._parser = ResponseReader()
        self._tags = itertools.count(1)
        self._lock = asyncio.Lock()
        self.capabilities: frozenset[str] = frozenset()
        self.peer_cert_sha256: str | None = None
        self.enabled: set[str] = set()
        self.selected: Selected | None = None
        self.updates: list = []         # unsolicited untagged responses, oldest first
        self.bye: str | None = None
        self.broken = False

    # ------------------------------------------------------------ opening

    @classmethod
    async def open(cls, endpoint: Endpoint) -> "ImapConnection":
        reader, writer = await connect_tcp(endpoint)
        conn = cls(reader, writer, endpoint)
        try:
            if endpoint.tls == "implicit":
                conn.peer_cert_sha256 = await start_tls(writer, endpoint)
            await conn._greeting()
            if endpoint.tls == "starttls":
                await conn._starttls()
        except BaseException:
            conn.close()
            raise
        return conn

    async def _greeting(self) -> None:
        try:
            greeting = await self._read()
        except ConnectionLost as e:
            raise ImapError("greeting", f"no IMAP greeting: {e.message}") from None
        if not isinstance(greeting, StatusResponse) or greeting.tag is not None or \
                greeting.status not in ("OK", "PREAUTH"):
            raise ImapError("greeting", f"the server refused or is not IMAP: {_describe(greeting)}")
        if greeting.code == "CAPABILITY":
            self.capabilities = _caps(greeting.code_args)
        else:
            await self.refresh_capabilities()

    async def _starttls(self) -> None:
        if "STARTTLS" not in self.capabilities:
            raise ImapError("tls", "the server does not offer STARTTLS")
        await self._run([b"STARTTLS"], step="tls")
        if self._parser.mid_response:
            # Bytes after the OK came before the handshake: an injection attempt.
            raise ImapError("tls", "the server sent data before the TLS handshake")
        self.peer_cert_sha256 = await start_tls(self._writer, self.endpoint)
        self.capabilities = frozenset()
        await self.refresh_capabilities()

    async def refresh_capabilities(self) -> None:
        untagged, _ = await self._run([b"CAPABILITY"], step="capability")
        for r in untagged:
            if isinstance(r, Capability):
                self.capabilities = r.names
        if not self.capabilities:
            raise ImapError("capability", "the server listed no capabilities")

    # ------------------------------------------------------------ authentication

    async def login(self, user: str, password: str) -> None:
        if "LOGINDISABLED" in self.capabilities:
            await self.authenticate("PLAIN", b"\0" + user.encode() + b"\0" + password.encode())
            return
        try:
            _, done = await self._run([b"LOGIN ", _string(user), b" ", _string(password)], step="login")
        except NoResponse as e:
            raise _login_error(e.code, e.text) from None
        await self._after_login(done)

    async def authenticate(self, mechanism: str, initial_response: bytes) -> None:
        encoded = base64.b64encode(initial_response) or b"="
        async with self._lock:
            tag = self._tag()
            if "SASL-IR" in self.capabilities:
                await self._send(tag, [b"AUTHENTICATE ", mechanism.encode(), b" ", encoded])
                sent = True
            else:
                await self._send(tag, [b"AUTHENTICATE ", mechanism.encode()])
                sent = False
            while True:
                r = await self._read()
                if isinstance(r, Continuation):
                    # First challenge: the initial response; later ones are error
                    # challenges (XOAUTH2's JSON), answered empty to get the NO.
                    await self._write((b"\r\n" if sent else encoded + b"\r\n"))
                    sent = True
                elif isinstance(r, StatusResponse) and r.tag == tag:
                    break
                else:
                    self._untagged(r)
        if r.status == "NO":
            raise _login_error(r.code, r.text)
        if r.status != "OK":
            raise BadResponse("login", f"{r.status} {r.text}")
        await self._after_login(r)

    async def _after_login(self, done: StatusResponse) -> None:
        if done.code == "CAPABILITY":
            self.capabilities = _caps(done.code_args)
        else:
            self.capabilities = frozenset()
            await self.refresh_capabilities()

    # ------------------------------------------------------------ commands

    async def enable(self, *capabilities: str) -> set[str]:
        wanted = [c.upper() for c in capabilities if c.upper() not in self.enabled]
        if not wanted or "ENABLE" not in self.capabilities:
            return set(self.enabled)
        untagged, _ = await self._run([b"ENABLE " + " ".join(wanted).encode()])
        for r in untagged:
            if isinstance(r, Enabled):
                self.enabled |= set(r.names)
        return set(self.enabled)

    async def select(self, folder: str, *, readonly: bool = True, condstore: bool = False,
                     qresync: tuple[int, int] | None = None) -> Selected:
        if qresync and "QRESYNC" in self.capabilities:
            await self.enable("QRESYNC")
        parts = [b"EXAMINE " if readonly else b"SELECT ", self._mailbox(folder)]
        if qresync and "QRESYNC" in self.enabled:
            parts.append(b" (QRESYNC (%d %d))" % qresync)
        elif (condstore or qresync) and "CONDSTORE" in self.capabilities:
            parts.append(b" (CONDSTORE)")
        self.selected = None
        selected = Selected(folder, readonly=readonly)
        untagged, done = await self._run(parts, keep=(Exists, Vanished, Fetch, StatusResponse, Flags, Recent))
        for r in untagged:
            if isinstance(r, Exists):
                selected.exists = r.count
            elif isinstance(r, Vanished):
                selected.vanished.append(r.uids)
            elif isinstance(r, Fetch):
                selected.changed.append(r)
            elif isinstance(r, StatusResponse):
                if r.code == "UIDVALIDITY":
                    selected.uidvalidity = r.code_number()
                elif r.code == "UIDNEXT":
                    selected.uidnext = r.code_number()
                elif r.code == "HIGHESTMODSEQ":
                    selected.highestmodseq = r.code_number()
                elif r.code == "NOMODSEQ":
                    selected.highestmodseq = None
        if done.code == "READ-WRITE":
            selected.readonly = False
        self.selected = selected
        return selected

    async def unselect(self) -> None:
        if self.selected is None:
            return
        if "UNSELECT" in self.capabilities:
            await self._run([b"UNSELECT"])
        else:
            # CLOSE would expunge a read-write mailbox; EXAMINE of nothing does not.
            try:
                await self._run([b'EXAMINE "\x20"'])
            except NoResponse:
                pass
        self.selected = None

    async def status(self, folder: str, items=("UIDNEXT", "UIDVALIDITY", "MESSAGES", "HIGHESTMODSEQ")) -> dict[str, int]:
        items = [i for i in items if i != "HIGHESTMODSEQ" or "CONDSTORE" in self.capabilities]
        untagged, _ = await self._run([b"STATUS ", self._mailbox(folder), b" (" + " ".join(items).encode() + b")"],
                                      keep=(Status,))
        out: dict[str, int] = {}
        for r in untagged:
            if r.mailbox == folder or (folder.upper() == "INBOX" and r.mailbox.upper() == "INBOX"):
                out.update(r.items)
            else:
                self.updates.append(r)      # NOTIFY's news about another folder
        return out

    async def list_folders(self) -> list[Folder]:
        parts = [b'LIST "" "*"']
        if "SPECIAL-USE" in self.capabilities and "LIST-EXTENDED" in self.capabilities:
            parts.append(b" RETURN (SPECIAL-USE)")
        untagged, _ = await self._run(parts, keep=(ListEntry,))
        folders = []
        for r in untagged:
            lower = {a.lower(): a for a in r.attributes}
            special = next((s for s in SPECIAL_USE if s.lower() in lower), None)
            folders.append(Folder(r.name, r.delimiter, r.attributes, special, r.raw_name))
        return folders

    async def uid_search(self, criteria: str) -> list[int]:
        if "ESEARCH" in self.capabilities:
            untagged, _ = await self._run([b"UID SEARCH RETURN (ALL) " + criteria.encode()], keep=(ESearch,))
            out: list[int] = []
            for r in untagged:
                if r.all is not None:
                    out.extend(r.all)
            return out
        untagged, _ = await self._run([b"UID SEARCH " + criteria.encode()], keep=(Search,))
        return [n for r in untagged for n in r.numbers]

    async def uid_fetch(self, uids: str, items: str, *, changedsince: int | None = None, vanished: bool = False):
        """Yield each FETCH (and, with vanished=True, each VANISHED (EARLIER))
        as it arrives. Leaving the loop early drains the rest of the answer."""
        modifiers = []
        if changedsince is not None:
            modifiers.append(b"CHANGEDSINCE %d" % changedsince)
            if vanished:
                modifiers.append(b"VANISHED")
        text = b"UID FETCH " + uids.encode() + b" (" + items.encode() + b")"
        if modifiers:
            text += b" (" + b" ".join(modifiers) + b")"
        async with self._lock:
            tag = self._tag()
            await self._send(tag, [text])
            finished = False
            try:
                while True:
                    r = await self._read()
                    if isinstance(r, StatusResponse) and r.tag == tag:
                        finished = True
                        self._check(r, "command")
                        return
                    if isinstance(r, Fetch) and r.uid is not None:
                        yield r
                    elif vanished and isinstance(r, Vanished) and r.earlier:
                        yield r
                    else:
                        self._untagged(r)
            except asyncio.CancelledError:
                self.close()        # mid-answer: the stream's state is unknown, and no time to drain
                raise
            finally:
                if not finished and not self.broken:
                    await self._drain(tag)

    async def append(self, folder: str, message: bytes, flags=(), date: datetime | None = None) -> tuple[int, int] | None:
        parts = [b"APPEND ", self._mailbox(folder)]
        if flags:
            parts.append(b" (" + " ".join(flags).encode() + b")")
        if date is not None:
            parts.append(b' "' + date.strftime("%d-%b-%Y %H:%M:%S %z").encode() + b'"')
        parts += [b" ", _Lit(message)]
        _, done = await self._run(parts)
        if done.code == "APPENDUID" and len(done.code_args) >= 2:
            try:
                return as_number(done.code_args[0]), as_number(done.code_args[1])
            except ResponseError:
                return None
        return None

    async def notify(self, spec: str) -> None:
        """NOTIFY SET/NONE (RFC 5465); the news then arrives in `updates`."""
        await self._run([b"NOTIFY " + spec.encode()])

    async def noop(self) -> list:
        await self._run([b"NOOP"])
        return self.take_updates()

    async def logout(self) -> None:
        try:
            await self._run([b"LOGOUT"])
        except ImapError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.broken = True
        try:
            self._writer.close()
        except Exception:
            pass

    def take_updates(self) -> list:
        out, self.updates = self.updates, []
        return out

    def closed_by_server(self) -> bool:
        """Without waiting: has the server hung up (or said BYE) while nobody
        was reading? (A pooled connection whose selected mailbox another
        client deleted gets a BYE and is closed; it must not be lent again.)"""
        if self.broken or self.bye:
            return True
        reader = self._reader
        # StreamReader keeps the end-of-file mark even while unread bytes (the BYE) wait.
        return reader is None or reader.at_eof() or bool(getattr(reader, "_eof", False))

    async def wait_updates(self, timeout: float) -> list:
        """Between commands (NOTIFY active): wait up to timeout for news."""
        async with self._lock:
            if not self.updates:
                r = await self._read(timeout=timeout, quiet=True)
                if r is not None:
                    self._untagged(r)
                self._untagged_ready()
        return self.take_updates()

    def idle(self) -> "Idle":
        """`async with conn.idle() as idle: news = await idle.wait(timeout)`."""
        return Idle(self)

    # ------------------------------------------------------------ plumbing

    def _tag(self) -> str:
        return f"P{next(self._tags)}"

    def _mailbox(self, name: str) -> bytes:
        if name.upper() == "INBOX":
            return b"INBOX"
        if "UTF8=ACCEPT" in self.enabled or "IMAP4REV2" in self.enabled:
            return _string(name)
        return _string(mutf7.encode(name))

    async def _run(self, parts: list, *, step: str = "command", keep=()) -> tuple[list, StatusResponse]:
        """Send a command and read its answer. Untagged responses of the kinds
        in `keep` are returned; the rest go to `updates`."""
        async with self._lock:
            tag = self._tag()
            await self._send(tag, parts)
            got = []
            while True:
                r = await self._read()
                if isinstance(r, StatusResponse) and r.tag == tag:
                    self._check(r, step)
                    return got, r
                if isinstance(r, (Capability, Enabled)) or (keep and isinstance(r, keep) and _is_answer(r)):
                    got.append(r)
                else:
                    self._untagged(r)

    def _check(self, r: StatusResponse, step: str) -> None:
        if r.status == "OK":
            return
        if r.status == "NO":
            raise NoResponse(step, r.code, r.text)
        raise BadResponse(step, f"{r.status} {'[' + r.code + '] ' if r.code else ''}{r.text}")

    async def _send(self, tag: str, parts: list) -> None:
        out = bytearray(tag.encode() + b" ")
        plus = "LITERAL+" in self.capabilities
        minus = "LITERAL-" in self.capabilities
        for part in parts:
            if not isinstance(part, _Lit):
                out += part
                continue
            size = len(part.data)
            if plus or (minus and size <= 4096):
                out += b"{%d+}\r\n" % size + part.data
                continue
            out += b"{%d}\r\n" % size
            await self._write(bytes(out))
            out = bytearray()
            while True:
                r = await self._read()
                if isinstance(r, Continuation):
                    break
                if isinstance(r, StatusResponse) and r.tag == tag:
                    self._check(r, "command")
                    raise BadResponse("command", "the server ended the command before its literal")
                self._untagged(r)
            out += part.data
        out += b"\r\n"
        await self._write(bytes(out))

    async def _write(self, data: bytes) -> None:
        if self.broken:
            raise ConnectionLost("connection", "the connection was closed")
        try:
            self._writer.write(data)
            async with asyncio.timeout(self.endpoint.timeout):
                await self._writer.drain()
        except (OSError, TimeoutError) as e:
            self._lost(f"write failed: {e or 'timeout'}")

    async def _read(self, timeout: float | None = None, quiet: bool = False):
        """The next response. quiet: a timeout returns None instead of failing."""
        if self.broken:
            raise ConnectionLost("connection", "the connection was closed")
        timeout = self.endpoint.timeout if timeout is None else timeout
        while True:
            try:
                r = self._parser.next_response()
            except ResponseError as e:
                self._lost(f"garbage from the server: {e}")
            if r is not None:
                if isinstance(r, StatusResponse) and r.tag is None and r.status == "BYE":
                    self.bye = r.text
                return r
            try:
                # asyncio.timeout, not wait_for: wait_for (3.11) can swallow a
                # cancel that comes as data arrives, and the task never stops.
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(1 << 16)
            except TimeoutError:
                if quiet and not self._parser.mid_response:
                    return None
                self._lost(f"no answer in {timeout:g}s")
            except (OSError, asyncio.IncompleteReadError) as e:
                self._lost(f"read failed: {e}")
            if not data:
                self._lost("the server closed the connection" + (f" ({self.bye})" if self.bye else ""))
            self._parser.feed(data)

    def _untagged_ready(self) -> None:
        """Move responses already received (no waiting) to `updates`."""
        while True:
            try:
                r = self._parser.next_response()
            except ResponseError as e:
                self._lost(f"garbage from the server: {e}")
            if r is None:
                return
            self._untagged(r)

    def _lost(self, why: str):
        self.close()
        raise ConnectionLost("connection", why)

    def _untagged(self, r) -> None:
        if isinstance(r, Capability):
            self.capabilities = r.names
        elif isinstance(r, StatusResponse):
            if r.tag is None and r.code == "CAPABILITY":
                self.capabilities = _caps(r.code_args)
            if r.tag is None and r.status == "BYE":
                self.updates.append(r)
            return      # other untagged OKs carry nothing the caller waits for
        elif isinstance(r, Continuation):
            return
        if self.selected is not None:
            if isinstance(r, Exists):
                self.selected.exists = r.count
            elif isinstance(r, Expunge):
                self.selected.exists = max(0, self.selected.exists - 1)
        self.updates.append(r)

    async def _drain(self, tag: str) -> None:
        try:
            while True:
                r = await self._read()
                if isinstance(r, StatusResponse) and r.tag == tag:
                    return
                if not isinstance(r, Fetch):
                    self._untagged(r)
        except ImapError:
            pass


class Idle:
    """IDLE (RFC 2177) as an async context manager: entering sends IDLE and
    waits for the server's "+", leaving sends DONE and waits for the OK."""

    def __init__(self, conn: ImapConnection):
        self.conn = conn
        self.ended = False      # the server ended the IDLE itself
        self._tag = ""

    def __await__(self):
        if False:
            yield
        return self

    async def __aenter__(self) -> "Idle":
        conn = self.conn
        if "IDLE" not in conn.capabilities:
            raise ImapError("capability", "the server does not offer IDLE")
        await conn._lock.acquire()
        try:
            self._tag = conn._tag()
            await conn._send(self._tag, [b"IDLE"])
            while True:
                r = await conn._read()
                if isinstance(r, Continuation):
                    return self
                if isinstance(r, StatusResponse) and r.tag == self._tag:
                    conn._check(r, "command")
                    raise BadResponse("command", "IDLE ended before it began")
                conn._untagged(r)
        except BaseException:
            conn._lock.release()
            raise

    async def wait(self, timeout: float) -> list:
        """Updates that arrived (waiting up to timeout for the first)."""
        conn = self.conn
        if not conn.updates and not self.ended:
            r = await conn._read(timeout=timeout, quiet=True)
            if r is not None:
                self._take(r)
            while not self.ended:
                try:
                    r = conn._parser.next_response()
                except ResponseError as e:
                    conn._lost(f"garbage from the server: {e}")
                if r is None:
                    break
                self._take(r)
        return conn.take_updates()

    def _take(self, r) -> None:
        if isinstance(r, StatusResponse) and r.tag == self._tag:
            self.ended = True
        else:
            self.conn._untagged(r)

    async def __aexit__(self, exc_type, exc, tb) -> None:
        conn = self.conn
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            conn.close()        # stopping: no DONE and no wait for its answer
        try:
            if not self.ended and not conn.broken:
                await conn._write(b"DONE\r\n")
                while True:
                    r = await conn._read()
                    if isinstance(r, StatusResponse) and r.tag == self._tag:
                        break
                    conn._untagged(r)
        finally:
            conn._lock.release()


# RFC 5530: a NO with one of these is the server's trouble, not the credentials'.
TEMPORARY = frozenset({"UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG", "OVERQUOTA"})


def _login_error(code: str | None, text: str) -> NoResponse:
    if code in TEMPORARY:
        return NoResponse("login", code, text)
    return LoginFailed(code, text)


def _is_answer(r) -> bool:
    # An untagged OK without a code is chatter; one with a code answers SELECT.
    return not isinstance(r, StatusResponse) or (r.tag is None and r.code is not None)


def _caps(tokens) -> frozenset[str]:
    return frozenset(t.upper for t in tokens if isinstance(t, Atom))


def _string(value: str):
    raw = value.encode("utf-8")
    if len(raw) < 1000 and not any(b in raw for b in b"\r\n\0"):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return _Lit(raw)


def _describe(r) -> str:
    if isinstance(r, StatusResponse):
        return f"{r.status} {r.text}"[:200]
    return type(r).__name__
