"""What a user name may be: one rule for every way a user is made."""
from __future__ import annotations

import unicodedata

MAX_LENGTH = 255


def check_user_name(name: str, domains: list[str] | None = None) -> None:
    """ValueError, saying why, unless name can be a user: no spaces or control
    characters (LMTP, SMTP and IMAP LOGIN could never carry them), and an `@`
    only as name@domain with the domain one of `domains` (mail for it comes here)."""
    if not name:
        raise ValueError("a user name can't be empty")
    if len(name) > MAX_LENGTH:
        raise ValueError(f"a user name is at most {MAX_LENGTH} characters")
    for ch in name:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ValueError(f"user name {name!r} has a space or control character; "
                             "mail could never be delivered to it")
    local, at, domain = name.rpartition("@")
    if at:
        served = {d.lower() for d in domains or ()}
        if not local or "@" in local or domain.lower() not in served:
            raise ValueError(f"user name {name!r}: an @ may only make an address in this server's domains "
                             f"({', '.join(sorted(served)) or 'none'}); use a plain name or name@one-of-those")
