"""Addresses as the CRM compares them, and display names split into names."""
import pytest

from posthouse.crm.addresses import canonical, canonical_domain, split_name
from posthouse.crm.errors import CrmError
from posthouse.crm.freemail import company_name, is_free_mail


@pytest.mark.parametrize("written, expected", [
    ("Foo.Bar@Example.COM", "foo.bar@example.com"),
    ("  <foo@example.com>  ", "foo@example.com"),
    ("mailto:Foo@Example.com", "foo@example.com"),
    ("a@xn--bcher-kva.example", "a@bücher.example"),
    ("A@BÜCHER.example", "a@bücher.example"),
    ("a@bücher.example.", "a@bücher.example"),
    ("x+tag@a.org", "x+tag@a.org"),
    ('"john doe"@a.org', '"john doe"@a.org'),
    ("x@[192.0.2.1]", "x@[192.0.2.1]"),
    ("jürgen@müller.de", "jürgen@müller.de"),
])
def test_canonical(written, expected):
    assert canonical(written) == expected


def test_plus_detail_folding_is_optional():
    assert canonical("Ann+News@a.org") == "ann+news@a.org"
    assert canonical("Ann+News@a.org", fold_plus=True) == "ann@a.org"
    assert canonical("+leading@a.org", fold_plus=True) == "+leading@a.org"


@pytest.mark.parametrize("garbage", [
    "", "   ", "plain", "@a.org", "a@", "a@@b.org", "a b@c.org", "a@b c.org", "a@-x.org", "a@x..org",
    "a@.org", ".a@b.org", "a..b@c.org", "a@b.org>", "<a@b,c.org>", "a@xn--zz.org", "a\x00@b.org",
    "a@b\x00.org", "x" * 65 + "@a.org", "a@" + "b" * 64 + ".org", "a\udcff@b.org", "a@b\udcff.org",
    '"un"closed"@a.org', "a@b.org@c.org",
])
def test_garbage_is_refused_with_crmerror(garbage):
    with pytest.raises(CrmError):
        canonical(garbage)


def test_non_text_is_refused():
    with pytest.raises(CrmError):
        canonical(None)     # type: ignore[arg-type]
    with pytest.raises(CrmError):
        canonical_domain("")


@pytest.mark.parametrize("display, first, last", [
    ("John Doe", "John", "Doe"),
    ("Doe, John", "John", "Doe"),
    ('"Doe, John"', "John", "Doe"),
    ("'Ann Smith'", "Ann", "Smith"),
    ("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?=", "Jürgen", "Müller"),
    ("=?iso-8859-1?q?Fran=E7ois?= Dupont", "François", "Dupont"),
    ("Mary Ann van Dyke", "Mary", "Ann van Dyke"),
    ("Jane Public (Acme)", "Jane", "Public"),
    ("Madonna", "Madonna", None),
    ("jane@example.com", None, None),
    ("", None, None),
    (None, None, None),
    ("=?broken?x?", "=?broken?x?", None),
])
def test_split_name(display, first, last):
    assert split_name(display) == (first, last)


def test_free_mail_and_company_names():
    for domain in ("gmail.com", "googlemail.com", "hotmail.co.uk", "yahoo.fr", "gmx.de", "web.de", "proton.me",
                   "yandex.ru", "mail.ru", "icloud.com", "outlook.com", "fastmail.com"):
        assert is_free_mail(domain), domain
    assert not is_free_mail("acme.com")
    assert company_name("mail.acme.co.uk") == "Acme"
    assert company_name("example.com") == "Example"
