"""The TOML config file, declared once: one pydantic model per section, with
types, ranges and defaults. config.py turns a validated file into the flat
`Config` the server uses; `posthouse config check|show` use these too.

A problem is reported as one line naming `[section] key`, all problems at once.
"""
from __future__ import annotations

import difflib
import json
import os
import socket
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A config file that can't be used; str() is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


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


def _port_or_off(value):
    return None if value is False else value      # port = false turns a listener off


def _upper(value):
    return value.upper() if isinstance(value, str) else value


Size = Annotated[int, BeforeValidator(parse_size)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A listener's port; false turns it off (None inside).
ListenPort = Annotated[Port | None, BeforeValidator(_port_or_off)]
Seconds = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Host = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    # Strict: "yes" is not a boolean, "10" not a number, 1.5 not a count.
    model_config = ConfigDict(extra="forbid", strict=True)


def default_domains(hostname: str = "") -> list[str]:
    """Without `domains`: this machine's name and localhost, so local users can
    write to each other out of the box."""
    names = [(hostname or socket.gethostname()).lower(), "localhost"]
    return list(dict.fromkeys(n for n in names if n))


class TopLevel(_Section):
    """Top-level keys (also accepted inside [server], [limits] and [storage])."""
    data_dir: str | None = Field(None, description="the store; unset: $POSTHOUSE_DATA_DIR, "
                                 "else $XDG_DATA_HOME/posthouse (root: /var/lib/posthouse)")
    domains: list[Annotated[str, Field(min_length=1, pattern=r"^[^\s@]+$")]] | None = Field(
        None, description="mail domains served here; unset: the hostname and localhost")
    hostname: str = ""
    recipient_delimiter: Annotated[str, Field(max_length=4)] = "+"
    max_message_size: Annotated[Size, Field(ge=1)] = 64 * 1024 * 1024
    max_line: Annotated[Size, Field(ge=1)] = 64 * 1024
    plaintext_auth: Literal["loopback", "always", "never"] = "loopback"
    failure_delay: Seconds = 1.0
    max_auth_failures: Annotated[int, Field(ge=1)] = 3
    auth_cache_ttl: Seconds = 3600
    idle_timeout: Seconds = 30 * 60
    login_timeout: Seconds = 60
    line_timeout: Seconds = 60
    max_connections: Count = 5000
    max_connections_per_ip: Count = 100
    auth_throttle_max: Seconds = 60
    auth_throttle_forget: Seconds = 3600
    fsync: bool = True
    min_free_space: Size = 64 * 1024 * 1024
    delivery_journal: bool = True
    parse_processes: Annotated[int, Field(ge=0, le=64)] = min(4, os.cpu_count() or 1)
    store_process: bool = True
    workers: Annotated[int, Field(ge=1, le=256)] = os.cpu_count() or 1
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                         BeforeValidator(_upper)] = "INFO"
    log_format: Literal["text", "json"] = "text"   # json: one object per line, for log shippers
    database_url: Annotated[str, Field(pattern=r"^(sqlite|postgresql)(\+\w+)?://")] | None = Field(
        None, description="the CRM's database; unset: crm.sqlite3 in data_dir")
    crm_fold_plus: bool = False     # the CRM matches "ann+news@x" as "ann@x"
    document_max_size: Annotated[Size, Field(ge=1)] = 20 * 1024 * 1024   # a contact's document (resume)
    default_mailboxes: list[Annotated[list[str], Field(min_length=1, max_length=2)]] = Field(
        default_factory=lambda: [["Drafts", "\\Drafts"], ["Sent", "\\Sent"], ["Trash", "\\Trash"],
                                 ["Junk", "\\Junk"], ["Archive", "\\Archive"]])


class Imap(_Section):
    host: Host = "127.0.0.1"
    port: Port = 1143
    tls_port: ListenPort = 1993


class Tls(_Section):
    cert: str | None = None
    key: str | None = None


class Lmtp(_Section):
    host: Host = "127.0.0.1"
    port: ListenPort = 2424
    socket: str | None = None
    timeout: Seconds = 300


class Smtp(_Section):
    host: Host = "127.0.0.1"
    port: ListenPort = 2525
    timeout: Seconds = 300


class Pop3(_Section):
    host: Host = "127.0.0.1"
    port: ListenPort = 1110
    tls_port: ListenPort = 1995
    timeout: Seconds = 600


class Submission(_Section):
    host: Host = "127.0.0.1"
    port: ListenPort = 1587
    tls_port: ListenPort = 1465
    save_sent: bool = False
    from_policy: Literal["refuse", "rewrite"] = "refuse"


class Relay(_Section):
    host: str = ""
    port: Port = 587
    tls: Literal["starttls", "tls", "none"] = "starttls"
    user: str = ""
    password: str = ""
    verify: bool = True
    timeout: Seconds = 60
    retry_base: Seconds = 60
    lifetime: Seconds = 5 * 86400


class ManageSieve(_Section):
    host: Host = "127.0.0.1"
    port: ListenPort = 4190


class Quota(_Section):
    storage: Size | None = None
    messages: Count | None = None
    full_tempfail: bool = False


class Tracker(_Section):
    """The activity tracker: run inside `posthouse serve` (enabled), and its timings."""
    enabled: bool = True
    idle_renew: Annotated[Seconds, Field(gt=0)] = 25 * 60      # IDLE re-issued before servers' 30-minute timeout
    sweep_interval: Annotated[Seconds, Field(gt=0)] = 5 * 60   # STATUS of the folders IDLE doesn't watch
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 100    # messages fetched at a time
    poll_interval: Annotated[Seconds, Field(gt=0)] = 10.0      # leases renewed, new accounts looked for


class Webhooks(_Section):
    """Webhook deliveries (webhooks/sender.py): attempts, first retry delay (doubled each time), POST timeout."""
    attempts: Annotated[int, Field(ge=1, le=100)] = 8
    retry_base: Annotated[Seconds, Field(gt=0)] = 30.0
    timeout: Annotated[Seconds, Field(gt=0)] = 10.0
    allow_private: bool = False      # URLs at loopback/private/link-local addresses (refused by default)


class Web(_Section):
    """The web app and REST API; port false: off."""
    host: Host = "127.0.0.1"
    port: ListenPort = 8080
    tls: bool = False       # https, with the certificate of [tls] (else the generated one)


class Campaigns(_Section):
    """Campaigns: the sending rate per campaign, and the web app's public address for unsubscribe links."""
    rate: Annotated[float, Field(gt=0, le=100000)] = 60.0    # messages per minute
    url: str = ""                                            # e.g. "https://crm.example.com"; unset: http://[web] host:port


class Metrics(_Section):
    """Prometheus metrics (admin/metrics.py); no port (or false): off."""
    host: Host = "127.0.0.1"
    port: ListenPort = None


# [imap] port = 143 -> imap_port: these sections' keys get the section's name as prefix.
SECTIONS: dict[str, type[_Section]] = {
    "imap": Imap, "tls": Tls, "lmtp": Lmtp, "smtp": Smtp, "pop3": Pop3, "submission": Submission,
    "relay": Relay, "managesieve": ManageSieve, "quota": Quota, "metrics": Metrics,
    "web": Web, "tracker": Tracker, "campaigns": Campaigns, "webhooks": Webhooks}
# These sections only group top-level keys.
GROUPS = ("server", "limits", "storage")


def flat_name(section: str | None, key: str) -> str:
    return f"{section}_{key}" if section else key


def where(section: str | None, key: str) -> str:
    return f"[{section}] {key}" if section else key


def declared_flat_names() -> set[str]:
    names = set(TopLevel.model_fields)
    for section, model in SECTIONS.items():
        names.update(flat_name(section, k) for k in model.model_fields)
    return names


def _unknown(section: str | None, key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key {where(section, key)}{hint}"


def _describe(error: dict, section: str | None, values: dict) -> str:
    key = str(error["loc"][0]) if error["loc"] else ""
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] == "extra_forbidden":
        return ""       # reported as unknown keys, with a suggestion
    shown = values.get(key, error.get("input"))
    return f"{where(section, key)} = {_toml_value(shown)}: {message[:1].lower()}{message[1:]}"


def validate(doc: dict) -> dict[str, Any]:
    """A parsed TOML document -> flat values (every declared key, defaults
    filled in; data_dir and domains None when unset). Raises ConfigError
    naming every problem. (Every key of the flat Config is declared here:
    tests/unit/test_config_schema.py holds the two to that.)"""
    problems: list[str] = []
    top: dict = {}
    sections: dict[str, dict] = {name: {} for name in SECTIONS}

    def take(section: str | None, key: str, value, model_keys) -> None:
        if key in model_keys:
            (sections[section] if section else top)[key] = value
        else:
            problems.append(_unknown(section, key, model_keys))

    for key, value in doc.items():
        if isinstance(value, dict) and key in SECTIONS:
            for k, v in value.items():
                take(key, k, v, SECTIONS[key].model_fields)
        elif isinstance(value, dict) and key in GROUPS:
            for k, v in value.items():
                take(None, k, v, TopLevel.model_fields)
        elif isinstance(value, dict):
            close = difflib.get_close_matches(key, list(SECTIONS) + list(GROUPS), n=1)
            problems.append(f"unknown section [{key}]" + (f" (did you mean [{close[0]}]?)" if close else ""))
        else:
            take(None, key, value, TopLevel.model_fields)

    out: dict[str, Any] = {}
    for section, model, values in [(None, TopLevel, top)] + [(s, SECTIONS[s], sections[s]) for s in SECTIONS]:
        try:
            checked = model.model_validate(values)
        except ValidationError as e:
            problems.extend(p for p in (_describe(err, section, values) for err in e.errors()) if p)
            continue
        out.update({flat_name(section, k): v for k, v in checked.model_dump().items()})
    if problems:
        raise ConfigError(problems)
    return out


# -- the effective config as TOML ------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)     # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return "false"
    return json.dumps(str(value))


def render(flat: dict[str, Any]) -> str:
    """Flat config values -> TOML in this schema's sections. Ports turned off
    show as false; other unset values as comments."""
    lines: list[str] = []

    def emit(key: str, value, port: bool) -> None:
        if value is None and not port:
            lines.append(f"# {key} is unset")
        else:
            lines.append(f"{key} = {_toml_value(value)}")

    for key in TopLevel.model_fields:
        emit(key, flat.get(key), False)
    shown = set(TopLevel.model_fields)
    for section, model in SECTIONS.items():
        lines.append(f"\n[{section}]")
        for key in model.model_fields:
            name = flat_name(section, key)
            shown.add(name)
            emit(key, flat.get(name), key.endswith("port"))
    rest = sorted(set(flat) - shown)
    if rest:
        lines.append("\n# keys of the running code this schema does not declare:")
        lines.extend(f"# {name} = {_toml_value(flat[name])}" for name in rest)
    return "\n".join(lines) + "\n"
