"""Server configuration: TOML file, with defaults for a local, unprivileged run."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields

from . import config_schema as schema
from .config_schema import ConfigError, parse_size  # noqa: F401 (parse_size: for the CLI)


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
    workers: int = os.cpu_count() or 1     # session processes over one store (workers.py); 1: one process
    log_level: str = "INFO"
    # "json": each log line one JSON object (time, level, logger, message, fields), for log shippers.
    log_format: str = "text"           # text | json
    # Prometheus metrics (admin/metrics.py) on this port; None: off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # The CRM's database (contacts, activities, tracked accounts); unset: crm.sqlite3
    # in data_dir. "postgresql://user:pw@host/db" for PostgreSQL, which holds the
    # mail store too (schema "mail"; store/postgres): nodes sharing it form a cluster.
    database_url: str | None = None
    # The web app and the REST API (/api/v1); None: off.
    web_host: str = "127.0.0.1"
    web_port: int | None = 8080
    # https with the IMAP certificate (tls_cert/tls_key, else the generated one); cookies then Secure.
    web_tls: bool = False
    # The activity tracker ([tracker]): inside `posthouse serve` unless off (then run
    # `posthouse tracker`); IDLE re-issued, other folders swept, batch size, how
    # often leases are renewed and new accounts looked for (seconds).
    tracker_enabled: bool = True
    tracker_idle_renew: float = 25 * 60
    tracker_sweep_interval: float = 5 * 60
    tracker_batch_size: int = 100
    tracker_poll_interval: float = 10.0
    # Webhooks ([webhooks]): attempts per delivery before it is marked failed, the
    # first retry's delay (doubled each time, with jitter), each POST's timeout (seconds).
    webhooks_attempts: int = 8
    webhooks_retry_base: float = 30.0
    webhooks_timeout: float = 10.0
    # Webhook URLs that are (or resolve to) loopback, private or link-local addresses: refused unless true.
    webhooks_allow_private: bool = False
    # The CRM matches "ann+news@x" as "ann@x" (plus-detail folding); off: the whole address.
    crm_fold_plus: bool = False
    # Campaigns ([campaigns]): messages handed to the outbound queue per minute (each
    # campaign), and the web app's address as recipients reach it, for the one-click
    # unsubscribe links (unset: http://web_host:web_port).
    campaigns_rate: float = 60.0
    campaigns_url: str = ""
    # Documents on contacts (crm/documents.py): bigger files are refused before parsing.
    document_max_size: int = 20 * 1024 * 1024
    default_mailboxes: list = field(default_factory=lambda: [
        ["Drafts", "\\Drafts"], ["Sent", "\\Sent"], ["Trash", "\\Trash"],
        ["Junk", "\\Junk"], ["Archive", "\\Archive"]])

    @classmethod
    def load(cls, path: str | None, **overrides) -> "Config":
        """The config file at path (None: none) checked against config_schema,
        defaults filled in from there; overrides (command-line flags) win.
        ConfigError (a ValueError) names every problem, one line each;
        ConfigFileMissing if path names no file."""
        doc: dict = {}
        if path:
            try:
                with open(path, "rb") as f:
                    doc = tomllib.load(f)
            except FileNotFoundError:
                raise ConfigFileMissing(f"no config file {path}; make one, or leave --config "
                                        "(and $POSTHOUSE_CONFIG) out to run on the defaults") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError([f"{path} is not TOML: {e}"]) from None
            except OSError as e:
                raise ConfigError([f"can't read config file {path}: {e.strerror}"]) from None
        values = schema.validate(doc)
        if path and values.get("data_dir"):
            # A relative data_dir is the config file's neighbour, from whatever directory it is run.
            values["data_dir"] = os.path.join(os.path.dirname(os.path.abspath(path)), values["data_dir"])
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in known:
                raise ConfigError([f"unknown config key {key}"])
            values[key] = value
        values = {k: v for k, v in values.items() if k in known}
        # One absolute path, so what is printed names the store whatever the working directory.
        values["data_dir"] = os.path.abspath(values["data_dir"]) if values.get("data_dir") else default_data_dir()
        if values.get("domains") is None:
            values["domains"] = schema.default_domains(values.get("hostname", ""))
        values["default_mailboxes"] = [(list(m) + [None])[:2] for m in values.get("default_mailboxes", [])]
        return cls(**values)

    def serves(self, address: str) -> bool:
        """Whether address is someone@ one of our `domains` (mail we take, not relay)."""
        local, at, domain = address.rpartition("@")
        return bool(at and local) and domain.lower() in {d.lower() for d in self.domains}

    def path(self, name: str) -> str:
        return os.path.join(self.data_dir, name)


class ConfigFileMissing(ConfigError):
    """--config (or $POSTHOUSE_CONFIG) names a file that isn't there."""

    def __init__(self, message: str):
        super().__init__([message])


DATA_DIR_ENV = "POSTHOUSE_DATA_DIR"
CONFIG_ENV = "POSTHOUSE_CONFIG"


def default_data_dir() -> str:
    """The data directory when the config file names none: $POSTHOUSE_DATA_DIR,
    else $XDG_DATA_HOME/posthouse, else /var/lib/posthouse for root and
    ~/.local/share/posthouse for anyone else. Every command finds the same store this way,
    from whatever directory it is run."""
    if os.environ.get(DATA_DIR_ENV):
        return os.path.abspath(os.environ[DATA_DIR_ENV])
    if os.environ.get("XDG_DATA_HOME"):
        return os.path.join(os.path.abspath(os.environ["XDG_DATA_HOME"]), "posthouse")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/posthouse"     # a system service's place (FHS)
    return os.path.join(os.path.expanduser("~"), ".local", "share", "posthouse")


def find_config_file(flag: str | None) -> str | None:
    """The config file: --config, else $POSTHOUSE_CONFIG, else
    $XDG_CONFIG_HOME/posthouse/posthouse.toml or /etc/posthouse/posthouse.toml,
    whichever exists first; else none (the defaults)."""
    if flag:
        return flag
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    for candidate in (os.path.join(base, "posthouse", "posthouse.toml"), "/etc/posthouse/posthouse.toml"):
        if os.path.isfile(candidate):
            return candidate
    return None


def load_config(flag: str | None, data_dir: str | None = None) -> Config:
    """The config every command runs on: the file find_config_file picks
    (flag: --config), with --data-dir (data_dir) winning over it."""
    return Config.load(find_config_file(flag), data_dir=data_dir)
