"""What commands and responses share on the wire: lines ended by CRLF with
literals ({n}, ~{n}) between them. CommandReader (the server's side) and
ResponseReader (the client's) both take a literal's bytes, then the next
line, from the bytes fed in; only what a line means differs."""
from __future__ import annotations

from .tokenizer import Literal


class Framing:
    def __init__(self):
        self._buf = bytearray()
        self._parts: list = []          # text segments and Literals of the command/response so far
        self._text_len = 0
        self._literal: bytearray | None = None     # the literal being read
        self._literal_left = 0          # its bytes still to come
        self._literal_binary = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def _start_literal(self, size: int, binary: bool) -> None:
        self._literal = bytearray()
        self._literal_left = size
        self._literal_binary = binary

    def _fill_literal(self) -> bool:
        """Move fed bytes into the literal being read; True once it is whole
        (it is then the last of the parts)."""
        take = min(self._literal_left, len(self._buf))
        if take:
            self._literal += self._buf[:take]
            del self._buf[:take]
            self._literal_left -= take
        if self._literal_left:
            return False
        self._parts.append(Literal(bytes(self._literal), self._literal_binary))
        self._literal = None
        return True

    def _next_line(self) -> bytes | None:
        """The next whole line without its line end; None until there is one."""
        nl = self._buf.find(b"\n")
        if nl < 0:
            return None
        line = bytes(self._buf[:nl])
        del self._buf[:nl + 1]
        return line[:-1] if line.endswith(b"\r") else line
