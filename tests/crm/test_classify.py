"""The reply sorter (crm/classify): the labelled set (tests/data/replies) as labelled,
in full, in the tracker's skeleton form and with CRLF line ends; provider texts
to reasons; garbage and fuzz never raise; `posthouse classify` as a command."""
from __future__ import annotations

import copy
import email
import json
import os
import subprocess
import sys
from email.message import Message
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from posthouse.crm.classify import KINDS, REASONS, Classification, classify
from posthouse.crm.classify.reasons import is_hard, reason_of

SET = os.path.join(os.path.dirname(__file__), "..", "data", "replies")
with open(os.path.join(SET, "labels.json"), encoding="utf-8") as f:
    LABELS = json.load(f)
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))

# Labelled messages the sorter gets wrong and why (none at the moment; an entry here
# turns the file's test into an xfail with that reason).
KNOWN_WRONG: dict[str, str] = {}


def _read(path: str) -> bytes:
    with open(os.path.join(SET, path), "rb") as f:
        return f.read()


def _check(path: str, got: Classification) -> None:
    want = LABELS[path]
    assert got.kind == want["kind"]
    assert got.hard == want["hard"]
    assert got.reason == want["reason"]
    assert [r.address for r in got.recipients] == [r["address"] for r in want["recipients"]]
    if want["kind"] == "bounce":
        assert [(r.status, r.hard, r.reason) for r in got.recipients] == \
            [(r["status"], r["hard"], r["reason"]) for r in want["recipients"]]
    if "original_message_id" in want:
        assert got.original_message_id == want["original_message_id"]


def _params():
    return [pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN_WRONG[p], strict=True)) if p in KNOWN_WRONG else p
            for p in sorted(LABELS)]


def test_the_set_is_large_and_spread():
    kinds = [v["kind"] for v in LABELS.values()]
    assert len(kinds) >= 60
    assert set(kinds) == set(KINDS)
    for path, label in LABELS.items():
        assert os.path.exists(os.path.join(SET, path)), path
        assert path.split("/")[0] == label["kind"]
        assert label["reason"] is None or label["reason"] in REASONS


@pytest.mark.parametrize("path", _params())
def test_labelled_message(path):
    _check(path, classify(_read(path)))


def skeleton(raw: bytes) -> bytes:
    """What the tracker keeps (tracker/facts.py MessageSeen.skeleton): the header, text
    parts and report parts; every other leaf's body removed; of an attached message
    only its header."""
    msg = email.message_from_bytes(raw, policy=compat32)
    keep = {"message/delivery-status", "message/global-delivery-status", "message/feedback-report",
            "text/rfc822-headers", "message/disposition-notification"}

    def strip(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload(0)
            inner.set_payload("")
            return
        if part.is_multipart():
            for sub in part.get_payload():
                strip(sub)
            return
        if part.get_content_maintype() != "text" and ctype not in keep:
            part.set_payload("")

    strip(msg)
    return msg.as_bytes()


@pytest.mark.parametrize("path", _params())
def test_labelled_message_as_skeleton(path):
    raw = _read(path)
    shrunk = skeleton(raw)
    if "message/rfc822" in raw.decode("latin-1").lower():
        assert len(shrunk) < len(raw)     # the returned message's body really went
    _check(path, classify(shrunk))


@pytest.mark.parametrize("path", sorted(LABELS)[::5])
def test_labelled_message_with_crlf(path):
    raw = _read(path).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if path in KNOWN_WRONG:
        pytest.xfail(KNOWN_WRONG[path])
    _check(path, classify(raw))


def test_bounce_skeleton_with_binary_attachment_removed():
    """A bounce that returns the whole message, PDF included: the skeleton drops the PDF
    and the returned body and still names the recipient and the original Message-ID."""
    raw = _read("bounce/postfix_to_gmail_nosuchuser.eml").decode()
    pdf = ("Content-Type: multipart/mixed; boundary=\"inner\"\n\n--inner\nContent-Type: text/plain\n\nSee the CV.\n"
           "--inner\nContent-Type: application/pdf; name=cv.pdf\nContent-Transfer-Encoding: base64\n\n"
           + "JVBERi0xLjQK" * 2000 + "\n--inner--\n")
    raw = raw.replace("Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 7bit\n", pdf, 1)
    full = classify(raw.encode())
    small = skeleton(raw.encode())
    assert len(small) < len(raw) // 4
    for got in (full, classify(small)):
        assert got.kind == "bounce" and got.reason == "userunknown" and got.hard is True
        assert [(r.address, r.status) for r in got.recipients] == [("no.such.person.4711@gmail.com", "5.1.1")]
        assert got.original_message_id == LABELS["bounce/postfix_to_gmail_nosuchuser.eml"]["original_message_id"]


@pytest.mark.parametrize("status, text, reason, hard", [
    ("5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking", "userunknown", True),
    ("5.5.0", "550 5.5.0 Requested action not taken: mailbox unavailable", "userunknown", True),
    ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "userunknown", True),
    ("5.1.1", "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", "userunknown", True),
    (None, "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]", "userunknown", True),
    ("4.2.2", "452 4.2.2 The email account that you tried to reach is over quota", "mailboxfull", False),
    ("5.2.2", "552 5.2.2 Mailbox full", "mailboxfull", False),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "blocked", False),
    ("5.7.26", "550-5.7.26 Unauthenticated email from x.example is not accepted due to domain's DMARC policy", "authfailure", False),
    ("5.7.1", "550 5.7.1 Message rejected: SPF check failed for sender", "authfailure", False),
    ("5.7.1", "550 5.7.1 DKIM signature verification failed", "authfailure", False),
    ("5.0.0", "Host or domain name not found. Name service error for name=x.example type=A: Host not found", "hostunknown", True),
    ("5.7.1", "554 5.7.1 <a@b.example>: Relay access denied", "norelaying", False),
    ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "mesgtoobig", False),
    ("4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume", "ratelimited", False),
    ("5.7.1", "550 5.7.1 Our system has detected that this message is likely unsolicited mail", "spamdetected", False),
    ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled", "suspend", False),
    ("5.1.6", "551 5.1.6 User has moved; please try <c@d.example>", "hasmoved", True),
    ("5.0.0", "", "onhold", True),
    (None, "something nobody wrote before", "undefined", True),
])
def test_provider_texts_to_reasons(status, text, reason, hard):
    got = reason_of(status, text)
    assert got == reason
    assert is_hard(got, status) is hard


def test_an_address_in_the_text_does_not_decide():
    assert reason_of("5.1.1", "550 5.1.1 <spamhaus-fan@example.org>: User unknown") == "userunknown"
    assert reason_of(None, "550 <quota@example.org>: no such user") == "userunknown"


def test_every_4xx_is_soft():
    assert is_hard("userunknown", "4.1.1") is False
    assert is_hard("hostunknown", None, permanent=False) is False


def test_person_quoting_a_bounce_is_a_reply():
    got = classify(_read("reply/reply_quoting_a_bounce.eml"))
    assert got.kind == "reply" and got.recipients == [] and got.hard is None


def test_to_json_has_exactly_the_contract_keys():
    got = classify(_read("bounce/postfix_two_recipients.eml")).to_json("x.eml")
    assert list(got) == ["file", "kind", "hard", "reason", "recipients"]
    assert all(list(r) == ["address", "status", "hard", "reason"] for r in got["recipients"])
    assert list(classify(b"").to_json()) == ["kind", "hard", "reason", "recipients"]


GARBAGE = [b"", b"\x00" * 100, b"\xff\xfe garbage", b"From: \n\n", b"Content-Type: multipart/report\n\n--",
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
           b"Content-Type: message/delivery-status\n\nFinal-Recipient: ;\nAction: failed\nStatus: 9.9\n--x--\n",
           b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!!",
           b"Subject: =?utf-8?b?////?=\nFrom: =?x-unknown?q?a?= <@>\nIn-Reply-To: <<<>>>\n\n",
           b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 500,
           b"X: " + b"a" * 1_000_000 + b"\n\nbody",
           "Subject: Out of Office\nFrom: \udcff\n\n".encode("utf-8", "surrogateescape")]


@pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_never_raises(raw):
    got = classify(raw)
    assert got.kind in KINDS
    json.dumps(got.to_json("f"))


_MAILER = b"From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\nReturn-Path: <>\n\n"
LARGE = {       # shapes that once made a pattern quadratic, and big bounces: each must finish (no time asserted)
    "blank-run": _MAILER + b" " * 200_000,
    "blank-lines": _MAILER + b"        \n" * 20_000 + b"x",
    "header-blank-run": b"Subject: " + b" " * 500_000 + b"x\n\n",
    "qmail-many": _MAILER + b"Hi. This is the qmail-send program\n" + b"<a@b.example>:\nx\n" * 5000,
    "exim-many": _MAILER + b"This message was created automatically by mail delivery software.\n"
                 b"The following address(es) failed:\n\n" + b"  a@b.example\n    x\n" * 5000,
    "dsn-many": b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
                b"Content-Type: message/delivery-status\n\n" + b"Final-Recipient: rfc822; a@b.example\nAction: failed\n"
                b"Status: 5.1.1\n\n" * 2000 + b"--x--\n",
}


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_and_pathological_inputs_finish(name):
    got = classify(LARGE[name])
    assert got.kind in KINDS


def _mail(subject, body, *, to="anna@posthouse.example", headers=""):
    return (f"From: Someone <someone@example.org>\nTo: {to}\nSubject: {subject}\n{headers}"
            f"Message-ID: <x1@example.org>\n\n{body}").encode()


@pytest.mark.parametrize("subject, body, to, kind", [
    ("Remove the old logo", "Can you remove the old logo from the footer?", "anna@posthouse.example", "other"),
    ("Re: Meeting", "Please remove me from the meeting invite, I can't make it.", "anna@posthouse.example", "reply"),
    ("Re: Slides", "Don't email me the slides, just bring them along.", "anna@posthouse.example", "reply"),
    ("Re: Newsletter", "Please don't unsubscribe me, I just changed my address.", "anna@posthouse.example", "reply"),
    ("Holiday request", "I'd like to take Friday off.", "leave@posthouse.example", "other"),
    ("Re: Newsletter", "Please take me off your mailing list.", "anna@posthouse.example", "unsubscribe"),
    ("Re: Offer", "Don't contact me again.", "anna@posthouse.example", "unsubscribe"),
    ("stop", "", "anna@posthouse.example", "unsubscribe"),
    ("", "", "news-leave@lists.posthouse.example", "unsubscribe"),
])
def test_unsubscribe_wants_a_request(subject, body, to, kind):
    headers = "In-Reply-To: <orig@posthouse.example>\n" if subject.startswith("Re:") else ""
    assert classify(_mail(subject, body, to=to, headers=headers)).kind == kind


@pytest.mark.parametrize("subject", [
    "Automatic reply: Offer", "Out of Office: Offer", "Abwesenheitsnotiz: Angebot", "Automatische Antwort: Angebot",
    "Réponse automatique : Offre", "Respuesta automática: Oferta", "Risposta automatica: Offerta",
    "Automatisch antwoord: Aanbod", "Autosvar: Erbjudande", "Automatisk svar: Tilbud", "Automaattinen vastaus: Tarjous",
    "Automatyczna odpowiedź: Oferta", "Automatická odpověď: Nabídka", "Resposta automática: Oferta",
    "Автоматический ответ: Предложение", "自动回复: 报价", "自動返信: 見積もり", "Jane Doe is out of the office.",
])
def test_auto_reply_subjects_in_many_languages(subject):
    raw = f"From: Jane <jane@example.org>\nSubject: {subject}\n\nAway.\n".encode()
    assert classify(raw).kind == "auto-reply"


def test_as_dict_carries_the_original_message_id():
    got = classify(_read("bounce/exim_userunknown.eml"))
    assert got.as_dict()["original_message_id"] == LABELS["bounce/exim_userunknown.eml"]["original_message_id"]
    assert got.as_dict()["recipients"] == got.to_json()["recipients"]


def test_unknown_text_format_gives_each_recipient_its_own_paragraph():
    raw = (b"From: Mailer <MAILER-DAEMON@odd.example>\nTo: anna@posthouse.example\nSubject: Undeliverable mail\n\n"
           b"Your message could not be delivered to some recipients.\n\nRecipient: a@one.example\nReason: 550 5.1.1 user unknown\n\n"
           b"Recipient: b@two.example\nReason: 552 5.2.2 mailbox full\n")
    got = classify(raw)
    assert [(r.address, r.status, r.hard, r.reason) for r in got.recipients] == [
        ("a@one.example", "5.1.1", True, "userunknown"), ("b@two.example", "5.2.2", False, "mailboxfull")]


def test_an_out_of_office_about_delivery_is_no_bounce():
    raw = (b"Return-Path: <>\nFrom: Jo <jo@example.org>\nSubject: Automatic reply: mail delivery failed?\n"
           b"Auto-Submitted: auto-replied\n\nI am out of the office until Monday.\n")
    assert classify(raw).kind == "auto-reply"


def test_not_bytes_is_other():
    assert classify(None).kind == "other"       # type: ignore[arg-type]
    assert classify(12).kind == "other"         # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes(raw):
    assert classify(raw).kind in KINDS


_SAMPLES = [_read(p) for p in sorted(LABELS)[::4]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SAMPLES), st.integers(0, 10_000), st.integers(0, 10_000), st.binary(max_size=40))
def test_fuzz_damaged_real_shapes(raw, cut, at, junk):
    """Truncated and spliced copies of real shapes: never an exception, always a kind."""
    damaged = raw[: max(cut, 1) * 4 % (len(raw) + 1)]
    i = at % (len(damaged) + 1)
    damaged = damaged[:i] + junk + damaged[i:]
    got = classify(damaged)
    assert got.kind in KINDS
    assert all(r.reason is None or r.reason in REASONS for r in got.recipients)


def _cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "posthouse", "classify", *args], input=stdin,
                          capture_output=True, env=env, timeout=60)


def test_cli_prints_one_json_line_per_file_and_fails_for_unreadable(tmp_path):
    files = [os.path.join(SET, "bounce/exim_two_failures.eml"), str(tmp_path / "missing.eml"),
             os.path.join(SET, "auto-reply/exchange_oof_automatic_reply.eml")]
    proc = _cli(*files)
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(lines) == 3
    assert lines[0] == {"file": files[0], "kind": "bounce", "hard": True, "reason": "userunknown", "recipients": [
        {"address": "anne@example.co.uk", "status": "5.1.1", "hard": True, "reason": "userunknown"},
        {"address": "bert@example.co.uk", "status": "5.7.1", "hard": False, "reason": "norelaying"}]}
    assert lines[1]["file"] == files[1] and "error" in lines[1]
    assert lines[2] == {"file": files[2], "kind": "auto-reply", "hard": None, "reason": None, "recipients": []}


def test_cli_all_readable_exits_0_and_reads_stdin():
    proc = _cli("-", stdin=_read("complaint/yahoo_fbl.eml"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"file": "-", "kind": "complaint", "hard": None, "reason": None,
                                       "recipients": [{"address": "reader@yahoo.com", "status": None, "hard": None, "reason": None}]}


def test_accuracy_report_runs():
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "posthouse.crm.classify.accuracy", SET], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"kind, all messages:" in proc.stdout and b"bounce reason:" in proc.stdout


def test_classification_is_a_copyable_value():
    got = classify(_read("bounce/postfix_two_recipients.eml"))
    assert copy.deepcopy(got) == got
