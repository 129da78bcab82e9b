"""The POP3 protocol over asyncio streams: one Pop3Session per connection."""
from __future__ import annotations

import asyncio
import logging
import time

from ..auth.sasl import SaslError, decode_response, parse_plain
from ..logfmt import LoginLog
from ..net import Clock, StreamServers, TimedOut, peer_of, tls_failed
from ..store.wake_counters import ARRIVALS
from .maildrop import InUse, Maildrop

log = logging.getLogger("posthouse.pop3")

MAX_LINE = 1024          # RFC 2449 allows 255 octets a command; SASL responses are longer
CHUNK = 256 * 1024       # a big message is sent in pieces of this size


def dot_stuff(chunk: bytes, at_line_start: bool) -> bytes:
    """Byte-stuff one piece of a message (RFC 1939 3): a line that starts
    with "." gets another. at_line_start: the piece before ended a line."""
    stuffed = chunk.replace(b"\n.", b"\n..")
    if at_line_start and stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed


class Pop3Session:
    def __init__(self, reader, writer, ctx, tls: bool):
        self.reader, self.writer, self.ctx = reader, writer, ctx
        self.config = ctx.config
        self.tls = tls
        self.peer, self.loopback = peer_of(writer)
        self.login_log = LoginLog("pop3", self.peer)
        self.user_name: str | None = None      # after USER
        self.maildrop: Maildrop | None = None  # in the TRANSACTION state
        self.failures = 0
        self.done = False
        self.clock = Clock(self.config, self.config.pop3_timeout)

    # -- plumbing ---------------------------------------------------------------
    def send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8", "replace") + b"\r\n")

    def ok(self, text: str = "") -> None:
        self.send("+OK" + (" " + text if text else ""))

    def err(self, text: str, code: str | None = None) -> None:
        self.send("-ERR " + (f"[{code}] " if code else "") + text)

    async def readline(self) -> bytes | None:
        """A line without its CRLF; None at EOF or after a timeout (said to the client)."""
        try:
            line = await self.clock.readline(self.reader)
        except asyncio.LimitOverrunError:
            return b"\x00too-long"
        except TimedOut as e:
            self.err(str(e))
            return None
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None
        if not line:
            return None
        return line.rstrip(b"\r\n")

    def plaintext_allowed(self) -> bool:
        mode = self.config.plaintext_auth
        return self.tls or mode == "always" or (mode == "loopback" and self.loopback)

    # -- the session ------------------------------------------------------------
    async def run(self) -> None:
        self.ok(f"Posthouse POP3 ready <{time.time_ns()}@{self.config.hostname or 'posthouse'}>")
        try:
            while not self.done:
                await self.writer.drain()
                line = await self.readline()
                if line is None:
                    break
                if line == b"\x00too-long":
                    self.err("Line too long")
                    break
                await self.dispatch(line)
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.login_log.logout()
            if self.maildrop is not None:
                self.maildrop.close()       # a dropped connection: no UPDATE state (RFC 1939 6)
            self.writer.close()

    async def dispatch(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        name, _, rest = text.partition(" ")
        name = name.upper()
        args = rest.split() if rest else []
        handler = getattr(self, "cmd_" + name, None) if name.isalpha() else None
        if handler is None:
            self.err("Unknown command")
            return
        if name in self.TRANSACTION and self.maildrop is None:
            self.err("Not logged in")
            return
        if name in self.AUTHORIZATION and self.maildrop is not None:
            self.err("Already logged in")
            return
        if name in self.ARITY:
            low, high, usage = self.ARITY[name]
            if not low <= len(args) <= high:
                # RFC 1939 3: the arguments are exact; "RETR 1 1" is not RETR 1.
                self.err(f"Syntax: {usage}")
                return
        try:
            await handler(args, rest)
        except (ConnectionError, OSError):
            raise
        except Exception:
            log.exception("POP3 %s failed peer=%s", name, self.peer)
            self.err("Internal error; it has been logged", "SYS/TEMP")

    AUTHORIZATION = {"USER", "PASS", "AUTH", "STLS", "APOP"}
    # How many arguments each command takes (RFC 1939, 2449, 2595, 5034), and
    # its syntax for the -ERR. PASS is not here: its argument is the whole
    # rest of the line, spaces and all.
    ARITY = {"STAT": (0, 0, "STAT"), "LIST": (0, 1, "LIST [msg]"), "RETR": (1, 1, "RETR msg"),
             "DELE": (1, 1, "DELE msg"), "NOOP": (0, 0, "NOOP"), "RSET": (0, 0, "RSET"),
             "QUIT": (0, 0, "QUIT"), "TOP": (2, 2, "TOP msg n"), "UIDL": (0, 1, "UIDL [msg]"),
             "USER": (1, 1, "USER name"), "APOP": (2, 2, "APOP name digest"), "CAPA": (0, 0, "CAPA"),
             "STLS": (0, 0, "STLS"), "AUTH": (0, 2, "AUTH [mechanism [initial-response]]")}
    TRANSACTION = {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL"}

    def capabilities(self) -> list[str]:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER",
                "IMPLEMENTATION Posthouse"]
        if self.maildrop is None:
            if self.ctx.tls_context is not None and not self.tls:
                caps.append("STLS")
            if self.plaintext_allowed():
                caps += ["USER", "SASL PLAIN"]
        return caps

    async def cmd_CAPA(self, args, rest):
        self.ok("Capability list follows")
        for cap in self.capabilities():
            self.send(cap)
        self.send(".")

    async def cmd_QUIT(self, args, rest):
        if self.maildrop is not None:
            try:
                await self.maildrop.commit()
            except Exception:
                log.exception("POP3 QUIT: expunge failed user=%s", self.maildrop.user.name)
                self.err("Some deleted messages not removed", "SYS/TEMP")
                self.done = True
                return
        self.ok("Bye")
        self.done = True

    # -- AUTHORIZATION ------------------------------------------------------------
    async def cmd_STLS(self, args, rest):
        if self.ctx.tls_context is None:
            self.err("TLS is not configured")
            return
        if self.tls:
            self.err("TLS is already active")
            return
        self.ok("Begin TLS negotiation")
        await self.writer.drain()
        # Anything the client pipelined after STLS in cleartext is thrown away.
        self.reader._buffer.clear()
        try:
            await self.writer.start_tls(self.ctx.tls_context)
        except (OSError, asyncio.TimeoutError) as e:   # the client gave up or spoke no TLS
            tls_failed("POP3 STLS", self.peer, e)
            self.done = True
            return
        self.tls = True
        self.user_name = None

    async def cmd_APOP(self, args, rest):
        self.err("APOP is not supported; use USER/PASS or AUTH PLAIN over TLS")

    async def cmd_USER(self, args, rest):
        if not self.plaintext_allowed():
            self.err("Plaintext login is disabled here; use STLS first", "AUTH")
            return
        if len(args) != 1:
            self.err("USER needs a name")
            return
        self.user_name = args[0]
        self.ok("Send PASS")

    async def cmd_PASS(self, args, rest):
        if self.user_name is None:
            self.err("USER first")
            return
        name, self.user_name = self.user_name, None
        await self.login(name, rest)        # the whole rest: a password may hold spaces

    async def cmd_AUTH(self, args, rest):
        if not args:
            # RFC 5034 4: AUTH without a mechanism lists them (as some clients expect).
            self.ok("Mechanisms follow")
            if self.plaintext_allowed():
                self.send("PLAIN")
            self.send(".")
            return
        if args[0].upper() != "PLAIN":
            self.err("Unsupported mechanism")
            return
        if not self.plaintext_allowed():
            self.err("Plaintext authentication is disabled here; use STLS first", "AUTH")
            return
        if len(args) > 1:
            response = args[1].encode()
        else:
            self.send("+ ")
            await self.writer.drain()
            response = await self.readline()
            if response is None:
                self.done = True
                return
            if response.strip() == b"*":
                self.err("Authentication cancelled")
                return
        try:
            name, password = parse_plain(decode_response(response))
        except SaslError as e:
            self.err(str(e))
            return
        await self.login(name, password)

    async def login(self, name: str, password: str) -> None:
        user = await self.ctx.authenticator.check(name, password, self.peer)
        if user is None:
            self.login_log.failed(name, self.tls)
            self.failures += 1
            self.err("Authentication failed", "AUTH")
            if self.failures >= self.config.max_auth_failures:
                self.done = True
            return
        arrivals = getattr(self.ctx.deliverer, "arrivals", None)
        if arrivals is not None:
            await arrivals.settled(user.id)     # mail answered "250" is in the maildrop
        await self.ctx.service.others_done(ARRIVALS, user.id)      # (by any worker)
        maildrop = Maildrop(self.ctx, user)
        try:
            await maildrop.open()
        except InUse:
            self.err("Maildrop is in use by another POP3 session", "IN-USE")
            return
        except Exception:
            maildrop.close()
            raise
        self.maildrop = maildrop
        self.clock.logged_in()
        self.login_log.login(user.name, self.tls)
        count = len(maildrop.messages)
        self.ok(f"Logged in, {count} message{'s' if count != 1 else ''}")

    # -- TRANSACTION --------------------------------------------------------------
    def _number(self, args, required: bool = True):
        """The message number argument, or None after answering -ERR."""
        if not args:
            if required:
                self.err("A message number is needed")
            return None
        if not args[0].isdigit() or len(args[0]) > 10:
            self.err("Invalid message number")
            return None
        found = self.maildrop.message(int(args[0]))
        if found is None:
            self.err("No such message")
            return None
        return int(args[0])

    async def cmd_STAT(self, args, rest):
        live = list(self.maildrop.live())
        self.ok(f"{len(live)} {sum(size for _n, _u, size in live)}")

    async def cmd_NOOP(self, args, rest):
        self.ok()

    async def cmd_RSET(self, args, rest):
        self.maildrop.deleted.clear()
        self.ok()

    async def cmd_DELE(self, args, rest):
        n = self._number(args)
        if n is not None:
            self.maildrop.deleted.add(n)
            self.ok(f"Message {n} deleted")

    async def cmd_LIST(self, args, rest):
        await self._listing(args, lambda n, uid, size: f"{n} {size}")

    async def cmd_UIDL(self, args, rest):
        await self._listing(args, lambda n, uid, size: f"{n} {self.maildrop.uidl(uid)}")

    async def _listing(self, args, line) -> None:
        if args:
            n = self._number(args)
            if n is not None:
                uid, size = self.maildrop.message(n)
                self.ok(line(n, uid, size))
            return
        self.ok()
        for n, uid, size in self.maildrop.live():
            self.send(line(n, uid, size))
        self.send(".")

    async def _message_data(self, args):
        """The MessageData of the numbered message, or None after answering -ERR."""
        n = self._number(args)
        if n is None:
            return None
        uid, _size = self.maildrop.message(n)
        msg = await self.maildrop.data(uid)
        if msg is None:
            self.err("Message was deleted by another session", "SYS/PERM")
        return msg

    async def cmd_RETR(self, args, rest):
        msg = await self._message_data(args)
        if msg is None:
            return
        uid = msg.uid
        self.ok(f"{msg.size} octets")
        await self._send_range(msg, 0, msg.size)
        self.send(".")
        await self.maildrop.mark_seen(uid)      # as an IMAP BODY[] fetch would

    async def cmd_TOP(self, args, rest):
        if len(args) != 2 or not args[1].isdigit():
            self.err("TOP needs a message number and a number of lines")
            return
        msg = await self._message_data(args)
        if msg is None:
            return
        lines = int(args[1])
        end = msg.header_size
        if lines:
            # The header, then the body's first lines: read on until enough newlines.
            pos, count = msg.header_size, 0
            while pos < msg.size and count < lines:
                piece = await self.maildrop.read(msg, pos, min(msg.size, pos + 64 * 1024))
                if not piece:
                    break
                at = -1
                while count < lines:
                    at = piece.find(b"\n", at + 1)
                    if at < 0:
                        break
                    count += 1
                pos = pos + at + 1 if at >= 0 and count == lines else pos + len(piece)
            end = min(pos, msg.size)
        self.ok()
        await self._send_range(msg, 0, end)
        self.send(".")

    async def _send_range(self, msg, start: int, end: int) -> None:
        at_line_start = True
        pos = start
        last = b"\n"
        while pos < end:
            piece = await self.maildrop.read(msg, pos, min(end, pos + CHUNK))
            if not piece:
                break
            self.writer.write(dot_stuff(piece, at_line_start))
            at_line_start = piece.endswith(b"\n")
            last = piece[-1:]
            pos += len(piece)
            await self.writer.drain()
        if last != b"\n":
            self.writer.write(b"\r\n")


class Pop3Server:
    """POP3 on pop3_port (STLS offered) and implicit TLS on pop3_tls_port."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.streams = StreamServers(lambda r, w, tls: Pop3Session(r, w, ctx, tls).run(), "POP3", MAX_LINE,
                                     getattr(ctx, "limits", None),
                                     lambda reason: f"-ERR [SYS/TEMP] {reason}; try again later\r\n".encode())

    async def start(self) -> None:
        config = self.ctx.config
        await self.streams.listen(config.pop3_host, config.pop3_port)
        if self.ctx.tls_context is not None:
            await self.streams.listen(config.pop3_host, config.pop3_tls_port, ssl=self.ctx.tls_context)

    @property
    def ports(self) -> list[int]:
        return self.streams.ports

    async def close(self) -> None:
        await self.streams.close()
