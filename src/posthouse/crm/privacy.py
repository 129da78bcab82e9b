"""Private lists: addresses and domains whose mail is never logged, for one
user (owner) or the whole server (owner None); and the privacy levels of
what is stored of a message."""
from __future__ import annotations

import re

from .addresses import canonical, canonical_domain
from .errors import CrmError

LEVELS = ("metadata", "snippet", "full")       # least to most stored


def level_rank(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else 0     # unknown: the least


def canonical_entry(entry: str, *, fold_plus: bool = False) -> str:
    """An address (canonical) or a domain (canonical; "@example.com" and
    "*.example.com" mean the domain)."""
    if not isinstance(entry, str) or not entry.strip():
        raise CrmError("a private entry is an address or a domain")
    entry = entry.strip()
    if entry.startswith("*."):
        entry = entry[2:]
    if entry.startswith("@"):
        entry = entry[1:]
    if "@" in entry:
        return canonical(entry, fold_plus=fold_plus)
    return canonical_domain(entry)


def _domain_forms(domain: str) -> set[str]:
    forms = {domain}
    try:
        forms.add(domain.encode("idna").decode("ascii"))
    except UnicodeError:
        pass
    return forms


class PrivateList:
    """The entries that apply to one owner: theirs and the server's."""

    def __init__(self, entries: set[str]):
        self.addresses = {e for e in entries if "@" in e}
        self.domains = {e for e in entries if "@" not in e}
        words = []
        for a in sorted(self.addresses):
            local, _, domain = a.rpartition("@")
            words += [re.escape(local) + "@" + re.escape(d) for d in _domain_forms(domain)]
        for d in sorted(self.domains):
            words += [r"(?:[\w-]+\.)*" + re.escape(form) for form in _domain_forms(d)]
        # An entry as a whole word of the text: "x@a.com" not in "ax@a.com"; "a.com" in "mail.a.com".
        self._pattern = (re.compile(r"(?<![\w.+-])(?:" + "|".join(words) + r")(?![\w-]|\.[\w-])", re.I)
                         if words else None)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains)

    def address_is_private(self, address: str) -> bool:
        if address in self.addresses:
            return True
        domain = address.rpartition("@")[2]
        return any(domain == d or domain.endswith("." + d) for d in self.domains)

    def text_is_private(self, text: str) -> bool:
        return bool(self._pattern and text and self._pattern.search(text))
