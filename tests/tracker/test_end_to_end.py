"""The activity tracker end to end, as an outside check drives it: a real
`posthouse serve` (mail server, tracker and API in one process), set up
with the stable commands (`user add`, `account add USER --local`,
`contact add --name --email`, `token create`), then mail delivered over
LMTP shows up as an activity on the contact, readable in the API, with its
original fetched live from the server; an attachment becomes a searchable
document; a mail sent through the API is in Sent and on the contact at once;
a moved original is still found, a deleted one is 410 Gone."""
from __future__ import annotations

import email
import imaplib
import os
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

import httpx
import pytest

from tests.crm.docfiles import pdf

WAIT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    def __init__(self, tmp_path, relay_port: int):
        self.dir = tmp_path
        self.relay_port = relay_port
        self.config = str(tmp_path / "posthouse.toml")
        self._write_config()
        self.proc = None

    def _write_config(self):
        self.imap, self.lmtp, self.web = _free_port(), _free_port(), _free_port()
        (self.dir / "posthouse.toml").write_text(
            f'data_dir = "{self.dir / "data"}"\nfsync = false\nparse_processes = 0\n'
            f'domains = ["example.com"]\nhostname = "mx.example.com"\n'
            f'[imap]\nport = {self.imap}\ntls_port = false\n[lmtp]\nport = {self.lmtp}\n[smtp]\nport = false\n'
            '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
            f'[submission]\nport = {_free_port()}\ntls_port = false\n[web]\nport = {self.web}\n'
            f'[relay]\nhost = "127.0.0.1"\nport = {self.relay_port}\ntls = "none"\n')

    def run(self, *args, stdin: str | None = None) -> str:
        r = subprocess.run([sys.executable, "-m", "posthouse", "--config", self.config, *args],
                           capture_output=True, text=True, timeout=120, input=stdin)
        assert r.returncode == 0, f"posthouse {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout

    def start(self, tries: int = 3):
        """Start serve; a free port taken by another process meanwhile (other
        tests run beside this one) means new ports and another try."""
        for attempt in range(tries):
            self.log = open(self.dir / "serve.log", "w+")
            self.proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", self.config, "serve"],
                                         stdout=subprocess.DEVNULL, stderr=self.log,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
            deadline = time.monotonic() + WAIT
            while "web listening" not in (self.dir / "serve.log").read_text():
                if self.proc.poll() is not None:
                    break
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
            else:
                return
            text = (self.dir / "serve.log").read_text()
            self.log.close()
            assert "already in use" in text and attempt < tries - 1, text
            self._write_config()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()


def _deliver(serve, message: EmailMessage, to: str) -> None:
    with smtplib.LMTP("127.0.0.1", serve.lmtp) as lmtp:
        lmtp.send_message(message, to_addrs=[to])


def _until(what, fn, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        found = fn()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Sink:
    """The outside world's mail servers: an SMTP server on loopback that keeps what it gets."""
    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@pytest.fixture
def sink():
    from aiosmtpd.controller import Controller
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def serve(tmp_path, sink):
    s = Serve(tmp_path, sink.port)
    try:
        yield s
    finally:
        s.stop()


def test_mail_becomes_activity_with_its_original_attachment_and_sent_copy(serve, sink):
    serve.run("user", "add", "alice", "--password-stdin", stdin="alice-pw\n")
    serve.start()
    serve.run("account", "add", "alice", "--local", "--since", "all")
    contact = serve.run("contact", "add", "--name", "Carol Client", "--email", "carol@customer.example")
    assert "carol@customer.example" in contact
    token = serve.run("token", "create", "alice").strip()
    api = httpx.Client(base_url=f"http://127.0.0.1:{serve.web}", timeout=30,
                       headers={"Authorization": f"Bearer {token}"})

    msg = EmailMessage()
    msg["From"] = "Carol Client <carol@customer.example>"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "My resume"
    msg["Message-ID"] = "<resume-1@customer.example>"
    msg.set_content("Hello Alice, my resume is attached.")
    msg.add_attachment(pdf(["Carol Client", "Experienced bandoneonist and welder"]),
                       maintype="application", subtype="pdf", filename="carol-cv.pdf")
    _deliver(serve, msg, "alice@example.com")

    contacts = api.get("/api/v1/contacts", params={"email": "carol@customer.example"}).json()
    assert len(contacts) == 1
    cid = contacts[0]["id"]
    activities = _until("the activity", lambda: api.get(f"/api/v1/contacts/{cid}/activities").json())
    assert [(a["subject"], a["direction"]) for a in activities] == [("My resume", "received")]
    assert activities[0]["date"]
    aid = activities[0]["id"]

    original = api.get(f"/api/v1/activities/{aid}/message")
    assert original.status_code == 200 and original.headers["content-type"].startswith("message/rfc822")
    assert email.message_from_bytes(original.content)["Message-ID"] == "<resume-1@customer.example>"

    # the tracker read it with BODY.PEEK: still unseen for alice's own clients
    with imaplib.IMAP4("127.0.0.1", serve.imap) as imap:
        imap.login("alice", "alice-pw")
        imap.select("INBOX", readonly=True)
        assert imap.uid("SEARCH", "UNSEEN")[1][0].split() != []

    # the attachment becomes a document on the contact, found by a word in it
    attachments = api.get(f"/api/v1/activities/{aid}").json()["attachments"]
    index = next(i for i, a in enumerate(attachments) if a["name"] == "carol-cv.pdf")
    doc = api.post(f"/api/v1/activities/{aid}/attachments/{index}/document", json={})
    assert doc.status_code == 201, doc.text
    hits = api.get("/api/v1/documents", params={"q": "bandoneonist"}).json()
    assert [h["contact_id"] for h in hits] == [cid]

    # a mail sent through the API: in Sent on the server, and on the contact at once
    accounts = api.get("/api/v1/accounts").json()
    sent = api.post("/api/v1/send", json={"account_id": accounts[0]["id"], "to": ["carol@customer.example"],
                                           "subject": "Re: My resume", "text": "Thanks, Carol!",
                                           "in_reply_to": "<resume-1@customer.example>"})
    assert sent.status_code in (200, 201), sent.text
    directions = {(a["subject"], a["direction"]) for a in api.get(f"/api/v1/contacts/{cid}/activities").json()}
    assert ("Re: My resume", "sent") in directions
    with imaplib.IMAP4("127.0.0.1", serve.imap) as imap:
        imap.login("alice", "alice-pw")
        imap.select("Sent", readonly=True)
        found = imap.uid("SEARCH", "HEADER", "Subject", '"Re: My resume"')[1][0].split()
        assert len(found) == 1
    _until("the relayed copy", lambda: [r for r in sink.received if r[1] == ["carol@customer.example"]])

    # moved to another folder: the activity's link still finds it
    with imaplib.IMAP4("127.0.0.1", serve.imap) as imap:
        imap.login("alice", "alice-pw")
        imap.select("INBOX")
        uid = imap.uid("SEARCH", "HEADER", "Message-ID", "resume-1@customer.example")[1][0].split()[0]
        assert imap.uid("MOVE", uid, "Archive")[0] == "OK"
    _until("the move seen", lambda: any(p["folder"] == "Archive" and not p["gone"]
                                        for p in api.get(f"/api/v1/activities/{aid}").json()["places"]))
    assert api.get(f"/api/v1/activities/{aid}/message").status_code == 200

    # deleted on the server: the activity stays, its original is gone
    with imaplib.IMAP4("127.0.0.1", serve.imap) as imap:
        imap.login("alice", "alice-pw")
        imap.select("Archive")
        uid = imap.uid("SEARCH", "HEADER", "Message-ID", "resume-1@customer.example")[1][0].split()[0]
        imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        imap.expunge()
    _until("the delete seen", lambda: all(p["gone"] for p in api.get(f"/api/v1/activities/{aid}").json()["places"]))
    gone = api.get(f"/api/v1/activities/{aid}/message")
    assert gone.status_code == 410 and "no longer" in gone.json()["error"]
    assert api.get(f"/api/v1/activities/{aid}").status_code == 200
    api.close()
