"""Dovecot imaptest's scripted-test format: the script parser and the reply matcher.

Written from FORMAT.md and the behaviour of upstream's parser/executor (read to learn,
nothing copied). Strings are latin-1 decoded bytes throughout, so every octet survives
and literal sizes stay byte counts.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

# --- IMAP arguments ------------------------------------------------------------------------


class Atom(str):
    """An unquoted token (imaptest parses atoms with "all characters" allowed)."""


class String(str):
    """A quoted string or a literal."""


class Literal(String):
    """A literal: told apart from a quoted string only where APPEND needs it."""


class Literal8(Literal):
    """A ~{n} literal (RFC 3516): the only string that may hold a NUL."""


class _Nil:
    def __repr__(self):
        return "NIL"


NIL = _Nil()


class ParseError(ValueError):
    pass


class NeedMore(Exception):
    """The input ends inside a literal or a quoted string."""


_LITERAL = re.compile(rb"~?\{(\d+)(\+?)\}\r?\n")


def parse_args(data: bytes) -> list:
    """Parse one IMAP line (with any literals inline) into Atom/String/NIL/list values."""
    pos = 0
    stack: list[list] = [[]]
    n = len(data)
    while True:
        while pos < n and data[pos] == 0x20:
            pos += 1
        if pos >= n or data[pos] in b"\r\n":
            break
        c = data[pos]
        if c == 0x28:  # (
            new: list = []
            stack[-1].append(new)
            stack.append(new)
            pos += 1
        elif c == 0x29:  # )
            if len(stack) == 1:
                raise ParseError("unexpected ')'")
            stack.pop()
            pos += 1
        elif c == 0x22:  # "
            out = bytearray()
            pos += 1
            while True:
                if pos >= n:
                    raise NeedMore()
                ch = data[pos]
                if ch == 0x5C and pos + 1 < n:
                    out.append(data[pos + 1])
                    pos += 2
                    continue
                if ch == 0x22:
                    pos += 1
                    break
                if ch in b"\r\n":
                    raise ParseError("line break in quoted string")
                out.append(ch)
                pos += 1
            stack[-1].append(String(out.decode("latin-1")))
        elif (c == 0x7B or (c == 0x7E and data[pos + 1:pos + 2] == b"{")) and (m := _LITERAL.match(data, pos)):
            size = int(m.group(1))
            start = m.end()
            if start + size > n:
                raise NeedMore()
            kind = Literal8 if c == 0x7E else Literal
            stack[-1].append(kind(data[start:start + size].decode("latin-1")))
            pos = start + size
        else:
            end = pos
            in_list = len(stack) > 1
            while end < n and data[end] not in b" \r\n" and not (in_list and data[end] == 0x29):
                end += 1
            word = data[pos:end].decode("latin-1")
            stack[-1].append(NIL if word.upper() == "NIL" else Atom(word))
            pos = end
    if len(stack) != 1:
        raise ParseError("unclosed '('")
    return stack[0]


def args_to_str(args) -> str:
    parts = []
    for arg in args:
        if isinstance(arg, list):
            parts.append("(" + args_to_str(arg) + ")")
        elif arg is NIL:
            parts.append("NIL")
        elif isinstance(arg, String):
            text = arg if len(arg) < 200 else arg[:200] + "..."
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            parts.append(str(arg))
    return " ".join(parts)


def is_astring(arg) -> bool:
    return isinstance(arg, str)


def nul_in_string(args) -> bool:
    """Whether a quoted string or {n} literal holds a NUL, which RFC 9051 forbids
    (CHAR8 is %x01-ff); only a ~{n} literal8 may."""
    for arg in args:
        if isinstance(arg, list):
            if nul_in_string(arg):
                return True
        elif isinstance(arg, String) and not isinstance(arg, Literal8) and "\0" in arg:
            return True
    return False


# --- scripts --------------------------------------------------------------------------------

MUST, MUST_NOT, MAY = "*", "!", "?"
STATES = ["nonauth", "auth", "created", "appended", "selected"]


@dataclass
class Untagged:
    existence: str
    args: list
    line: int


@dataclass
class Command:
    line: int
    tag: int          # the script's tagN, 0 when none
    text: str
    reply: list | None = None


@dataclass
class Group:
    connection: int = 0
    commands: list[Command] = field(default_factory=list)
    untagged: list[Untagged] = field(default_factory=list)
    ordered: bool = False
    sleep_ms: int = 0
    output: list[str] = field(default_factory=list)
    has_bye: bool = False
    replies_pending: int = 0


@dataclass
class Script:
    name: str
    path: str
    mbox: str
    capabilities: list[str] = field(default_factory=list)
    connections: int = 1
    # None: every message in the mbox ("messages: all"). Without the header imaptest
    # appends none (its parser starts message_count at 0; FORMAT.md says "all").
    messages: int | None = 0
    state: str = "selected"
    ignore_extra_untagged: bool = True
    users: dict[int, str] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    banner_check: bool = False


class ScriptError(ValueError):
    pass


def _reply_keyword(text: str) -> tuple[int, str | None, str]:
    """Split an optional `tagN` and an ok/no/bad/"" reply word off the front of text."""
    tag = 0
    first = text.split(" ", 1)[0]
    if first[:3].lower() == "tag" and first[3:].isdigit() and int(first[3:]) > 0 and " " in text:
        tag = int(first[3:])
        text = text.split(" ", 1)[1]
        first = text.split(" ", 1)[0]
    word = first.lower()
    if word in ("ok", "no", "bad") or first == '""':
        rest = text[len(first):]
        if rest.startswith(" "):
            rest = rest[1:]
        return tag, ("" if first == '""' else word), rest
    return tag, None, text


def _parse_pattern(text: str) -> list:
    try:
        return parse_args(text.encode("latin-1"))
    except (ParseError, NeedMore) as e:
        raise ScriptError(f"cannot parse {text!r}: {e}") from None


def _directive_names(args: list) -> tuple[int, int]:
    """(number of leading $! directives, chain length) of a pattern list."""
    count, chain = 0, 1
    for arg in args:
        if not (isinstance(arg, Atom) and arg.startswith("$!")):
            break
        name = arg[2:]
        if name.startswith("unordered"):
            if name == "unordered":
                pass
            elif name.startswith("unordered=") and name[10:].isdigit():
                chain = int(name[10:])
            else:
                raise ScriptError("broken $!unordered directive")
        elif not (name in ("ordered", "noextra", "extra") or name.startswith(("ignore=", "ban="))):
            raise ScriptError(f"unknown directive: {arg}")
        count += 1
    return count, chain


FLAG_DEFAULTS = ["$!unordered", "$!noextra", "$!ignore=\\recent", "$!ignore=$HasAttachment",
                 "$!ignore=$HasNoAttachment"]


def _add_directives(args: list, reply: str, depth: int, index_in_parent: int,
                    parent_index: int, prev_atom: str | None) -> None:
    """Insert the default directives FORMAT.md lists, then recurse into sublists."""
    count, chain = _directive_names(args)
    if count == 0 and depth > 0:
        defaults: list[str] = []
        if reply in ("list", "lsub") and depth == 1 and index_in_parent == 1:
            defaults = ["$!unordered"]
        elif reply == "status" and depth == 1 and index_in_parent == 2:
            defaults = ["$!unordered=2"]
        elif reply == "fetch" and depth == 1 and index_in_parent == 2:
            defaults = ["$!unordered=2"]
        elif reply == "fetch" and depth == 2 and parent_index == 2 and prev_atom == "flags":
            defaults = list(FLAG_DEFAULTS)
        args[0:0] = [Atom(d) for d in defaults]
        count, chain = _directive_names(args)
    if (len(args) - count) % chain:
        raise ScriptError(f"invalid list argument count, chain size={chain}")
    prev = None
    for i, arg in enumerate(args):
        if isinstance(arg, Atom):
            prev = arg.lower()
        if isinstance(arg, list):
            position = i if chain == 1 else i % chain
            _add_directives(arg, reply, depth + 1, position, index_in_parent, prev)


def parse_untagged(text: str) -> list:
    args = _parse_pattern(text)
    reply = ""
    if args and isinstance(args[0], Atom):
        reply = args[0]
        if reply[:1] == "$" or reply[:1].isdigit():
            reply = args[1] if len(args) > 1 and isinstance(args[1], Atom) else ""
    _add_directives(args, reply.lower(), 0, 0, 0, None)
    return args


def _read_lines(data: bytes) -> list[tuple[int, str]]:
    """Physical lines joined into logical ones: `{{{` ... `}}}` blocks become literals."""
    if data and not data.endswith(b"\n"):
        raise ScriptError("last line doesn't end with LF")
    raw = data.split(b"\n")[:-1]
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(raw):
        line = raw[i]
        start = i + 1
        i += 1
        if not line.endswith(b"{{{") or line.startswith(b"#"):
            out.append((start, line.decode("latin-1")))
            continue
        text = bytearray()
        while line.endswith(b"{{{"):
            binary = line.endswith(b"~{{{")
            text += line[:-4] if binary else line[:-3]
            body = bytearray()
            while True:
                if i >= len(raw):
                    raise ScriptError(f"multiline literal at line {start} not ended")
                part = raw[i]
                i += 1
                if part.startswith(b"}}}"):
                    line = part[3:]
                    break
                # a line is taken as it is (a CR stays data); lines are joined with CRLF,
                # or with a bare LF in a ~{{{ binary literal
                body += part
                last_line_end = len(body)
                body += b"\n" if binary else b"\r\n"
            # the line break before }}} is not part of the literal
            if body:
                del body[last_line_end:]
            text += (b"~" if binary else b"") + b"{%d}\r\n" % len(body) + body
        text += line
        out.append((start, text.decode("latin-1")))
    return out


def parse_script(path: str, default_mbox: str) -> Script:
    name = os.path.basename(path)
    mbox = path + ".mbox"
    script = Script(name=name, path=path, mbox=mbox if os.path.exists(mbox) else default_mbox)
    with open(path, "rb") as f:
        lines = _read_lines(f.read())
    header = True
    group: Group | None = None
    ifenv: list[tuple[bool, bool]] = []   # (skip before, else seen)
    skip = False
    for lineno, line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        if header:
            if line == "":
                header = False
                continue
            if line.startswith("#"):
                continue
            _header_line(script, line)
            continue
        if line == "" or line.startswith("#"):
            continue
        if line.startswith(("!ifenv ", "!ifnenv ")):
            want = line.startswith("!ifenv ")
            present = line.split(" ", 1)[1] in os.environ
            ifenv.append((skip, False))
            if present != want:
                skip = True
            continue
        if line == "!else":
            if not ifenv or ifenv[-1][1]:
                raise ScriptError(f"line {lineno}: misplaced !else")
            before, _ = ifenv[-1]
            ifenv[-1] = (before, True)
            if not before:
                skip = not skip
            continue
        if line == "!endif":
            if not ifenv:
                raise ScriptError(f"line {lineno}: !endif without !ifenv")
            skip = ifenv.pop()[0]
            continue
        if skip:
            continue
        try:
            group = _command_line(script, group, lineno, line)
        except ScriptError as e:
            raise ScriptError(f"{name} line {lineno}: {e}") from None
    if ifenv:
        raise ScriptError(f"{name}: !ifenv not closed")
    if not script.groups:
        raise ScriptError(f"{name}: no commands")
    if script.groups[-1].replies_pending:
        raise ScriptError(f"{name}: missing reply for the last command")
    _add_logout(script)
    return script


def _header_line(script: Script, line: str) -> None:
    if ":" not in line:
        raise ScriptError(f"{script.name}: header line without ':': {line!r}")
    key, value = line.split(":", 1)
    key, value = key.rstrip().lower(), value.strip()
    if key == "capabilities":
        script.capabilities = value.split()
    elif key == "connections":
        script.connections = int(value)
        if not 1 <= script.connections <= 100:
            raise ScriptError("too many connections")
    elif key == "ignore_extra_untagged":
        script.ignore_extra_untagged = value.startswith("y")
    elif key.startswith("user ") and key[5:].isdigit():
        script.users[int(key[5:])] = value
    elif key == "messages":
        script.messages = None if value == "all" else int(value)
    elif key == "state":
        if value.lower() not in STATES:
            raise ScriptError(f"unknown state {value!r}")
        script.state = value.lower()
    else:
        raise ScriptError(f"{script.name}: unknown header {key!r}")


def _command_line(script: Script, group: Group | None, lineno: int, line: str) -> Group:
    if group is not None:
        if line.startswith("!sleep "):
            group.sleep_ms = _interval_ms(line[7:])
            return group
        if line.startswith("!output "):
            group.output.append(line[8:])
            return group
        if line == "!ordered":
            group.ordered = True
            return group
        if line[:2] in ("* ", "! ", "? "):
            _add_untagged(group, line[0], line[2:], lineno)
            return group
        if group.replies_pending:
            rest, conn = line, 0
            first = rest.split(" ", 1)[0]
            if script.connections > 1 and first.isdigit() and int(first) > 0:
                conn = int(first)
                rest = rest.split(" ", 1)[1] if " " in rest else ""
            tag, word, _ = _reply_keyword(rest)
            if word is not None:
                if script.connections > 1:
                    if conn == 0:
                        raise ScriptError("missing client index")
                    if conn - 1 != group.connection:
                        raise ScriptError("reply for wrong connection")
                cmd = next((c for c in group.commands if c.tag == tag), None)
                if cmd is None:
                    raise ScriptError("reply for unknown tag")
                if cmd.reply is not None:
                    raise ScriptError("command already has a reply")
                reply = _parse_pattern(rest)
                cmd.reply = reply[1:] if tag else reply
                group.replies_pending -= 1
                return group
    if group is None or group.replies_pending == 0:
        group = Group()
        script.groups.append(group)
    if script.connections > 1:
        first, _, rest = line.partition(" ")
        if not first.isdigit() or int(first) == 0:
            raise ScriptError("missing client index")
        conn = int(first)
        if conn > 100:
            raise ScriptError("too many connections")
        if group.commands and group.connection != conn - 1:
            raise ScriptError("all pipelined commands must use the same connection")
        group.connection = conn - 1
        script.connections = max(script.connections, conn)
        line = rest
    tag, word, rest = _reply_keyword(line)
    if tag == 0 and group.replies_pending:
        raise ScriptError("missing reply from previous command group")
    if tag and any(c.tag == tag for c in group.commands):
        raise ScriptError("tag reused within command group")
    if not group.commands and rest[:2] in ("* ", "! ", "? "):
        script.banner_check = True
        _add_untagged(group, rest[0], rest[2:], lineno)
        return group
    reply = None if word is None else [Atom(word)]
    if reply is None:
        group.replies_pending += 1
    group.commands.append(Command(line=lineno, tag=tag, text=rest, reply=reply))
    return group


def _add_untagged(group: Group, mark: str, text: str, lineno: int) -> None:
    args = parse_untagged(text)
    name = ""
    if args and isinstance(args[0], Atom):
        name = args[0]
    if name[:3].upper() == "BYE":
        if mark == MAY:
            raise ScriptError("? BYE not supported")
        if mark == MUST:
            group.has_bye = True
    group.untagged.append(Untagged(mark, args, lineno))


def _interval_ms(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(ms|msecs?|s|secs?|)\s*", text)
    if not m:
        raise ScriptError(f"invalid !sleep value {text!r}")
    value = int(m.group(1))
    return value if m.group(2).startswith("m") else value * 1000


def _add_logout(script: Script) -> None:
    for group in script.groups:
        if group.has_bye or any(c.text.lower() == "logout" for c in group.commands):
            return
    script.groups.append(Group(connection=0, commands=[Command(line=0, tag=0, text="logout",
                                                               reply=[Atom("ok")])]))


def list_scripts(directory: str) -> list[str]:
    names = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.startswith(".") or entry.endswith(".mbox") or os.path.isdir(path):
            continue
        names.append(entry)
    return names


# --- mbox source ----------------------------------------------------------------------------

_FROM_DATE = re.compile(
    r"From \S+\s+\w{3} (\w{3}) +(\d{1,2}) (\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"(?: ([A-Z]{3,4}|[+-]\d{4}))? (\d{4})(?: ([+-]\d{4}))?\s*$")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _from_line_date(line: str) -> str | None:
    """The INTERNALDATE an mbox From_ line gives, as IMAP date-time; None if not a From_ line."""
    m = _FROM_DATE.match(line)
    if not m or m.group(1) not in MONTHS:
        return None
    month, day, hour, minute, second, zone1, year, zone2 = m.groups()
    zone = zone2 or (zone1 if zone1 and zone1[0] in "+-" else "+0000")
    return f"{int(day):02d}-{month}-{year} {int(hour):02d}:{minute}:{second or '00'} {zone}"


class MboxSource:
    """Messages of an mbox, in order and wrapping around, each with its From_ line date.

    Every line is sent with CRLF, the blank line before the next From_ included."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        self.messages: list[tuple[str, bytes]] = []
        date, body = None, []
        for raw in lines:
            text = raw.rstrip(b"\r").decode("latin-1")
            found = _from_line_date(text) if text.startswith("From ") else None
            if found is not None and (body or date is None):
                if date is not None:
                    self.messages.append((date, b"".join(body)))
                date, body = found, []
                continue
            if found is not None:
                date = found   # empty body: the later From_ line wins
                continue
            if date is None:
                raise ValueError(f"{path}: not an mbox file")
            body.append(raw.rstrip(b"\r") + b"\r\n")
        if date is None:
            raise ValueError(f"{path}: empty mbox file")
        if not body:
            raise ValueError(f"{path}: mbox ends with a From_ line")
        self.messages.append((date, b"".join(body)))
        self.next = 0

    def eof(self) -> bool:
        return self.next >= len(self.messages)

    def take(self) -> tuple[str, bytes]:
        if self.next >= len(self.messages):
            self.next = 0
        message = self.messages[self.next]
        self.next += 1
        return message
