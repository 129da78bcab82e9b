"""Run imaptest scripts against an IMAP server on loopback.

    python -m tests.conformance.imaptest_runner --port 143 --user u --password p \\
        [--user2 u2 --password2 p2] [SCRIPT ...]

Prints each failing script with its first mismatch, then `N passed, N failed, N skipped`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from dataclasses import dataclass

from .imaptest_format import (MUST, MUST_NOT, Atom, Group, Literal, MboxSource, NeedMore,
                              ParseError, Script, ScriptError, String, args_to_str, list_scripts,
                              nul_in_string, parse_args, parse_script)
from .imaptest_match import FULL, MatchError, Variables, upper

REPLY_TIMEOUT = 15.0
MAILBOX = "imaptest"


@dataclass
class Account:
    user: str
    password: str


class TestFailed(Exception):
    __test__ = False    # a result, not a pytest test class


class Skipped(Exception):
    pass


def quote(text: str) -> str:
    if any(c in text for c in "\r\n") or not text.isascii():
        data = text.encode("latin-1")
        return "{%d+}\r\n" % len(data) + text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LITERAL_END = re.compile(r"(~?)\{(\d+)(\+?)\}\r?$")


def literal_plus(text: str) -> bytes:
    """A command line with its literals turned into non-synchronizing ones (LITERAL+)."""
    out = bytearray()
    data = text.encode("latin-1")
    while True:
        nl = data.find(b"\n")
        if nl < 0:
            out += data
            return bytes(out)
        line = data[:nl + 1].decode("latin-1")
        m = _LITERAL_END.search(line.rstrip("\n"))
        if not m:
            out += data[:nl + 1]
            data = data[nl + 1:]
            continue
        size = int(m.group(2))
        head = line[:m.start()] + m.group(1) + "{%d+}\r\n" % size
        out += head.encode("latin-1")
        data = data[nl + 1:]
        out += data[:size]
        data = data[size:]


class Connection:
    def __init__(self, index: int, account: Account, host: str):
        self.index = index
        self.account = account
        self.host = host
        self.counter = 0
        self.messages = 0
        self.capabilities: list[str] = []
        self.greeting: list = []
        self.seen_bye = False
        self.closed = False
        self.flags: set[str] | None = None   # the last FLAGS response, upper-cased

    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 24)
        raw = await self.read_raw()
        if raw is None:
            raise TestFailed("connection closed before the greeting")
        args = parse_args(raw)
        if not args or args[0] != "*" or len(args) < 2 or upper(str(args[1])) not in ("OK", "PREAUTH"):
            raise TestFailed(f"malformed greeting {raw!r}")
        self.greeting = args[1:]
        text = raw.decode("latin-1")
        m = re.search(r"\[CAPABILITY ([^\]]*)\]", text, re.I)
        if m:
            self.capabilities = m.group(1).split()

    def next_tag(self) -> str:
        self.counter += 1
        return f"{self.index + 1}.{self.counter}"

    async def read_raw(self) -> bytes | None:
        """One response, literals included; None at end of stream."""
        data = bytearray()
        while True:
            line = await asyncio.wait_for(self.reader.readline(), REPLY_TIMEOUT)
            if not line:
                if data:
                    raise TestFailed("connection closed inside a response")
                self.closed = True
                return None
            data += line
            m = re.search(rb"\{(\d+)\+?\}\r?\n$", line)
            if not m:
                return bytes(data)
            data += await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), REPLY_TIMEOUT)

    async def read(self) -> list | None:
        raw = await self.read_raw()
        if raw is None:
            return None
        try:
            args = parse_args(raw)
        except (ParseError, NeedMore) as e:
            raise TestFailed(f"cannot parse the server's reply ({e}): {raw[:300]!r}") from None
        if nul_in_string(args):
            raise TestFailed(f"NUL in a string or {{n}} literal (only ~{{n}} may hold one): {raw[:300]!r}")
        return args

    def send(self, tag: str, command: bytes) -> None:
        self.writer.write(tag.encode() + b" " + command + b"\r\n")

    async def simple(self, command: str, untagged=None) -> list:
        """Send a command during setup; returns its tagged reply (status first)."""
        tag = self.next_tag()
        self.send(tag, literal_plus(command))
        while True:
            args = await self.read()
            if args is None:
                raise TestFailed(f"disconnected during setup command {command!r}")
            if args[0] == "*":
                self.track(args[1:])
                if untagged is not None:
                    untagged(args[1:])
                continue
            if args[0] == "+":
                raise TestFailed(f"unexpected continuation during setup command {command!r}")
            if args[0] == tag:
                return args[1:]

    def track(self, args: list) -> None:
        """The little mailbox state a client must keep: message count, FLAGS, BYE, capabilities."""
        if len(args) >= 2 and isinstance(args[0], Atom) and args[0].isdigit():
            num, what = int(args[0]), upper(str(args[1]))
            if what == "FETCH" and len(args) > 2 and isinstance(args[2], list):
                self._check_keywords(args[2])
            if what == "EXISTS":
                if num < self.messages:
                    raise TestFailed(f"message count dropped {self.messages} -> {num}")
                self.messages = num
            elif what == "EXPUNGE":
                if num == 0 or num > self.messages:
                    raise TestFailed(f"EXPUNGE of sequence {num} with only {self.messages} messages")
                self.messages -= 1
        elif args and upper(str(args[0])) == "VANISHED":
            rest = args[1:]
            if rest and isinstance(rest[0], list):
                return   # VANISHED (EARLIER): about messages this session never had
            if rest:
                self.messages = max(0, self.messages - _set_size(str(rest[0])))
        elif args and upper(str(args[0])) == "BYE":
            self.seen_bye = True
        elif len(args) >= 2 and upper(str(args[0])) == "FLAGS" and isinstance(args[1], list):
            self.flags = {upper(str(f)) for f in args[1]}
        elif args and upper(str(args[0])) == "CAPABILITY":
            self.capabilities = [str(a) for a in args[1:]]
        elif args and upper(str(args[0])) == "OK" and len(args) > 1 and upper(str(args[1])) == "[CAPABILITY":
            words = []
            for a in args[2:]:
                words.append(str(a).rstrip("]"))
                if str(a).endswith("]"):
                    break
            self.capabilities = words

    def _check_keywords(self, items: list) -> None:
        """As imaptest's "Keyword used without being in FLAGS": a keyword may appear in
        FETCH FLAGS only once a FLAGS response has announced it (RFC 9051 7.3.5)."""
        for name, value in zip(items[0::2], items[1::2]):
            if upper(str(name)) != "FLAGS" or not isinstance(value, list) or self.flags is None:
                continue
            for flag in value:
                if not str(flag).startswith("\\") and upper(str(flag)) not in self.flags:
                    raise TestFailed(f"Error: Keyword used without being in FLAGS: {flag}")

    def close(self) -> None:
        if hasattr(self, "writer"):
            self.writer.close()


def _set_size(uid_set: str) -> int:
    total = 0
    for part in uid_set.split(","):
        lo, _, hi = part.partition(":")
        if lo.isdigit() and (not hi or hi.isdigit()):
            total += abs(int(hi or lo) - int(lo)) + 1
    return total


def has_append_body(args_text: str) -> bool:
    """Whether an APPEND's arguments (mailbox [flags] [date] ...) carry the message itself."""
    try:
        args = parse_args(args_text.encode("latin-1"))
    except (ParseError, NeedMore):
        return False
    i = 0
    if not args:
        return False
    if i + 1 < len(args) and isinstance(args[i + 1], list):
        i += 1
    if i + 1 < len(args) and isinstance(args[i + 1], String) and not isinstance(args[i + 1], Literal):
        i += 1
    nxt = args[i + 1] if i + 1 < len(args) else None
    return isinstance(nxt, Literal) or (isinstance(nxt, Atom) and upper(nxt) == "CATENATE")


class ScriptRun:
    """One script against the server: setup to its state, then its command groups in turn."""

    def __init__(self, script: Script, host: str, port: int, accounts: list[Account]):
        self.script = script
        self.host, self.port = host, port
        self.accounts = accounts
        self.vars = Variables()
        self.source = MboxSource(script.mbox)
        self.conns: list[Connection] = []
        self.group_index = 0

    def fail(self, message: str) -> None:
        group = self.script.groups[self.group_index] if self.group_index < len(self.script.groups) else None
        where = ""
        if group is not None and group.commands:
            cmd = group.commands[0]
            where = f"command {self.group_index + 1}/{len(self.script.groups)} (line {cmd.line}): {cmd.text[:200]}\n - "
        raise TestFailed(where + message)

    def account_for(self, index: int) -> Account:
        wanted = self.script.users.get(index + 1)
        if wanted in ("$user2", "${user2}"):
            if len(self.accounts) < 2:
                raise Skipped("the script needs a second user (user2)")
            return self.accounts[1]
        if wanted:
            raise Skipped(f"the script wants user {wanted!r}")
        return self.accounts[0]

    async def run(self) -> None:
        try:
            await self._setup()
            while self.group_index < len(self.script.groups):
                await self._run_group(self.script.groups[self.group_index])
                self.group_index += 1
        finally:
            for conn in self.conns:
                conn.close()

    # -- setup -------------------------------------------------------------------------------

    async def _setup(self) -> None:
        script = self.script
        for i in range(script.connections):
            conn = Connection(i, self.account_for(i), self.host)
            self.conns.append(conn)
            await conn.connect(self.host, self.port)
            self._set_user_vars(i, conn.account)
        self.vars.values["mailbox"] = MAILBOX
        self.vars.values["mailbox_url"] = MAILBOX
        if script.banner_check:
            self._banner_check()
        first = self.conns[0]
        if script.state == "nonauth":
            if not first.capabilities:
                await first.simple("CAPABILITY")
            self._check_capabilities(first)
            return
        for conn in self.conns:
            reply = await conn.simple(f"LOGIN {quote(conn.account.user)} {quote(conn.account.password)}")
            if upper(str(reply[0])) != "OK":
                raise TestFailed(f"LOGIN failed: {args_to_str(reply)}")
        await first.simple("CAPABILITY")
        self._check_capabilities(first)
        await self._delete_test_mailboxes(first)
        if script.state == "auth":
            return
        reply = await first.simple(f"CREATE {quote(MAILBOX)}")
        if upper(str(reply[0])) != "OK":
            raise TestFailed(f"CREATE failed: {args_to_str(reply)}")
        if script.state == "created":
            return
        left = script.messages
        while (left is None and not self.source.eof()) or (left is not None and left > 0):
            reply = await first.simple(self.append_command(f'"{MAILBOX}"', with_date=True))
            if upper(str(reply[0])) != "OK":
                raise TestFailed(f"APPEND failed: {args_to_str(reply)}")
            if left is not None:
                left -= 1
        if script.state == "appended":
            return
        for conn in self.conns:
            conn.messages = 0
            if conn.account.user != first.account.user:
                continue    # the test mailbox is the first user's; another user stays authenticated
            reply = await conn.simple(f"SELECT {quote(MAILBOX)}")
            if upper(str(reply[0])) != "OK":
                raise TestFailed(f"SELECT failed: {args_to_str(reply)}")

    def _set_user_vars(self, index: int, account: Account) -> None:
        suffix = "" if index == 0 else str(index + 1)
        user = account.user
        values = self.vars.values
        values["user" + suffix] = user
        values["username" + suffix] = user.split("@", 1)[0]
        values["domain" + suffix] = user.split("@", 1)[1] if "@" in user else self.host
        values["password" + suffix] = account.password

    def _banner_check(self) -> None:
        group = self.script.groups[0]
        found = [False] * len(group.untagged)
        self._match_untagged(group, self.conns[0].greeting, found, [0], [None])
        self._check_missing(group, found)
        self.group_index = 1

    def _check_capabilities(self, conn: Connection) -> None:
        have = {upper(c) for c in conn.capabilities}
        missing = [c for c in self.script.capabilities if upper(c) not in have]
        if missing:
            raise Skipped("server lacks " + " ".join(missing))

    async def _delete_test_mailboxes(self, conn: Connection) -> None:
        listed, subscribed = [], []

        def collect(args, into):
            if len(args) >= 4 and isinstance(args[1], list) and isinstance(args[3], str):
                into.append(str(args[3]))

        await conn.simple(f'LIST "" {quote(MAILBOX + "*")}',
                          lambda a: collect(a, listed) if upper(str(a[0])) == "LIST" else None)
        await conn.simple(f'LSUB "" {quote(MAILBOX + "*")}',
                          lambda a: collect(a, subscribed) if upper(str(a[0])) == "LSUB" else None)
        for name in sorted(set(listed), key=upper, reverse=True):
            reply = await conn.simple(f"DELETE {quote(name)}")
            if upper(str(reply[0])) == "BAD":
                raise TestFailed(f"DELETE {name}: {args_to_str(reply)}")
        for name in sorted(set(subscribed), key=upper, reverse=True):
            reply = await conn.simple(f"UNSUBSCRIBE {quote(name)}")
            if upper(str(reply[0])) == "BAD":
                raise TestFailed(f"UNSUBSCRIBE {name}: {args_to_str(reply)}")

    def append_command(self, args: str, with_date: bool) -> str:
        date, body = self.source.take()
        text = f"APPEND {args}"
        if with_date:
            text += f' "{date}"'
        return text + " {%d}\r\n" % len(body) + body.decode("latin-1")

    # -- command groups ------------------------------------------------------------------------

    async def _run_group(self, group: Group) -> None:
        conn = self.conns[group.connection]
        self.vars.seqmap = list(range(1, conn.messages + 1))
        pending: dict[str, object] = {}
        for cmd in group.commands:
            try:
                text = self.vars.expand_command(cmd.text)
            except MatchError as e:
                self.fail(str(e))
            lowered = text.lower()
            if lowered == "append":
                text = self.append_command(quote(MAILBOX), with_date=True)
            elif lowered.startswith("append ") and not has_append_body(text[7:]):
                text = self.append_command(text[7:], with_date=False)
            tag = conn.next_tag()
            if lowered in ("select", "examine") or lowered.startswith(("select ", "examine ", "unselect", "close")):
                conn.messages = 0
            conn.send(tag, literal_plus(text))
            pending[tag] = cmd
        await conn.writer.drain()
        found = [False] * len(group.untagged)
        mismatches, first_extra = [0], [None]
        best: list[tuple[int, str | None]] = [(0, None)] * len(group.untagged)
        while pending:
            try:
                args = await conn.read()
            except asyncio.TimeoutError:
                self.fail(f"no tagged reply within {REPLY_TIMEOUT:.0f} s")
            if args is None:
                if group.has_bye and conn.seen_bye:
                    for cmd in pending.values():
                        if cmd.reply != [Atom("")]:
                            self.fail(f"expected {args_to_str(cmd.reply)} but the server closed after BYE")
                    break
                self.fail("unexpected disconnection")
            if args[0] == "*":
                body = args[1:]
                self._match_untagged(group, body, found, mismatches, first_extra, best)
                if len(body) >= 2 and isinstance(body[0], Atom) and body[0].isdigit() \
                        and upper(str(body[1])) == "EXPUNGE":
                    self.vars.expunged(int(body[0]))
                try:
                    conn.track(body)
                except TestFailed as e:
                    self.fail(str(e))
                continue
            if args[0] == "+":
                self.fail("unexpected command continuation")
            tag = str(args[0])
            cmd = pending.pop(tag, None)
            if cmd is None:
                self.fail(f"unexpected tagged reply {args_to_str(args)}")
            reply = args[1:]
            if upper(str(reply[0])) == "BAD" and upper(str(cmd.reply[0])) != "BAD":
                self.fail(f"BAD reply: {args_to_str(reply)}")
            self.vars.values["tag"] = tag
            matched = self.vars.match_args(cmd.reply, reply, prefix=True)
            self.vars.values.pop("tag", None)
            if matched != FULL:
                self.fail(f"expected tagged reply '{args_to_str(cmd.reply)}', got '{args_to_str(reply)}'")
        self._check_missing(group, found, mismatches[0], best)
        if first_extra[0] is not None:
            self.fail(f"{mismatches[0]} unexpected untagged replies received, first: {first_extra[0]}")
        for line in group.output:
            print(self.vars.expand_command(line))
        if group.sleep_ms:
            await asyncio.sleep(group.sleep_ms / 1000)

    def _match_untagged(self, group: Group, args: list, found: list[bool], mismatches: list[int],
                        first_extra: list, best=None) -> None:
        logout = any(c.text.lower() == "logout" for c in group.commands)
        if not group.untagged and (self.script.ignore_extra_untagged or logout):
            return
        prefix = bool(args) and isinstance(args[0], Atom) and upper(args[0]) in ("OK", "NO", "BAD", "BYE")
        tag = None
        if group.commands:
            conn = self.conns[group.connection]
            tag = f"{conn.index + 1}.{conn.counter - len(group.commands) + 1}"
        self.vars.added.clear()
        found_some = False
        for i, expected in enumerate(group.untagged):
            if found[i]:
                continue
            if tag is not None:
                self.vars.values["tag"] = tag
            count = self.vars.match_args(expected.args, args, prefix=prefix)
            self.vars.values.pop("tag", None)
            if count == FULL:
                if expected.existence == MUST_NOT:
                    self.fail(f"unexpected untagged match:\nMatch: {args_to_str(expected.args)}\n"
                              f"Reply: {args_to_str(args)}")
                found[i] = True
                found_some = True
                self.vars.added.clear()
                if group.ordered:
                    break
                continue
            if best is not None and best[i][0] < count:
                best[i] = (count, args_to_str(args))
            self.vars.revert_added()
            if group.ordered and expected.existence == MUST:
                break
        if not found_some:
            mismatches[0] += 1
            if not self.script.ignore_extra_untagged and first_extra[0] is None:
                first_extra[0] = args_to_str(args)

    def _check_missing(self, group: Group, found: list[bool], mismatches: int = 0, best=None) -> None:
        missing = [i for i, u in enumerate(group.untagged) if u.existence == MUST and not found[i]]
        if not missing:
            return
        first = group.untagged[missing[0]]
        unexpanded = args_to_str(first.args)
        expanded = self.vars.expand_command(unexpanded, skip_unset=True)
        best_match = best[missing[0]][1] if best else None
        self.fail(f"missing {len(missing)} untagged replies ({mismatches} mismatches)\n"
                  f" - first unexpanded: {unexpanded}\n - first expanded: {expanded}\n"
                  f" - best match: {best_match or ''}")


async def run_script(script: Script, host: str, port: int, accounts: list[Account]) -> tuple[str, str]:
    """("passed"|"failed"|"skipped", detail)."""
    try:
        await asyncio.wait_for(ScriptRun(script, host, port, accounts).run(), 120)
    except Skipped as e:
        return "skipped", str(e)
    except TestFailed as e:
        return "failed", str(e)
    except (asyncio.TimeoutError, ConnectionError, OSError) as e:
        return "failed", f"{type(e).__name__}: {e}"
    return "passed", ""


def load(directory: str, name: str) -> Script:
    return parse_script(os.path.join(directory, name), os.path.join(directory, "default.mbox"))


def summary(results: dict[str, tuple[str, str]]) -> str:
    counts = {k: sum(1 for v in results.values() if v[0] == k) for k in ("passed", "failed", "skipped")}
    return f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=143)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--user2")
    parser.add_argument("--password2")
    parser.add_argument("--dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                      "shared", "conformance", "imaptest", "scripts"))
    parser.add_argument("scripts", nargs="*")
    opts = parser.parse_args(argv)
    accounts = [Account(opts.user, opts.password)]
    if opts.user2:
        accounts.append(Account(opts.user2, opts.password2 or opts.password))
    names = opts.scripts or list_scripts(opts.dir)
    results: dict[str, tuple[str, str]] = {}
    for name in names:
        try:
            script = load(opts.dir, name)
        except ScriptError as e:
            results[name] = ("failed", f"script error: {e}")
        else:
            results[name] = asyncio.run(run_script(script, opts.host, opts.port, accounts))
        status, detail = results[name]
        if status == "failed":
            print(f"*** {name} failed: {detail}\n")
        elif status == "skipped":
            print(f"--- {name} skipped: {detail}")
    print(summary(results))
    return 0 if all(v[0] != "failed" for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
