"""The ManageSieve server: one session per connection (RFC 5804).

Scripts are checked (the same parser delivery uses) before they are stored:
PUTSCRIPT and CHECKSCRIPT answer NO with the error for a broken one. The
active script can't be deleted (RFC 5804 2.10). Logins follow the same
plaintext rules as IMAP: SASL PLAIN over TLS, or on loopback by default.
"""
from __future__ import annotations

import asyncio
import logging

from ..auth.sasl import SaslError, decode_response, parse_plain
from ..logfmt import LoginLog
from ..net import Clock, StreamServers, TimedOut, peer_of, tls_failed
from ..sieve.script import SUPPORTED, SieveError, compile_script
from ..store.api import StoreError
from .codec import MAX_LINE, Atom, LineTooLong, ProtocolError, quoted, read_command

log = logging.getLogger("posthouse.managesieve")

MAX_SCRIPT = 256 * 1024
MAX_SCRIPTS = 100           # per user


def _valid_name(name) -> bool:
    """Script names: 1-512 characters, no controls (RFC 5804 1.6)."""
    return isinstance(name, str) and 0 < len(name) <= 512 and all(
        c >= " " and c not in "\x7f\u2028\u2029" for c in name)


class Reply(Exception):
    """End a command with NO or BYE (OK is the normal return)."""

    def __init__(self, status: str, text: str, code: str | None = None):
        super().__init__(text)
        self.status, self.text, self.code = status, text, code


def no(text: str, code: str | None = None) -> Reply:
    return Reply("NO", text, code)


class SieveSession:
    def __init__(self, reader, writer, ctx, tls: bool = False):
        self.reader, self.writer, self.ctx = reader, writer, ctx
        self.config = ctx.config
        self.tls = tls
        self.peer, self.loopback = peer_of(writer)
        self.login_log = LoginLog("managesieve", self.peer)
        self.user = None
        self.failures = 0
        self.done = False
        self.clock = Clock(self.config, self.config.idle_timeout)

    def send(self, data: bytes) -> None:
        self.writer.write(data + b"\r\n")

    def reply(self, status: str, text: str = "", code: str | None = None) -> None:
        parts = [status.encode()]
        if code:
            parts.append(b"(" + code.encode() + b")")
        if text:
            parts.append(quoted(text))
        self.send(b" ".join(parts))

    def plaintext_allowed(self) -> bool:
        mode = self.config.plaintext_auth
        return self.tls or mode == "always" or (mode == "loopback" and self.loopback)

    def capabilities(self) -> None:
        self.send(b'"IMPLEMENTATION" "Posthouse"')
        self.send(b'"SIEVE" ' + quoted(" ".join(SUPPORTED)))
        if self.user is None:
            self.send(b'"SASL" ' + quoted("PLAIN" if self.plaintext_allowed() else ""))
            if self.ctx.tls_context is not None and not self.tls:
                self.send(b'"STARTTLS"')
        else:
            self.send(b'"OWNER" ' + quoted(self.user.name))
        self.send(b'"VERSION" "1.0"')

    async def run(self) -> None:
        try:
            self.capabilities()
            self.reply("OK", "Posthouse ManageSieve ready")
            while not self.done:
                await self.writer.drain()
                try:
                    first = await self.clock.first_byte(self.reader)
                    if not first:
                        break
                    # The rest of the command, its literal too, within line_timeout.
                    tokens = await self.clock.rest(read_command(self.reader, self._max_literal(), first))
                except LineTooLong:
                    self.reply("BYE", "Line or literal too long")
                    break
                except ProtocolError as e:      # the line was read whole: go on with the next
                    self.reply("NO", str(e))
                    continue
                except TimedOut as e:
                    self.reply("BYE", str(e), "TRYLATER")
                    break
                if tokens is None:
                    break
                await self.dispatch(tokens)
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.login_log.logout()
            self.writer.close()

    def _max_literal(self) -> int:
        # Before login a client needs a SASL response at most (a few KB).
        return MAX_SCRIPT + 1024 if self.user is not None else MAX_LINE

    async def dispatch(self, tokens: list) -> None:
        if not tokens or not isinstance(tokens[0], Atom):
            self.reply("NO", "Expected a command")
            return
        name, args = tokens[0], tokens[1:]
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            self.reply("NO", f"Unknown command {name}")
            return
        if name not in self.ANY and self.user is None:
            self.reply("NO", "Log in first")
            return
        if any(isinstance(a, Atom) for a in args) and name != "HAVESPACE":    # its size is a number
            self.reply("NO", "Arguments must be strings")
            return
        try:
            result = await handler(args)
        except Reply as r:
            self.reply(r.status, r.text, r.code)
            if r.status == "BYE":
                self.done = True
            return
        except StoreError as e:
            self.reply("NO", str(e))
            return
        except (ConnectionError, OSError):
            raise
        except Exception:
            log.exception("ManageSieve %s failed peer=%s", name, self.peer)
            self.reply("NO", "Internal error; it has been logged", "TRYLATER")
            return
        if result is not False:
            self.reply("OK", result or f"{name} completed")

    ANY = {"CAPABILITY", "LOGOUT", "STARTTLS", "AUTHENTICATE", "NOOP"}

    def _args(self, args, count: int) -> list[str]:
        if len(args) != count:
            raise no(f"Expected {count} argument{'s' if count != 1 else ''}")
        return args

    # -- any state --------------------------------------------------------------
    async def cmd_CAPABILITY(self, args):
        self._args(args, 0)
        self.capabilities()

    async def cmd_NOOP(self, args):
        if len(args) > 1:
            raise no("NOOP takes at most one argument")
        if args:        # echoed back as a TAG response code (RFC 5804 2.14)
            self.reply("OK", "Done", "TAG " + quoted(args[0]).decode("utf-8"))
            return False
        return "Done"

    async def cmd_LOGOUT(self, args):
        self.done = True
        return "Bye"

    async def cmd_STARTTLS(self, args):
        self._args(args, 0)
        if self.ctx.tls_context is None or self.tls or self.user is not None:
            raise no("STARTTLS is not available now")
        self.reply("OK", "Begin TLS negotiation")
        await self.writer.drain()
        # Anything the client pipelined after STARTTLS in cleartext is thrown
        # away, not run inside TLS (the CVE-2011-0411 class of injection).
        self.reader._buffer.clear()
        try:
            await self.writer.start_tls(self.ctx.tls_context)
        except (OSError, asyncio.TimeoutError) as e:   # the client gave up or spoke no TLS
            tls_failed("ManageSieve STARTTLS", self.peer, e)
            self.done = True
            return False        # no reply: the connection is gone
        self.tls = True
        self.capabilities()     # RFC 5804 2.2: capabilities again, then OK
        return "TLS is active"

    async def cmd_AUTHENTICATE(self, args):
        if self.user is not None:
            raise no("Already logged in")
        if not args or len(args) > 2:
            raise no("AUTHENTICATE needs a mechanism")
        if args[0].upper() != "PLAIN":
            raise no("Unsupported mechanism")
        if not self.plaintext_allowed():
            raise no("Plaintext authentication is disabled here; use STARTTLS first", "ENCRYPT-NEEDED")
        if len(args) == 2:
            response = args[1]
        else:
            self.send(b'""')
            await self.writer.drain()
            try:
                tokens = await self.clock.rest(read_command(self.reader, MAX_LINE))
            except TimedOut as e:
                raise Reply("BYE", str(e), "TRYLATER") from None
            if not tokens or isinstance(tokens[0], Atom):
                raise no("Authentication cancelled")
            response = tokens[0]
        try:
            name, password = parse_plain(decode_response(response.encode()))
        except SaslError as e:
            raise no(str(e)) from None
        user = await self.ctx.authenticator.check(name, password, self.peer)
        if user is None:
            self.login_log.failed(name, self.tls)
            self.failures += 1
            if self.failures >= self.config.max_auth_failures:
                raise Reply("BYE", "Too many failed logins")
            raise no("Authentication failed")
        self.user = user
        self.clock.logged_in()
        self.login_log.login(user.name, self.tls)
        return "Logged in"

    # -- scripts ------------------------------------------------------------------
    async def _call(self, method, *args):
        return await self.ctx.service.call(method, self.user.id, *args)

    def _check(self, script: str) -> None:
        if len(script.encode("utf-8")) > MAX_SCRIPT:
            raise no("Script is too big", "QUOTA/MAXSIZE")
        try:
            compile_script(script)
        except SieveError as e:
            raise no(str(e)) from None

    async def cmd_HAVESPACE(self, args):
        name, size = self._args(args, 2)
        if not _valid_name(name):
            raise no("Bad script name")
        if not size.isdigit() or int(size) > MAX_SCRIPT:
            raise no("Script would be too big", "QUOTA/MAXSIZE")
        return "Putscript would succeed"

    async def cmd_PUTSCRIPT(self, args):
        name, script = self._args(args, 2)
        if not _valid_name(name):
            raise no("Bad script name")
        self._check(script)
        existing = await self._call("list_scripts")
        if name not in {n for n, _a in existing} and len(existing) >= MAX_SCRIPTS:
            raise no("Too many scripts", "QUOTA/MAXSCRIPTS")
        await self._call("put_script", name, script)
        return "Stored"

    async def cmd_CHECKSCRIPT(self, args):
        (script,) = self._args(args, 1)
        self._check(script)
        return "Script is valid"

    async def cmd_LISTSCRIPTS(self, args):
        self._args(args, 0)
        for name, active in await self._call("list_scripts"):
            self.send(quoted(name) + (b" ACTIVE" if active else b""))
        return "Listed"

    async def cmd_SETACTIVE(self, args):
        (name,) = self._args(args, 1)
        if name == "":
            await self._call("activate_script", None)
            return "No script is active"
        if await self._call("get_script", name) is None:
            raise no("No such script", "NONEXISTENT")
        await self._call("activate_script", name)
        return "Active"

    async def cmd_GETSCRIPT(self, args):
        (name,) = self._args(args, 1)
        script = await self._call("get_script", name)
        if script is None:
            raise no("No such script", "NONEXISTENT")
        data = script.encode("utf-8")
        self.send(b"{%d}\r\n" % len(data) + data)
        return "Got it"

    async def cmd_DELETESCRIPT(self, args):
        (name,) = self._args(args, 1)
        scripts = dict(await self._call("list_scripts"))
        if name not in scripts:
            raise no("No such script", "NONEXISTENT")
        if scripts[name]:
            raise no("The active script can't be deleted", "ACTIVE")
        await self._call("delete_script", name)
        return "Deleted"

    async def cmd_RENAMESCRIPT(self, args):
        old, new = self._args(args, 2)
        if not _valid_name(new):
            raise no("Bad script name")
        scripts = dict(await self._call("list_scripts"))
        if old not in scripts:
            raise no("No such script", "NONEXISTENT")
        if new in scripts:
            raise no("A script with that name exists", "ALREADYEXISTS")
        await self._call("rename_script", old, new)
        return "Renamed"

    async def cmd_UNAUTHENTICATE(self, args):
        self._args(args, 0)
        self.user = None
        self.login_log.logout()
        self.clock = Clock(self.config, self.config.idle_timeout)     # logged out: a new login deadline
        return "Logged out"


class ManageSieveServer:
    def __init__(self, ctx):
        self.ctx = ctx
        self.streams = StreamServers(lambda r, w, tls: SieveSession(r, w, ctx, tls).run(), "ManageSieve",
                                     MAX_LINE, getattr(ctx, "limits", None),
                                     lambda reason: b'BYE (TRYLATER) ' + quoted(reason + "; try again later") + b"\r\n")

    async def start(self) -> None:
        await self.streams.listen(self.ctx.config.managesieve_host, self.ctx.config.managesieve_port)

    @property
    def ports(self) -> list[int]:
        return self.streams.ports

    async def close(self) -> None:
        await self.streams.close()
