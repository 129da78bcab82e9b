"""send(): a real submission through the project's server on 127.0.0.1, then
the exact bytes sent read back from the sender's Sent folder (imaplib)."""
from __future__ import annotations

import asyncio
import hashlib
import imaplib
import ssl

import pytest

from posthouse.auth.passwords import hash_password
from posthouse.send import SendError, compose, send
from posthouse.send.sent import strip_bcc

from .standins import Account, ImaplibConnection, Store


def run(coro):
    return asyncio.run(coro)


def account_for(server, user, **fields) -> tuple[Account, Store]:
    name, pw = user
    account = Account(id=1, owner=name, login=name, imap_host=server.host, imap_port=server.port,
                      smtp_host=server.host, smtp_port=server.submission_port, smtp_tls="none")
    for key, value in fields.items():
        setattr(account, key, value)
    return account, Store(config=server.config, secrets={1: {"password": pw}})


def opener(server, user):
    return lambda store, account: ImaplibConnection.open(server.host, server.port, *user)


def fetch_all(server, user, folder):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.select(f'"{folder}"', readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    c.logout()
    return [(item[0], item[1]) for item in data if isinstance(item, tuple)]


def test_send_submits_and_files_the_exact_bytes_in_sent(server):
    sender, bob, hidden = server.add_user(), server.add_user(), server.add_user()
    account, store = account_for(server, sender)
    composed = compose(from_addr=f"{sender[0]}@example.com", to=[f"Bob <{bob[0]}@example.com>"],
                       bcc=[f"{hidden[0]}@example.com"], subject="Your résumé", text="Thanks!",
                       html="<p>Thanks!</p>", attachments=[("cv.txt", "text/plain", b"cv")],
                       message_id_domain="example.com")
    data, message_id = composed
    result = run(send(store, account, composed, open_imap=opener(server, sender)))   # (its envelope has the Bcc)
    assert result.message_id == message_id and result.refused == {} and result.sent_note is None
    folder, uidvalidity, uid = result.appended
    assert folder == "Sent" and uidvalidity and uid
    [(meta, body)] = fetch_all(server, sender, "Sent")
    assert body == data                                  # the exact bytes sent
    assert b"\\Seen" in meta and f"UID {uid} ".encode() in meta
    # both recipients got it; the Bcc one from the envelope only
    for who in (bob, hidden):
        [(_, got)] = fetch_all(server, who, "INBOX")
        assert got.endswith(data) and message_id.encode() in got
    [(_, bobs)] = fetch_all(server, bob, "INBOX")
    assert f"{hidden[0]}@".encode() not in bobs


def test_bcc_header_in_the_bytes_goes_to_the_envelope_only(server):
    sender, bob, hidden = server.add_user(), server.add_user(), server.add_user()
    account, store = account_for(server, sender)
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="bcc",
                      text="x", message_id_domain="example.com")
    with_bcc = data.replace(b"Subject:", f"Bcc: {hidden[0]}@example.com,\r\n other@example.com\r\nSubject:".encode(), 1)
    assert strip_bcc(with_bcc) == (data, [f"{hidden[0]}@example.com", "other@example.com"])
    # (other@example.com isn't a user: refused while the others are accepted)
    result = run(send(store, account, with_bcc, open_imap=opener(server, sender)))
    assert list(result.refused) == ["other@example.com"]
    [(_, got)] = fetch_all(server, hidden, "INBOX")
    assert got.endswith(data)
    [(_, filed)] = fetch_all(server, sender, "Sent")
    assert filed == data


def test_sent_folder_found_by_its_special_use(server):
    name, pw = f"de{id(server) % 10000}", "pw-secret"
    server.call(server.ctx.service.call("create_user", name, hash_password(pw),
                                        [("INBOX", None), ("Gesendet", "\\Sent"), ("Sent-not", None)]))
    bob = server.add_user()
    account, store = account_for(server, (name, pw))
    data, _ = compose(from_addr=f"{name}@example.com", to=[f"{bob[0]}@example.com"], subject="s", text="x",
                      message_id_domain="example.com")
    result = run(send(store, account, data, open_imap=opener(server, (name, pw))))
    assert result.appended[0] == "Gesendet"
    assert [b for _, b in fetch_all(server, (name, pw), "Gesendet")] == [data]
    # an explicit folder wins
    result = run(send(store, account, data, sent_folder="Sent-not", open_imap=opener(server, (name, pw))))
    assert result.appended[0] == "Sent-not"


def test_gmail_files_it_itself(server):
    sender, bob = server.add_user(), server.add_user()
    account, store = account_for(server, sender, imap_host="imap.gmail.com")
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="g", text="x",
                      message_id_domain="example.com")

    def never(*args):
        raise AssertionError("no IMAP session for a provider that files sent mail itself")
    result = run(send(store, account, data, open_imap=never))
    assert result.appended is None and "files sent mail itself" in result.sent_note
    assert len(fetch_all(server, bob, "INBOX")) == 1


def test_a_failed_append_after_sending_is_noted_not_raised(server):
    sender, bob = server.add_user(), server.add_user()
    account, store = account_for(server, sender)
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="a", text="x",
                      message_id_domain="example.com")

    async def broken(store, account):
        raise ConnectionRefusedError("IMAP is down")
    result = run(send(store, account, data, open_imap=broken))
    assert result.appended is None and "IMAP is down" in result.sent_note
    assert len(fetch_all(server, bob, "INBOX")) == 1


def test_errors_say_which_step_failed(server):
    sender, bob = server.add_user(), server.add_user()
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="e", text="x",
                      message_id_domain="example.com")
    account, store = account_for(server, sender)
    store.secrets[1] = {"password": "wrong"}
    with pytest.raises(SendError) as e:
        run(send(store, account, data, open_imap=opener(server, sender)))
    assert e.value.step == "auth" and e.value.code == 535
    # every recipient refused
    account, store = account_for(server, sender)
    with pytest.raises(SendError) as e:
        run(send(store, account, data, recipients=["nobody-here@example.com"], open_imap=opener(server, sender)))
    assert e.value.step == "rcpt" and "nobody-here@example.com" in str(e.value)
    # a From that isn't the user's (refused by our submission server at MAIL)
    with pytest.raises(SendError) as e:
        run(send(store, account, data, mail_from="someone-else@example.com", open_imap=opener(server, sender)))
    assert e.value.step == "mail"
    # nothing listening
    account, store = account_for(server, sender, smtp_port=1)
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "connect"
    # no SMTP server on the account
    account, store = account_for(server, sender, smtp_host=None)
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "config" and "--smtp" in str(e.value)
    assert fetch_all(server, bob, "INBOX") == [] and fetch_all(server, sender, "Sent") == []


def _server_cert_sha256(server) -> str:
    pem = ssl.get_server_certificate((server.host, server.submission_tls_port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.mark.parametrize("tls, port", [("starttls", "submission_port"), ("implicit", "submission_tls_port")])
def test_tls_with_a_pinned_certificate(server, tls, port):
    sender, bob = server.add_user(), server.add_user()
    pin = _server_cert_sha256(server)
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="tls", text="x",
                      message_id_domain="example.com")
    account, store = account_for(server, sender, smtp_tls=tls, smtp_port=getattr(server, port), tls_pin=pin)
    result = run(send(store, account, data, open_imap=opener(server, sender)))
    assert result.appended and len(fetch_all(server, bob, "INBOX")) == 1
    # the wrong pin: nothing sent
    account.tls_pin = "00" * 32
    with pytest.raises(SendError) as e:
        run(send(store, account, data, open_imap=opener(server, sender)))
    assert e.value.step == "tls" and "pinned" in str(e.value)
    # no pin, and a self-signed certificate: the CA check refuses it
    account.tls_pin = None
    with pytest.raises(SendError) as e:
        run(send(store, account, data, open_imap=opener(server, sender)))
    assert e.value.step == "tls"
    assert len(fetch_all(server, bob, "INBOX")) == 1
