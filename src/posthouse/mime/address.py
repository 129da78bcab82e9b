"""RFC 5322 address lists, parsed the way IMAP's ENVELOPE wants them.

Each address is (name, adl, mailbox, host); a group is opened by
(None, None, groupname, None) and closed by (None, None, None, None).
Names stay raw (encoded words are not decoded), as RFC 3501 requires.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .headers import read_quoted

Address = tuple  # (name, adl, mailbox, host)

MISSING_DOMAIN = "MISSING_DOMAIN"
_SPECIALS = set('<>@,;:.[]')
# An atom runs to the next special, space, quote or comment (a regex: C speed).
_ATOM = re.compile(r'[^<>@,;:.\[\]" \t\r\n(]+')


def _tokens(text: str) -> list[tuple[str, str]]:
    """('q', quoted) ('c', comment) ('a', atom) ('s', special) ('d', domain-literal)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == '"':
            value, i = read_quoted(text, i)
            out.append(("q", value))
        elif c == "(":
            depth, i, buf = 1, i + 1, []
            while i < n and depth:
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if not depth:
                        break
                buf.append(ch)
                i += 1
            out.append(("c", "".join(buf)))
            i += 1
        elif c == "[":
            j = text.find("]", i)
            j = n - 1 if j < 0 else j
            out.append(("d", text[i:j + 1]))
            i = j + 1
        elif c in _SPECIALS:
            out.append(("s", c))
            i += 1
        else:
            j = _ATOM.match(text, i).end()
            out.append(("a", text[i:j]))
            i = j
    return out


def _phrase(tokens) -> str | None:
    # Dots inside a phrase (obs-phrase, "John Q. Public") stay attached.
    dotted = []
    for k, v in tokens:
        if k in ("a", "q"):
            dotted.append(v)
        elif k == "s" and v == "." and dotted:
            dotted[-1] += "."
    text = " ".join(dotted)
    return text if text else None


def _addr_spec(tokens) -> tuple[str | None, str | None]:
    """local@domain from tokens without comments; returns (mailbox, host)."""
    at = next((i for i, (k, v) in enumerate(tokens) if k == "s" and v == "@"), None)
    local_toks = tokens if at is None else tokens[:at]
    local = "".join(v if k != "q" else v for k, v in local_toks if k in ("a", "q", "s") and v not in "<>")
    if at is None:
        return (local or None), (MISSING_DOMAIN if local else None)
    domain = "".join(v for k, v in tokens[at + 1:] if k in ("a", "d") or (k == "s" and v == "."))
    return (local or None), (domain or MISSING_DOMAIN)


def _mailbox(tokens) -> Address | None:
    comments = [v for k, v in tokens if k == "c"]
    toks = [t for t in tokens if t[0] != "c"]
    if not toks:
        return None
    lt = next((i for i, t in enumerate(toks) if t == ("s", "<")), None)
    if lt is None:
        mailbox, host = _addr_spec(toks)
        name = comments[-1].strip() if comments and comments[-1].strip() else None
        return (name, None, mailbox, host)
    name = _phrase(toks[:lt])
    gt = next((i for i in range(lt + 1, len(toks)) if toks[i] == ("s", ">")), len(toks))
    inner = toks[lt + 1:gt]
    adl = None
    colon = next((i for i, t in enumerate(inner) if t == ("s", ":")), None)
    if colon is not None and inner and inner[0] == ("s", "@"):
        adl = "".join(v for k, v in inner[:colon])
        inner = inner[colon + 1:]
    mailbox, host = _addr_spec(inner)
    if mailbox is None and host is None:
        # "<>" (an empty return path) still is an address
        return (name, adl, None, None) if name else None
    return (name, adl, mailbox, host)


def parse_address_list(text: str) -> list[Address]:
    result: list[Address] = []
    current: list = []
    angle = 0
    in_group = False

    def flush():
        if current:
            addr = _mailbox(current)
            if addr is not None and addr != (None, None, None, None):
                result.append(addr)
            current.clear()

    for tok in _tokens(text):
        kind, value = tok
        if kind == "s" and angle == 0:
            if value == ",":
                flush()
                continue
            if value == ":" and not in_group:
                name = _phrase([t for t in current if t[0] != "c"])
                current.clear()
                result.append((None, None, name or "", None))
                in_group = True
                continue
            if value == ";" and in_group:
                flush()
                result.append((None, None, None, None))
                in_group = False
                continue
        if kind == "s" and value == "<":
            angle += 1
        elif kind == "s" and value == ">":
            angle = max(0, angle - 1)
        current.append(tok)
    flush()
    if in_group:
        result.append((None, None, None, None))
    return result


def address_text(addrs: list[Address]) -> str:
    """Human text for searching: names and mailbox@host."""
    out = []
    for name, _adl, mailbox, host in addrs:
        if mailbox is None:
            continue                      # end of a group
        if host is None:
            out.append(f"{mailbox}:")     # a group's name is searchable too
            continue
        piece = f"{mailbox}@{host}" if host != MISSING_DOMAIN else mailbox
        out.append(f"{name} <{piece}>" if name else piece)
    return ", ".join(out)


@lru_cache(maxsize=256)
def parsed_addresses(text: str) -> tuple:
    """parse_address_list, remembered: one message's From and To are read for
    ENVELOPE, for SEARCH and for SORT, and mail from one sender repeats them."""
    return tuple(parse_address_list(text))
