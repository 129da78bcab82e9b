"""send(): a real submission through the project's server on 127.0.0.1 with
accounts from the real AccountStore, the Sent copy filed over the real
open_session, then the exact bytes sent read back from Sent with imaplib."""
from __future__ import annotations

import asyncio
import hashlib
import imaplib
import ssl

import pytest

from posthouse.auth.passwords import hash_password
from posthouse.send import SendError, compose, send
from posthouse.send.sent import strip_bcc

from .conftest import add_account


def run(coro):
    return asyncio.run(coro)


def fetch_all(server, user, folder):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.select(f'"{folder}"', readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    c.logout()
    return [(item[0], item[1]) for item in data if isinstance(item, tuple)]


def test_send_submits_and_files_the_exact_bytes_in_sent(server, accounts):
    sender, bob, hidden = server.add_user(), server.add_user(), server.add_user()
    account, store = add_account(accounts, server, sender), accounts
    composed = compose(from_addr=f"{sender[0]}@example.com", to=[f"Bob <{bob[0]}@example.com>"],
                       bcc=[f"{hidden[0]}@example.com"], subject="Your résumé", text="Thanks!",
                       html="<p>Thanks!</p>", attachments=[("cv.txt", "text/plain", b"cv")],
                       message_id_domain="example.com")
    data, message_id = composed
    result = run(send(store, account, composed))   # (its envelope has the Bcc)
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


def test_bcc_header_in_the_bytes_goes_to_the_envelope_only(server, accounts):
    sender, bob, hidden = server.add_user(), server.add_user(), server.add_user()
    account, store = add_account(accounts, server, sender), accounts
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="bcc",
                      text="x", message_id_domain="example.com")
    with_bcc = data.replace(b"Subject:", f"Bcc: {hidden[0]}@example.com,\r\n other@example.com\r\nSubject:".encode(), 1)
    assert strip_bcc(with_bcc) == (data, [f"{hidden[0]}@example.com", "other@example.com"])
    # (other@example.com isn't a user: refused while the others are accepted)
    result = run(send(store, account, with_bcc))
    assert list(result.refused) == ["other@example.com"]
    [(_, got)] = fetch_all(server, hidden, "INBOX")
    assert got.endswith(data)
    [(_, filed)] = fetch_all(server, sender, "Sent")
    assert filed == data


def test_sent_folder_found_by_its_special_use(server, accounts):
    name, pw = f"de{id(server) % 10000}", "pw-secret"
    server.call(server.ctx.service.call("create_user", name, hash_password(pw),
                                        [("INBOX", None), ("Gesendet", "\\Sent"), ("Sent-not", None)]))
    bob = server.add_user()
    account, store = add_account(accounts, server, (name, pw)), accounts
    data, _ = compose(from_addr=f"{name}@example.com", to=[f"{bob[0]}@example.com"], subject="s", text="x",
                      message_id_domain="example.com")
    result = run(send(store, account, data))
    assert result.appended[0] == "Gesendet"
    assert [b for _, b in fetch_all(server, (name, pw), "Gesendet")] == [data]
    # an explicit folder wins
    result = run(send(store, account, data, sent_folder="Sent-not"))
    assert result.appended[0] == "Sent-not"


def test_gmail_files_it_itself(server, accounts):
    sender, bob = server.add_user(), server.add_user()
    account, store = add_account(accounts, server, sender, imap_host="imap.gmail.com"), accounts
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="g", text="x",
                      message_id_domain="example.com")

    def never(*args):
        raise AssertionError("no IMAP session for a provider that files sent mail itself")
    result = run(send(store, account, data, open_imap=never))
    assert result.appended is None and "files sent mail itself" in result.sent_note
    assert len(fetch_all(server, bob, "INBOX")) == 1


def test_a_failed_append_after_sending_is_noted_not_raised(server, accounts):
    sender, bob = server.add_user(), server.add_user()
    account, store = add_account(accounts, server, sender), accounts
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="a", text="x",
                      message_id_domain="example.com")

    async def broken(store, account):
        raise ConnectionRefusedError("IMAP is down")
    result = run(send(store, account, data, open_imap=broken))
    assert result.appended is None and "IMAP is down" in result.sent_note
    assert len(fetch_all(server, bob, "INBOX")) == 1


def test_errors_say_which_step_failed(server, accounts):
    sender, bob = server.add_user(), server.add_user()
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="e", text="x",
                      message_id_domain="example.com")
    store = accounts
    account = add_account(accounts, server, sender, secret={"password": "wrong"})
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "auth" and e.value.code == 535
    # every recipient refused
    account, store = add_account(accounts, server, sender), accounts
    with pytest.raises(SendError) as e:
        run(send(store, account, data, recipients=["nobody-here@example.com"]))
    assert e.value.step == "rcpt" and "nobody-here@example.com" in str(e.value)
    # a From that isn't the user's (refused by our submission server at MAIL)
    with pytest.raises(SendError) as e:
        run(send(store, account, data, mail_from="someone-else@example.com"))
    assert e.value.step == "mail"
    # nothing listening
    account, store = add_account(accounts, server, sender, smtp_port=1), accounts
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "connect"
    # no SMTP server on the account
    account, store = add_account(accounts, server, sender, smtp_host=None), accounts
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "config" and "--smtp" in str(e.value)
    assert fetch_all(server, bob, "INBOX") == [] and fetch_all(server, sender, "Sent") == []


def _server_cert_sha256(server) -> str:
    pem = ssl.get_server_certificate((server.host, server.submission_tls_port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.mark.parametrize("tls, port", [("starttls", "submission_port"), ("implicit", "submission_tls_port")])
def test_tls_with_a_pinned_certificate(server, accounts, tls, port):
    sender, bob = server.add_user(), server.add_user()
    pin = _server_cert_sha256(server)
    data, _ = compose(from_addr=f"{sender[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="tls", text="x",
                      message_id_domain="example.com")
    account, store = add_account(accounts, server, sender, smtp_tls=tls, smtp_port=getattr(server, port),
                                 tls_pin=pin), accounts
    result = run(send(store, account, data))
    assert result.appended and len(fetch_all(server, bob, "INBOX")) == 1
    # the wrong pin: nothing sent
    account.tls_pin = "00" * 32
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "tls" and "pinned" in str(e.value)
    # no pin, and a self-signed certificate: the CA check refuses it
    account.tls_pin = None
    with pytest.raises(SendError) as e:
        run(send(store, account, data))
    assert e.value.step == "tls"
    assert len(fetch_all(server, bob, "INBOX")) == 1


def test_local_account_sends_through_our_submission_as_the_service_identity(server, accounts):
    """A --local account: no password anywhere; submission and the Sent copy both
    log in as the service identity acting as the owner."""
    (name, _pw), bob = server.add_user(), server.add_user()
    account = accounts.add(kind="local", auth="service", owner=name, login=name, imap_host=server.host,
                           imap_port=server.port, imap_tls="none", smtp_host=server.host,
                           smtp_port=server.submission_port, smtp_tls="none", addresses=[f"{name}@example.com"])
    composed = compose(from_addr=f"{name}@example.com", to=[f"{bob[0]}@example.com"], subject="local",
                       text="from the web app", message_id_domain="example.com")
    result = run(send(accounts, account, composed))
    assert result.appended and result.appended[0] == "Sent"
    assert [b for _, b in fetch_all(server, (name, _pw), "Sent")] == [composed.message]
    [(_, got)] = fetch_all(server, bob, "INBOX")
    assert got.endswith(composed.message)
    # the service identity can't send as someone else's address (our server's From check still holds)
    other = server.add_user()
    forged = compose(from_addr=f"{other[0]}@example.com", to=[f"{bob[0]}@example.com"], subject="forged",
                     text="x", message_id_domain="example.com")
    with pytest.raises(SendError) as e:
        run(send(accounts, account, forged))
    assert e.value.step == "mail"


def test_no_sent_folder_at_all_is_noted(server, accounts):
    name, pw = f"nosent{id(accounts) % 100000}", "pw-secret"
    server.call(server.ctx.service.call("create_user", name, hash_password(pw), [("INBOX", None)]))
    bob = server.add_user()
    account = add_account(accounts, server, (name, pw))
    data, _ = compose(from_addr=f"{name}@example.com", to=[f"{bob[0]}@example.com"], subject="n", text="x",
                      message_id_domain="example.com")
    result = run(send(accounts, account, data))
    assert result.appended is None and "no copy filed in Sent" in result.sent_note
    assert len(fetch_all(server, bob, "INBOX")) == 1          # (sent all the same)
