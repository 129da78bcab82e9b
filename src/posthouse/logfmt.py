"""Log lines a person (or a log shipper) can read.

One line per delivery, one per login and per logout, on every protocol;
`log_format = "json"` makes each line one JSON object (time, level, logger,
message and the line's fields) for a log shipper. aiosmtpd's own logger
("mail.log") writes several INFO lines per SMTP command: it is kept to its
warnings.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import time

login_log = logging.getLogger("posthouse.login")
delivery_log = logging.getLogger("posthouse.delivery")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    the record's structured fields (extra={"fields": {...}}), and exc_info as text."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """The root logger's one handler (stderr) with the text or the JSON format."""
    if fmt not in ("text", "json"):
        raise ValueError('log_format must be "text" or "json"')
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    os.environ["POSTHOUSE_LOG_FORMAT"] = fmt        # for the store process, which logs on the same stderr
    quiet_aiosmtpd()


def quiet_aiosmtpd() -> None:
    # "mail.log" says at INFO every connection, command and reply (about five
    # lines per LMTP message); deliveries are logged once, by us (log_delivery).
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def _quote(value) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


def log_event(logger: logging.Logger, level: int, event: str, fields: dict) -> None:
    """'event key=value ...' as the text line; the fields as themselves for JSON."""
    if logger.isEnabledFor(level):
        text = " ".join([event] + [f"{k}={_quote(v)}" for k, v in fields.items()])
        logger.log(level, "%s", text, extra={"fields": {"event": event, **fields}})


class LoginLog:
    """A session's login and logout lines (user, protocol, peer, TLS, duration)."""

    def __init__(self, protocol: str, peer: str):
        self.protocol = protocol
        self.peer = peer
        self.user: str | None = None
        self.tls = False
        self._since = 0.0

    def login(self, user: str, tls: bool) -> None:
        self.user, self.tls, self._since = user, bool(tls), time.monotonic()
        log_event(login_log, logging.INFO, "login",
              {"user": user, "protocol": self.protocol, "peer": self.peer, "tls": "yes" if tls else "no"})

    def failed(self, user: str, tls: bool) -> None:
        log_event(login_log, logging.INFO, "login-failed",
              {"user": user, "protocol": self.protocol, "peer": self.peer, "tls": "yes" if tls else "no"})

    def logout(self) -> None:
        """The session has ended (or logged out): one line if it was logged in."""
        if self.user is None:
            return
        seconds = round(time.monotonic() - self._since, 3)
        log_event(login_log, logging.INFO, "logout",
              {"user": self.user, "protocol": self.protocol, "peer": self.peer,
               "tls": "yes" if self.tls else "no", "seconds": seconds})
        self.user = None


def log_delivery(ident: str, mail_from: str, results, size: int, started: float, journal: bool) -> None:
    """One line for a message handed to local delivery: its recipients and each
    one's result ("accepted": answered from the arrivals journal, filed just after)."""
    outcome = []
    for r in results:
        if r.ok:
            what = "accepted" if journal else ("discarded" if r.uid is None and "Discard" in r.text else "delivered")
        else:
            what = f"{r.code} {r.status}"
        outcome.append(f"{r.recipient.address}:{what}")
    failed = any(not r.ok for r in results)
    log_event(delivery_log, logging.INFO, "delivery",
          {"id": ident or "-", "from": mail_from or "<>", "to": ",".join(r.recipient.address for r in results),
           "size": size, "result": ",".join(outcome), "ms": round((time.monotonic() - started) * 1000, 1),
           **({"failed": True} if failed else {})})
