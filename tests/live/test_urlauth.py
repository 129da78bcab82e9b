"""CATENATE (RFC 4469) and URLAUTH (RFC 4467, RFC 5524) on a live server:
what a URL may reach, and what it must not."""
from __future__ import annotations

import re

import pytest

from tests.conftest import raw_login
from posthouse.imap.urls import BadUrl, parse_imap_url

MSG = (b"From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
       b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
       b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       b"AAECAw==\r\n--b--\r\n")


@pytest.fixture
def two_users(server):
    u1, u2 = server.add_user(), server.add_user()
    a, b = raw_login(server, u1), raw_login(server, u2)
    assert a.cmd("A", b"APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)[-1].startswith(b"A OK")
    lines = a.cmd("S", "SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    yield a, b, u1, u2, uidvalidity
    a.close()
    b.close()


def _literal_after(lines, prefix: bytes) -> bytes:
    """The literal that follows a line starting with prefix (RawClient keeps it on the next line)."""
    joined = b"".join(lines)
    m = re.search(re.escape(prefix) + rb".*?\{(\d+)\}\r\n", joined, re.DOTALL)
    assert m, (prefix, lines)
    return joined[m.end():m.end() + int(m.group(1))]


def _append_catenate(c, mailbox: str, parts: bytes, tag="C"):
    return c.cmd(tag, f"APPEND {mailbox} CATENATE (".encode() + parts + b")")


def test_catenate_builds_a_message_from_text_and_urls(two_users):
    a, _b, u1, _u2, uidv = two_users
    a.cmd("C", "CREATE built")
    text = b"Subject: rebuilt\r\n\r\n"
    parts = (b"TEXT {%d+}\r\n" % len(text) + text
             + f' URL "/INBOX;UIDVALIDITY={uidv}/;UID=1/;SECTION=1"'.encode()
             + f' URL "imap://{u1[0]}@localhost/INBOX/;UID=1/;SECTION=2.MIME"'.encode()
             + b' URL "/INBOX/;UID=1/;PARTIAL=0.4"')
    lines = _append_catenate(a, "built", parts)
    assert re.match(rb"C OK \[APPENDUID \d+ 1\]", lines[-1]), lines
    a.cmd("S", "SELECT built")
    body = _literal_after(a.cmd("F", "FETCH 1 BODY.PEEK[]"), b"* 1 FETCH")
    assert body == (b"Subject: rebuilt\r\n\r\nfirst part"
                    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nFrom")


def test_catenate_refuses_bad_urls_and_stores_nothing(two_users):
    a, b, u1, _u2, uidv = two_users
    text = b"X: 1\r\n\r\n"
    for url in (f"/INBOX;UIDVALIDITY={uidv + 1}/;UID=1",      # UIDVALIDITY changed
                "/INBOX/;UID=99",                               # no such message
                "/INBOX/;UID=1/;SECTION=7",                     # no such part
                "/Nowhere/;UID=1",
                "imap://other.example.net/INBOX/;UID=1",        # another server
                "/INBOX/;UID=1/;SECTION=BOGUS",
                "INBOX/;UID=1", "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=x", "/%FF/;UID=1"):
        lines = _append_catenate(a, "INBOX", b"TEXT {%d+}\r\n" % len(text) + text + f' URL "{url}"'.encode())
        assert lines[-1].startswith(b"C NO [BADURL"), (url, lines)
    # Another user's mail can't be reached by naming it, with or without the user.
    lines = _append_catenate(b, "INBOX", f'URL "imap://{u1[0]}@localhost/INBOX/;UID=1"'.encode())
    assert lines[-1].startswith(b"C NO [BADURL")
    lines = _append_catenate(b, "INBOX", b'URL "/INBOX/;UID=1"')    # that is b's own, empty INBOX
    assert lines[-1].startswith(b"C NO [BADURL")
    # A missing mailbox is said first; bad syntax is BAD.
    assert _append_catenate(a, "Missing", b'URL "/INBOX/;UID=99"')[-1].startswith(b"C NO [TRYCREATE]")
    for bad in (b"", b'URL', b'TEXT "quoted"', b'BOGUS "x"', b'URL (x)'):
        assert _append_catenate(a, "INBOX", bad)[-1].startswith(b"C BAD"), bad
    assert b"* 1 EXISTS\r\n" in a.cmd("S", "SELECT INBOX")


def test_urlauth_grants_exactly_what_it_names(two_users):
    a, b, u1, u2, _uidv = two_users
    rump_any = f"imap://{u1[0]}@localhost/INBOX/;UID=1/;SECTION=1;URLAUTH=authuser"
    rump_u2 = f"imap://{u1[0]}@localhost/INBOX/;UID=1/;SECTION=2;URLAUTH=user+{u2[0]}"
    lines = a.cmd("G", f'GENURLAUTH "{rump_any}" INTERNAL "{rump_u2}" INTERNAL')
    urls = re.findall(rb'"([^"]+)"', _one(lines, b"* GENURLAUTH"))
    assert len(urls) == 2 and urls[0].startswith(rump_any.encode() + b":INTERNAL:")
    any_url, u2_url = (u.decode() for u in urls)

    # The other user reads the part; URLAUTH=BINARY decodes it and describes it.
    assert _literal_after(b.cmd("F", f'URLFETCH "{any_url}"'), b"* URLFETCH") == b"first part"
    lines = b.cmd("F", f'URLFETCH ("{u2_url}" BINARY BODYPARTSTRUCTURE)')
    # Bytes with a NUL: the decoded part is "binary", 4 octets.
    assert b'(BODYPARTSTRUCTURE ("application" "octet-stream" NIL NIL NIL "BINARY" 4 ' in b"".join(lines)
    assert b"~{4}\r\n\x00\x01\x02\x03)" in b"".join(lines)
    # user+<u2> is u2's alone: not even the owner may use it.
    assert _one(a.cmd("F", f'URLFETCH "{u2_url}"'), b"* URLFETCH").endswith(b" NIL\r\n")

    # Tampering with any part of the URL breaks the signature.
    tampered = [any_url.replace(";SECTION=1", ";SECTION=2"), any_url[:-1] + ("0" if any_url[-1] != "0" else "1"),
                any_url.replace("authuser", "anonymous"), any_url.replace(":INTERNAL:", ":OTHER:"),
                any_url.split(":INTERNAL:")[0]]
    for url in tampered:
        assert _one(b.cmd("F", f'URLFETCH "{url}"'), b"* URLFETCH").endswith(b" NIL\r\n"), url
    assert _one(b.cmd("F", 'URLFETCH "not a url"'), b"* URLFETCH").endswith(b" NIL\r\n")

    # An expired URL is dead.
    past = f"imap://{u1[0]}@localhost/INBOX/;UID=1;EXPIRE=2001-01-01T00:00:00Z;URLAUTH=authuser"
    expired = re.findall(rb'"([^"]+)"', _one(a.cmd("G", f'GENURLAUTH "{past}" INTERNAL'), b"* GENURLAUTH"))[0]
    assert _one(b.cmd("F", f'URLFETCH "{expired.decode()}"'), b"* URLFETCH").endswith(b" NIL\r\n")

    # RESETKEY kills every URL of the mailbox.
    assert a.cmd("R", "RESETKEY INBOX INTERNAL")[-1].startswith(b"R OK")
    assert _one(b.cmd("F", f'URLFETCH "{any_url}"'), b"* URLFETCH").endswith(b" NIL\r\n")
    assert a.cmd("R", "RESETKEY Nowhere")[-1].startswith(b"R NO [NONEXISTENT]")
    assert a.cmd("R", "RESETKEY INBOX OTHER")[-1].startswith(b"R NO")
    assert a.cmd("R", "RESETKEY")[-1].startswith(b"R OK")

    # Only the owner signs, only URLAUTH rumps, only known mechanisms.
    assert b.cmd("G", f'GENURLAUTH "{rump_any}" INTERNAL')[-1].startswith(b"G NO [BADURL")
    for bad in (f'"{rump_any}" OTHER', f'"{rump_any}"', '"/INBOX/;UID=1;URLAUTH=authuser" INTERNAL',
                f'"imap://{u1[0]}@localhost/INBOX/;UID=1" INTERNAL', f'"{any_url}" INTERNAL', ""):
        assert a.cmd("G", f"GENURLAUTH {bad}")[-1].startswith((b"G BAD", b"G NO")), bad


def _one(lines, prefix: bytes) -> bytes:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


@pytest.mark.parametrize("text", [
    "", "/", "imap://", "imap:///INBOX/;UID=1", "imap://u@h/INBOX", "/INBOX/;UID=1/;SECTION=",
    "/INBOX/;UID=1/;PARTIAL=x", "/INBOX/;UID=1;EXPIRE=never;URLAUTH=authuser",
    "/INBOX/;UID=1;EXPIRE=2026-01-01T00:00:00;URLAUTH=authuser",      # no time zone
    "/INBOX/;UID=1:INTERNAL:" + "0" * 32, "/IN BOX/;UID=1", "/INBOX/;UID=99999999999",
    "/\u00e9/;UID=1", "imap://u@h:99999999/INBOX/;UID=1", "/%C3/;UID=1"])
def test_url_parser_rejects_garbage(text):
    with pytest.raises(BadUrl):
        parse_imap_url(text)


def test_url_parser_reads_every_part():
    url = parse_imap_url("imap://b%40ob;AUTH=*@Example.COM:143/Sent%20Items;UIDVALIDITY=9/;UID=20"
                         "/;SECTION=HEADER.FIELDS%20(FROM)/;PARTIAL=5.10"
                         ";EXPIRE=2030-01-02T03:04:05Z;URLAUTH=user+b%40ob:INTERNAL:" + "ab" * 16)
    assert (url.user, url.host, url.mailbox, url.uidvalidity, url.uid) == ("b@ob", "example.com", "Sent Items", 9, 20)
    assert (url.section, url.partial, url.access, url.mechanism) == ("HEADER.FIELDS (FROM)", (5, 10),
                                                                     "user+b%40ob", "INTERNAL")
    assert url.rump.endswith(";URLAUTH=user+b%40ob") and url.access_allows("B@ob") and not url.access_allows("eve")
