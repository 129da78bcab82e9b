"""Server configuration: TOML file, with defaults for a local, unprivileged run."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields


@dataclass
class Config:
    data_dir: str = "posthouse-data"
    imap_host: str = "127.0.0.1"
    imap_port: int = 1143              # 143 in production
    imap_tls_port: int | None = 1993   # implicit TLS; 993 in production; None disables
    tls_cert: str | None = None        # PEM; a self-signed pair is made in data_dir if unset
    tls_key: str | None = None
    max_message_size: int = 64 * 1024 * 1024   # APPENDLIMIT
    max_line: int = 64 * 1024
    # Plaintext LOGIN/AUTHENTICATE outside TLS only from loopback peers.
    plaintext_auth: str = "loopback"   # "loopback" | "always" | "never"
    failure_delay: float = 1.0
    max_auth_failures: int = 3
    # A password verified this recently is not hashed again (0: always hash).
    auth_cache_ttl: float = 3600
    idle_timeout: float = 30 * 60
    # Hostile clients (every protocol): a client must log in within login_timeout
    # seconds of connecting; a command line (or literal) once begun must arrive
    # within line_timeout (slow senders are cut off); open connections are
    # limited in all and per client address (IPv6: per /64). 0: no limit.
    login_timeout: float = 60
    line_timeout: float = 60
    max_connections: int = 5000
    max_connections_per_ip: int = 100
    # Failed logins slow further attempts from that address (and at that account,
    # from addresses that failed too), over every connection and protocol: waits
    # double from failure_delay up to auth_throttle_max; forgotten after auth_throttle_forget.
    auth_throttle_max: float = 60
    auth_throttle_forget: float = 3600
    # LMTP, for an MTA to hand over mail: TCP (None disables) and/or a unix socket.
    lmtp_host: str = "127.0.0.1"
    lmtp_port: int | None = 2424       # 24 in production
    lmtp_socket: str | None = None
    lmtp_timeout: float = 300
    # Inbound SMTP, for mail from the Internet to the domains below (None disables).
    smtp_host: str = "127.0.0.1"
    smtp_port: int | None = 2525       # 25 in production
    smtp_timeout: float = 300
    # The mail domains this server is the destination for: inbound SMTP takes
    # mail for these only (anything else is relaying, refused).
    domains: list = field(default_factory=list)
    # POP3 (None disables either port): STLS on the first, implicit TLS on the second.
    pop3_host: str = "127.0.0.1"
    pop3_port: int | None = 1110       # 110 in production
    pop3_tls_port: int | None = 1995   # 995 in production
    pop3_timeout: float = 600          # RFC 1939: at least 10 minutes
    # Submission (RFC 6409) for users' mail clients: STARTTLS port and implicit-TLS port.
    submission_host: str = "127.0.0.1"
    submission_port: int | None = 1587      # 587 in production
    submission_tls_port: int | None = 1465  # 465 in production
    submission_save_sent: bool = False      # file a copy in the sender's Sent mailbox
    # A From:/Sender: that is not the user's own address: refuse the message, or rewrite the field.
    submission_from_policy: str = "refuse"  # refuse | rewrite
    # The smarthost submitted mail for other domains is relayed through (none: refused).
    relay_host: str = ""
    relay_port: int = 587
    relay_tls: str = "starttls"             # starttls | tls | none
    relay_user: str = ""
    relay_password: str = ""
    relay_verify: bool = True               # check the smarthost's certificate
    relay_timeout: float = 60
    relay_retry_base: float = 60            # first retry after this, then doubling, up to 64x
    relay_lifetime: float = 5 * 86400       # then a bounce
    # ManageSieve (RFC 5804), for users to manage their Sieve scripts (None disables).
    managesieve_host: str = "127.0.0.1"
    managesieve_port: int | None = 4190
    # The name this server gives itself (greetings, Received headers); the host's name if empty.
    hostname: str = ""
    # alice+lists@example.com is delivered to alice (RFC 5233); "" turns subaddresses off.
    recipient_delimiter: str = "+"
    # Default quota of users without limits of their own (`posthouse quota set`):
    # storage as bytes or "500M"/"2G", and a number of messages. None: no limit.
    quota_storage: int | str | None = None
    quota_messages: int | None = None
    # Mail for a user over quota: refused for good (552 5.2.2), or for now (452 4.2.2).
    quota_full_tempfail: bool = False
    fsync: bool = True
    # Free space kept on data_dir's file system: with less, new mail is refused
    # for now (452 4.3.1, NO [LIMIT]) so the store keeps room for what it took.
    min_free_space: int | str = 64 * 1024 * 1024
    # Small mail is answered once it is in a journal (one short write and
    # fdatasync) and filed in its mailbox just after; off: filed first.
    delivery_journal: bool = True
    # Worker processes that parse new mail (0: parse on a thread of the server).
    parse_processes: int = min(4, os.cpu_count() or 1)
    # Database writes in a process of their own (else on a thread of the server's).
    store_process: bool = True
    log_level: str = "INFO"
    # Prometheus metrics (admin/metrics.py) on this port; None: off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    default_mailboxes: list = field(default_factory=lambda: [
        ["Drafts", "\\Drafts"], ["Sent", "\\Sent"], ["Trash", "\\Trash"],
        ["Junk", "\\Junk"], ["Archive", "\\Archive"]])

    @classmethod
    def load(cls, path: str | None, **overrides) -> "Config":
        values: dict = {}
        if path:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
            values.update(_flatten(doc))
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError("unknown config keys: " + ", ".join(sorted(unknown)))
        cfg = cls(**values)
        if cfg.imap_tls_port is False or (cfg.imap_tls_port is not None and cfg.imap_tls_port < 0):
            cfg.imap_tls_port = None        # tls_port = false (or -1) turns implicit TLS off
        if cfg.lmtp_port is False or (cfg.lmtp_port is not None and cfg.lmtp_port < 0):
            cfg.lmtp_port = None            # [lmtp] port = false turns LMTP over TCP off
        for key in ("smtp_port", "pop3_port", "pop3_tls_port", "managesieve_port", "submission_port",
                    "submission_tls_port"):
            value = getattr(cfg, key)
            if value is False or (value is not None and value < 0):
                setattr(cfg, key, None)     # port = false turns a listener off
        if cfg.relay_tls not in ("starttls", "tls", "none"):
            raise ValueError("relay tls must be starttls, tls or none")
        if not isinstance(cfg.domains, list) or not all(isinstance(d, str) and d for d in cfg.domains):
            raise ValueError("domains must be a list of domain names")
        cfg.quota_storage = parse_size(cfg.quota_storage) if cfg.quota_storage is not None else None
        cfg.min_free_space = parse_size(cfg.min_free_space)
        if cfg.quota_messages is not None and (not isinstance(cfg.quota_messages, int) or cfg.quota_messages < 0):
            raise ValueError("quota messages must be a number of messages")
        if cfg.plaintext_auth not in ("loopback", "always", "never"):
            raise ValueError("plaintext_auth must be loopback, always or never")
        if cfg.submission_from_policy not in ("refuse", "rewrite"):
            raise ValueError("submission from_policy must be refuse or rewrite")
        return cfg

    def serves(self, address: str) -> bool:
        """Whether address is someone@ one of our `domains` (mail we take, not relay)."""
        local, at, domain = address.rpartition("@")
        return bool(at and local) and domain.lower() in {d.lower() for d in self.domains}

    def path(self, name: str) -> str:
        return os.path.join(self.data_dir, name)


_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2,
          "G": 1024 ** 3, "GB": 1024 ** 3, "T": 1024 ** 4, "TB": 1024 ** 4}


def parse_size(value) -> int:
    """A size in bytes: 1048576, "1048576", "500K", "20M", "2G" (binary units)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return value
    text = str(value).strip().upper()
    number = text.rstrip("KMGTB")
    unit = text[len(number):]
    if not number.isdigit() or unit not in _UNITS:
        raise ValueError(f"not a size: {value!r} (say 1048576, 500K, 20M or 2G)")
    return int(number) * _UNITS[unit]


# [imap] port = 143 -> imap_port: these sections' keys get the section's name as prefix.
_PREFIXED = ("imap", "lmtp", "smtp", "pop3", "managesieve", "submission", "relay", "tls", "quota")
_PREFIXED += ("metrics",)     # [metrics] port -> metrics_port
# These sections only group top-level keys.
_GROUPS = ("server", "limits", "storage")


def _flatten(doc: dict) -> dict:
    """[imap] port = 143 -> imap_port, [quota] storage -> quota_storage, and so on;
    top-level keys as they are."""
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict) and key in _PREFIXED:
            out.update({f"{key}_{k}": v for k, v in value.items()})
        elif isinstance(value, dict) and key in _GROUPS:
            out.update(value)
        else:
            out[key] = value
    return out
