"""Matching server replies against imaptest patterns: variables, `$` wildcards, `$!` directives."""
from __future__ import annotations

from .imaptest_format import NIL, Atom, is_astring

FULL = -1   # "everything matched"; otherwise the number of leading arguments that matched

_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def upper(text: str) -> str:
    """ASCII-only upper case, as C's toupper in the C locale."""
    return text.translate(_UPPER)


def c_string(text: str) -> str:
    """The string as imaptest's C code sees it: up to its first NUL. imaptest keeps
    every parsed string NUL-terminated, so it compares literals only that far; a
    "banned" reply whose literal starts with a NUL bans every such literal."""
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


def _is_var_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _var_name(text: str, i: int) -> tuple[str | None, int]:
    """The name of the variable whose "$" is just before text[i]: "{any}" or a run of
    letters, digits and "_"; (None, i) for a "{" never closed."""
    if text[i:i + 1] == "{":
        end = text.find("}", i + 1)
        return (None, i) if end < 0 else (text[i + 1:end], end + 1)
    j = i
    while j < len(text) and _is_var_char(text[j]):
        j += 1
    return text[i:j], j


class Variables:
    """Script variables, with the ones a failed match bound kept aside to be undone."""

    def __init__(self):
        self.values: dict[str, str] = {}
        self.added: list[str] = []
        self.seqmap: list[int] = []      # initial sequence -> current (0 = expunged)
        self.modseq_idx = 0
        self.modseq_value = 0

    def relative_seq(self, number: int) -> str:
        if number == 0:
            return "<zero seq>"
        if number > len(self.seqmap):
            return "<out of range>"
        if self.seqmap[number - 1] == 0:
            return "<expunged>"
        return str(self.seqmap[number - 1])

    def expunged(self, seq: int) -> None:
        if seq > len(self.seqmap):
            return   # past what we knew: it came after an EXISTS
        for i in range(seq - 1, len(self.seqmap)):
            if self.seqmap[i] == seq:
                self.seqmap[i] = 0
            elif self.seqmap[i] > seq:
                self.seqmap[i] -= 1

    def revert_added(self) -> None:
        for name in self.added:
            self.values.pop(name, None)
        self.added.clear()

    def _new_modseq(self, index: int, text: str) -> str:
        if not text.isdigit():
            return "$modseq-not-number"
        value = int(text)
        if self.modseq_idx > index:
            return "$modseq-order-mismatch"
        at_least = self.modseq_value + (index - self.modseq_idx)
        result = text
        if value < at_least:
            result = f"$modseq-at-least-{at_least}"
            value = at_least
        self.modseq_idx, self.modseq_value = index, value
        return result

    # -- expansion in commands -------------------------------------------------------------

    def expand_command(self, text: str, skip_unset: bool = False) -> str:
        out = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != "$" or i + 1 == n:
                out.append(ch)
                i += 1
                continue
            i += 1
            if text[i] == "$":
                out.append("$")
                i += 1
                continue
            if text[i] == "!":
                while i + 1 < n and text[i + 1] != " ":
                    i += 1
                i += 1
                continue
            name, i = _var_name(text, i)
            if name is None:
                raise MatchError("missing '}'")
            if name.isdigit():
                out.append(self.relative_seq(int(name)))
                continue
            value = self.values.get(name)
            if value is None:
                if not skip_unset:
                    raise MatchError(f"uninitialized variable: {name}")
                value = "$"
            out.append(value)
        return "".join(out)

    # -- matching server input ---------------------------------------------------------------

    def expand_input(self, pattern: str, text: str) -> tuple[str | None, bool]:
        """Expand pattern against the server's text, binding unset variables from it.

        Returns (expanded pattern or None on a mismatch, whether to compare case-blind)."""
        icase = True
        out = []
        i, j = 0, 0
        n = len(pattern)
        while i < n:
            ch = pattern[i]
            if ch != "$" or pattern[i + 1:i + 2] == "$":
                if ch == "$":
                    i += 1
                    ch = pattern[i]
                if j >= len(text) or upper(ch) != upper(text[j]):
                    return None, icase
                j += 1
                out.append(ch)
                i += 1
                continue
            i += 1
            name, i = _var_name(pattern, i)
            if name is None:
                return "", icase
            if name.isdigit():
                value = self.relative_seq(int(name))
            elif name.startswith("case:"):
                icase = False
                value = name[5:]
            else:
                value = self.values.get(name) if name else None
                if value is None:
                    value = self._bind(name, pattern[i:], text[j:])
            out.append(value)
            # a variable's value must equal the input octet for octet
            if text[j:j + len(value)] != value:
                return None, icase
            j += len(value)
        return "".join(out), icase

    def _bind(self, name: str, rest: str, text: str) -> str:
        """Take input up to where the rest of the pattern (its first character) begins."""
        if rest[:1] == "$":
            stop, stop_icase = self.expand_input(rest, text)
            stop = stop or ""
        else:
            stop, stop_icase = rest, True
        first = stop[:1]
        end = 0
        if first:
            want = upper(first) if stop_icase else first
            while end < len(text) and (upper(text[end]) if stop_icase else text[end]) != want:
                end += 1
        else:
            end = len(text)
        value = text[:end]
        if not name:
            return value
        if name.startswith("modseq") and name[6:].isdigit():
            value = self._new_modseq(int(name[6:]), value)
            self.values[name] = value
            return value
        self.values[name] = value
        self.added.append(name)
        return value

    def match_args(self, match: list, args: list, limit: int | None = None, prefix: bool = False) -> int:
        done = 0
        mi, ai = 0, 0
        while mi < len(match) and (limit is None or done < limit):
            pat = match[mi]
            arg = args[ai] if ai < len(args) else _EOL
            if pat is NIL:
                if arg is not NIL:
                    return done
            elif isinstance(pat, str):
                if pat == "$" and isinstance(arg, list):
                    pass
                elif pat == "$]":
                    while ai < len(args) and isinstance(args[ai], Atom) and "]" not in args[ai]:
                        ai += 1
                else:
                    if not is_astring(arg):
                        return done
                    pat, arg = c_string(pat), c_string(arg)
                    expanded, icase = self.expand_input(pat, arg)
                    if expanded is None:
                        return done
                    if prefix and mi == len(match) - 1:
                        head = arg[:len(expanded)]
                        ok = upper(head) == upper(expanded) if icase else head == expanded
                    else:
                        ok = upper(arg) == upper(expanded) if icase else arg == expanded
                    if not ok:
                        return done
            else:
                if not isinstance(arg, list):
                    return done
                sub = self.match_list(pat, arg)
                if sub != FULL:
                    return done + sub
            mi += 1
            ai += 1
            done += 1
        if prefix or ai >= len(args) or (limit is not None and done >= limit):
            return FULL
        return done

    def match_list(self, match: list, args: list) -> int:
        unordered, chain, noextra = False, 1, None
        ignores, bans = [], []
        k = 0
        while k < len(match) and isinstance(match[k], Atom) and match[k].startswith("$!"):
            name = match[k][2:]
            if name.startswith("unordered"):
                unordered = True
                if noextra is None:
                    noextra = False
                if name.startswith("unordered="):
                    chain = int(name[10:])
            elif name == "ordered":
                unordered = False
            elif name == "extra":
                noextra = False
            elif name == "noextra":
                noextra = True
            elif name.startswith("ignore="):
                ignores.append(upper(name[7:]))
            elif name.startswith("ban="):
                bans.append(upper(name[4:]))
            k += 1
        if noextra is None:
            noextra = True
        match = match[k:]
        if not unordered:
            return self.match_args(match, args)
        if len(args) % chain:
            return 0
        matched = [False] * len(args)
        done = 0
        for m in range(0, len(match), chain):
            for a in range(0, len(args), chain):
                if self.match_args(match[m:m + chain], args[a:a + chain], chain) == FULL:
                    matched[a] = True
                    break
            else:
                return done
            done += 1
        for a in range(0, len(args), chain):
            if matched[a] or not is_astring(args[a]):
                continue
            if noextra and upper(args[a]) not in ignores:
                return done
            if not noextra and upper(args[a]) in bans:
                return done
        return FULL


class _Eol:
    pass


_EOL = _Eol()


class MatchError(Exception):
    pass
