"""The reading pane's sanitiser and message reading, without a browser: what
survives nh3 and the remote-content rules, and what a broken message gives."""
from __future__ import annotations

from email.message import EmailMessage

from posthouse.web.pages.reading import frame_document, read, sanitise

HOSTILE = """<script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">js</a>
<a href="https://ok.example/">ok</a><form action=http://evil.example><input name=a></form>
<img src="http://evil.example/pixel.gif"><svg><script>alert(4)</script></svg>
<p style="background:url('http://evil.example/p.png')">styled</p><iframe src=http://evil.example></iframe>
<a href="data:text/html,<script>alert(5)</script>">data link</a><img src="data:image/svg+xml,<svg onload=alert(6)>">
<meta http-equiv=refresh content="0;url=http://evil.example"><base href="http://evil.example/">"""


def test_nothing_active_survives():
    clean, blocked = sanitise(HOSTILE)
    lowered = clean.lower()
    for bad in ("<script", "onerror", "javascript:", "<form", "<input", "<svg", "<iframe", "<meta", "<base",
                "data:text/html", "data:image/svg", "evil.example/pixel", ":url("):
        assert bad not in lowered, (bad, clean)
    assert 'href="https://ok.example/"' in clean and 'rel="noopener noreferrer"' in clean
    assert blocked >= 2       # the pixel and the CSS background


def test_remote_images_kept_only_when_allowed():
    html = '<img src="https://images.example/logo.png"><img src="//cdn.example/x.png">'
    blocked_html, blocked = sanitise(html)
    assert "images.example" not in blocked_html and blocked == 2
    allowed_html, blocked = sanitise(html, images=True)
    assert 'src="https://images.example/logo.png"' in allowed_html
    assert "cdn.example" not in allowed_html        # (protocol-relative: never)


def test_cid_images_inlined():
    m = EmailMessage()
    m["From"] = "A <a@example.org>"
    m["Subject"] = "logo"
    m.set_content("text")
    m.add_alternative('<p>hi <img src="cid:logo@x"></p>', subtype="html")
    m.get_payload()[1].add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<logo@x>")
    shown = read(bytes(m))
    assert 'src="data:image/png;base64,' in shown.html and shown.blocked_images == 0


def test_frame_document_has_its_own_policy():
    doc = frame_document("<p>x</p>", images=False)
    assert "default-src 'none'; img-src data:;" in doc
    assert "https:" in frame_document("<p>x</p>", images=True)


def test_broken_message_reads_without_crashing():
    raw = (b"From: =?bogus?Q?x?= <\xff@example.org>\r\nSubject: =?utf-8?B?!!!?=\r\n"
           b"Content-Type: text/html; charset=no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"%%%not base64<script>alert(1)</script>\r\n")
    shown = read(raw)
    assert shown.html is not None and "<script" not in shown.html


def test_attachments_listed_with_their_names():
    m = EmailMessage()
    m["From"] = "A <a@example.org>"
    m.set_content("see attached")
    m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="../../etc/passwd.pdf")
    shown = read(bytes(m))
    assert [(a.name, a.content_type, a.size) for a in shown.attachments] == [(".._.._etc_passwd.pdf",
                                                                             "application/pdf", 8)]
    assert shown.text.strip() == "see attached"


def test_headers_the_parser_chokes_on_are_shown_raw():
    # "To: <" made the email package raise twice (get and get_all): a 500 before.
    reading = read(b"From: a@b.example\r\nTo: <\r\nCc: <<<@>\r\nSubject: x\r\n\r\nbody")
    assert reading.to == "<"
