"""What the server advertises, by connection state."""
from __future__ import annotations

BASE = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
AFTER_AUTH = ["NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "LIST-EXTENDED",
              "LIST-STATUS", "SPECIAL-USE", "STATUS=SIZE", "ESEARCH", "SEARCHRES",
              "CONDSTORE", "QRESYNC", "NOTIFY",
              "MULTIAPPEND", "CATENATE", "URLAUTH", "URLAUTH=BINARY", "BINARY", "UTF8=ACCEPT", "SORT", "SORT=DISPLAY", "ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT",
              "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
              "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "SAVEDATE"]


def plaintext_allowed(session) -> bool:
    conn = session.conn
    mode = session.ctx.config.plaintext_auth
    if conn.tls or mode == "always":
        return True
    return mode == "loopback" and conn.is_loopback


def capabilities(session) -> list[str]:
    caps = list(BASE)
    if session.state == "not-authenticated":
        if session.ctx.tls_context is not None and not session.conn.tls:
            caps.append("STARTTLS")
        if plaintext_allowed(session):
            caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
        else:
            caps.append("LOGINDISABLED")
        return caps
    caps += AFTER_AUTH
    caps.append(f"APPENDLIMIT={session.ctx.config.max_message_size}")
    return caps
