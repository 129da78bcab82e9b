"""MIME fixes of issue 20: binary parts stored base64, default charset, missing sections."""
from __future__ import annotations

import base64

from posthouse.mime.binary import encode_nul_parts
from posthouse.mime.decode import decode_transfer
from posthouse.mime.message import parse_message
from posthouse.mime.sections import resolve
from posthouse.store.parsing import normalize_and_parse


def _part_bytes(raw: bytes, numbers: list[int]) -> tuple[bytes, str]:
    node = resolve(parse_message(raw).parts, numbers)
    return raw[node["b"]:node["e"]], node["x"]


def test_a_binary_part_with_nul_is_stored_base64_and_decodes_back():
    payload = b"\x00-\xe4\n\r\n\n"
    raw = (b"From: a@b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + payload)
    stored, parsed = normalize_and_parse(raw, binary=True)
    assert b"\x00" not in stored
    body, cte = _part_bytes(stored, [1])
    assert cte == "base64" and base64.b64decode(body) == payload
    assert decode_transfer(body, cte) == payload
    assert b'"BASE64" %d' % len(body) in parsed.bodystructure
    assert stored.count(b"Content-Transfer-Encoding") == 1


def test_only_the_parts_with_nul_change_in_a_multipart():
    raw = (b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
           b"Content-Type: text/plain\r\n\r\nplain \xe4 8bit\n\r\n--X\r\n"
           b"Content-Type: application/x-bin\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n"
           b"\x00\x01\x02\r\n--X--\r\n")
    stored = encode_nul_parts(raw)
    assert _part_bytes(stored, [1]) == (b"plain \xe4 8bit\n", "7bit")
    body, cte = _part_bytes(stored, [2])
    assert cte == "base64" and base64.b64decode(body) == b"\x00\x01\x02"
    assert b" binary" not in stored         # the folded old field went with its header


def test_text_without_charset_gets_the_rfc2045_default():
    for header in (b"", b"Content-Type: text/plain\r\n", b"Content-Type: text/html; format=flowed\r\n"):
        parsed = parse_message(b"Subject: x\r\n" + header + b"\r\nhello\r\n")
        assert b'"charset" "us-ascii"' in parsed.bodystructure, header
    parsed = parse_message(b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n")
    assert b'("charset" "utf-8")' in parsed.bodystructure
    parsed = parse_message(b"Content-Type: application/pdf\r\n\r\nhi\r\n")
    assert b'"application" "pdf" NIL' in parsed.bodystructure


def test_delivered_mail_with_a_nul_is_stored_without_it_too():
    raw = b"Subject: x\nContent-Type: application/x-bin\n\n\x00\x01\n"
    stored, parsed = normalize_and_parse(raw)
    assert b"\x00" not in stored and b'"BASE64"' in parsed.bodystructure
    plain = b"Subject: y\r\n\r\nno nul here\r\n"
    assert normalize_and_parse(plain)[0] == plain


def test_nul_encoding_survives_garbage():
    import random
    rng = random.Random(20)
    pieces = [b"\x00", b"\r\n", b"\n", b"--B", b"--B--", b"Content-Type: multipart/mixed; boundary=B",
              b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: binary", b": ", b"x", b"\xff"]
    for _ in range(300):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        stored = encode_nul_parts(raw)
        parse_message(stored)
        if b"\x00" not in raw:
            assert stored == raw
