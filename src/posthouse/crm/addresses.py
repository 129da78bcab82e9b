"""Email addresses as the CRM compares them, and display names split into
first and last name.

canonical(): lower-case; the domain in Unicode (an IDNA "xn--" label and its
Unicode spelling are the same domain); optionally "+detail" folded away.
Anything that is not an address raises CrmError."""
from __future__ import annotations

import re
from email.header import decode_header, make_header

from .errors import CrmError

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_ATOM_CHARS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\u0080-\ud7ff\ue000-\U0010ffff]+$")
_BAD_ANYWHERE = re.compile(r"[\x00-\x20\x7f<>,;\\]")


def canonical_domain(domain: str) -> str:
    """The domain lower-case in Unicode; CrmError if it is not a host name."""
    domain = domain.strip().rstrip(".")
    if not domain:
        raise CrmError("an address needs a domain")
    if domain.startswith("[") and domain.endswith("]"):      # an address literal
        if _BAD_ANYWHERE.search(domain[1:-1]):
            raise CrmError(f"not a domain: {domain!r}")
        return domain.lower()
    if len(domain) > 253 or _BAD_ANYWHERE.search(domain) or "@" in domain:
        raise CrmError(f"not a domain: {domain[:80]!r}")
    try:
        ascii_form = domain.encode("idna").decode("ascii").lower()   # nameprep + punycode (IDNA 2003)
        labels = ascii_form.split(".")
        if any(not _LABEL.match(label) for label in labels):
            raise ValueError
        unicode_form = ascii_form.encode("ascii").decode("idna")     # xn-- decoded: one spelling
    except (UnicodeError, ValueError):
        raise CrmError(f"not a domain: {domain[:80]!r}") from None
    return unicode_form.lower()


def canonical(address: str, *, fold_plus: bool = False) -> str:
    """The canonical form of an address (see the module's docstring)."""
    if not isinstance(address, str):
        raise CrmError("an address must be text")
    text = address.strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text or len(text) > 320:
        raise CrmError(f"not an email address: {address[:80]!r}")
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise CrmError(f"not an email address: {address[:80]!r}")
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        inner = local[1:-1]
        if '"' in inner.replace('\\"', "") or any(ord(c) < 32 or ord(c) == 127 for c in inner):
            raise CrmError(f"not an email address: {address[:80]!r}")
    else:
        if (len(local) > 64 or not _ATOM_CHARS.match(local) or local.startswith(".")
                or local.endswith(".") or ".." in local):
            raise CrmError(f"not an email address: {address[:80]!r}")
        if fold_plus and "+" in local[1:]:
            local = local[:local.index("+", 1)]
    return f"{local.lower()}@{canonical_domain(domain)}"


def maybe_canonical(address: str | None, *, fold_plus: bool = False) -> str | None:
    """canonical(), or None for anything that is not an address."""
    if not address:
        return None
    try:
        return canonical(address, fold_plus=fold_plus)
    except CrmError:
        return None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded (left as they are where they are broken)."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:       # a broken encoded word: keep the text as it came
        return text


_PAREN = re.compile(r"\s*[(\[][^)\]]*[)\]]\s*")


def clean_name(display: str | None) -> str | None:
    """A display name fit to show: decoded, unquoted, whitespace collapsed;
    None when empty or when it is only an address."""
    if not display:
        return None
    name = decode_words(display)
    name = " ".join(name.replace("\\", "").split()).strip()
    while len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].strip()
    if not name or ("@" in name and " " not in name):
        return None
    return name


def split_name(display: str | None) -> tuple[str | None, str | None]:
    """(first name, last name) from a display name: "Last, First" and
    "First Middle Last" (first word first, the rest last); comments such as
    "(Acme)" left out."""
    name = clean_name(display)
    if not name:
        return None, None
    bare = _PAREN.sub(" ", name).strip() or name
    if "," in bare:
        last, _, first = bare.partition(",")
        first, last = first.strip(), last.strip()
        if first and last and " " not in last.strip():
            return first, last
        bare = " ".join(p for p in (first, last) if p)
    words = bare.split()
    if not words:
        return None, None
    if len(words) == 1:
        return words[0], None
    return words[0], " ".join(words[1:])
