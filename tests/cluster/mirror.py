"""A QRESYNC client that keeps a copy of its selected mailbox (UID by
sequence number, each message's MODSEQ and flags) from nothing but the
server's responses, and checks what the cluster promises as it goes:
new messages come with UIDs above every UID it was shown before, a
message's MODSEQ never goes down, nor does HIGHESTMODSEQ."""
from __future__ import annotations

import re

from tests.conftest import RawClient

_EXISTS = re.compile(rb"^\* (\d+) EXISTS")
_VANISHED = re.compile(rb"^\* VANISHED (\(EARLIER\) )?([\d:,]+)")
_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)\r\n$")
_UID = re.compile(rb"\bUID (\d+)")
_MODSEQ = re.compile(rb"\bMODSEQ \((\d+)\)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_HIGHEST = re.compile(rb"\[HIGHESTMODSEQ (\d+)\]")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def uid_set(text: bytes) -> list[int]:
    out = []
    for part in text.split(b","):
        lo, _, hi = part.partition(b":")
        out += range(int(lo), int(hi or lo) + 1)
    return out


class Broken(AssertionError):
    """A promise broken: said with what this session was shown."""


class Mirror:
    def __init__(self, port: int, user: str, password: str, who: str = ""):
        self.who = who
        self.c = RawClient("127.0.0.1", port, timeout=30)
        self.n = 0
        self.uids: list[int] = []           # by sequence number
        self.exists = 0
        self.modseq: dict[int, int] = {}
        self.flags: dict[int, frozenset] = {}
        self.highest = 0                    # the highest HIGHESTMODSEQ shown
        self.max_uid = 0                    # the highest UID shown
        self.uidvalidity = 0
        self.vanished_earlier: list[int] = []
        ok = self.cmd(f"LOGIN {user} {password}")
        assert ok[-1].split(b" ")[1] == b"OK", ok
        self.cmd("ENABLE QRESYNC")

    def close(self) -> None:
        self.c.close()

    # -- commands -------------------------------------------------------------------
    def cmd(self, text: str | bytes, literal: bytes | None = None) -> list[bytes]:
        self.n += 1
        tag = f"m{self.n}"
        line = (text if isinstance(text, bytes) else text.encode())
        if literal is None:
            self.c.send(tag.encode() + b" " + line + b"\r\n")
        else:
            self.c.send(tag.encode() + b" " + line + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        lines = self.c.read_until_tag(tag)
        for untagged in lines[:-1]:
            self._take(untagged)
        self._take_code(lines[-1])
        while self.exists > len(self.uids):
            self._fill()
        return lines

    def select(self, mailbox: str = "INBOX", qresync: tuple | None = None) -> list[bytes]:
        """SELECT, with (uidvalidity, modseq, known uids) to resynchronize."""
        self.uids, self.exists, self.max_uid = [], 0, 0      # a new view: its own ascending UIDs
        self.vanished_earlier = []
        if qresync is None:
            lines = self.cmd(f"SELECT {mailbox} (CONDSTORE)")
        else:
            uidvalidity, modseq, known = qresync
            known_text = ",".join(map(str, known)) if known else "1"
            lines = self.cmd(f"SELECT {mailbox} (QRESYNC ({uidvalidity} {modseq} {known_text}))")
        assert lines[-1].split(b" ")[1] == b"OK", lines
        return lines

    def append(self, raw: bytes, flags: str = "") -> int:
        lines = self.cmd(f"APPEND INBOX ({flags})", raw)
        assert lines[-1].split(b" ")[1] == b"OK", lines
        return int(_APPENDUID.search(lines[-1]).group(2))

    def _fill(self) -> None:
        """The UIDs of messages EXISTS announced (FETCH: no expunge is told during it)."""
        first, last = len(self.uids) + 1, self.exists     # (more may be announced meanwhile)
        self.n += 1
        tag = f"m{self.n}"
        self.c.send(f"{tag} FETCH {first}:{last} (UID MODSEQ FLAGS)\r\n".encode())
        lines = self.c.read_until_tag(tag)
        assert lines[-1].split(b" ")[1] == b"OK", lines
        new = {}
        for line in lines[:-1]:
            m = _FETCH.match(line)
            if m and first <= int(m.group(1)) <= last:
                new[int(m.group(1))] = line
            else:
                self._take(line)
        for seq in range(first, last + 1):
            line = new.get(seq)
            if line is None:
                raise Broken(f"{self.who}: no FETCH for message {seq} of {last}: {lines}")
            uid = int(_UID.search(line).group(1))
            if uid <= self.max_uid:
                raise Broken(f"{self.who}: new message {seq} has UID {uid}, not above UID {self.max_uid} "
                             f"shown before")
            self.uids.append(uid)
            self.max_uid = uid
            self._note(uid, line)

    # -- responses --------------------------------------------------------------------
    def _take_code(self, line: bytes) -> None:
        m = _HIGHEST.search(line)
        if m:
            highest = int(m.group(1))
            if highest < self.highest:
                raise Broken(f"{self.who}: HIGHESTMODSEQ {highest} after {self.highest}")
            self.highest = highest
        m = _UIDVALIDITY.search(line)
        if m:
            self.uidvalidity = int(m.group(1))

    def _take(self, line: bytes) -> None:
        self._take_code(line)
        m = _EXISTS.match(line)
        if m:
            self.exists = int(m.group(1))
            return
        m = _VANISHED.match(line)
        if m:
            gone = uid_set(m.group(2))
            if m.group(1):
                self.vanished_earlier += gone
            here = set(self.uids)
            for uid in gone:
                if uid in here:
                    self.uids.remove(uid)
                    self.exists -= 1
                elif not m.group(1) and uid > self.max_uid and self.exists > len(self.uids):
                    self.exists -= 1        # one EXISTS announced that we had not fetched yet
                self.modseq.pop(uid, None)
                self.flags.pop(uid, None)
            return
        m = _FETCH.match(line)
        if m:
            seq = int(m.group(1))
            uid_m = _UID.search(line)
            if seq <= len(self.uids):
                uid = self.uids[seq - 1]
                if uid_m and int(uid_m.group(1)) != uid:
                    raise Broken(f"{self.who}: FETCH {seq} says UID {uid_m.group(1)}, known as UID {uid}")
                self._note(uid, line)
            elif uid_m:
                # A message of a SELECT with QRESYNC (or before its EXISTS is filled): taken by UID.
                self._note(int(uid_m.group(1)), line)

    def _note(self, uid: int, line: bytes) -> None:
        m = _MODSEQ.search(line)
        if m:
            modseq = int(m.group(1))
            if modseq < self.modseq.get(uid, 0):
                raise Broken(f"{self.who}: UID {uid} MODSEQ {modseq} after {self.modseq[uid]}")
            self.modseq[uid] = modseq
        f = _FLAGS.search(line)
        if f:
            self.flags[uid] = frozenset(f.group(1).split()) - {b"\\Recent"}     # (a session's own)
