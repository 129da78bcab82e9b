"""How many connections are open, in all and per client address, over every
protocol together, so that no one address (nor everyone at once) can hold
more sockets and session memory than the server has to give."""
from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger("posthouse")

PER_IP = "Too many connections from your address"
TOTAL = "Too many connections to this server"


class ConnectionLimits:
    """admit() when a connection is made, release() when it ends. A limit of 0
    or None is no limit. Connections without an address (a unix socket: the
    local MTA's LMTP) are not counted."""

    def __init__(self, max_total: int | None, max_per_ip: int | None):
        self.max_total = max_total or None
        self.max_per_ip = max_per_ip or None
        self.total = 0
        self.per_ip: dict[str, int] = {}
        self.sessions: dict[str, int] = {}     # open connections by protocol (for status and metrics)

    def admit(self, address: str | None) -> str | None:
        """None if the connection may stay (it is counted), else why not."""
        if address is None:
            return None
        if self.max_total is not None and self.total >= self.max_total:
            log.warning("refused %s: %d connections open (max_connections)", address, self.total)
            return TOTAL
        count = self.per_ip.get(address, 0)
        if self.max_per_ip is not None and count >= self.max_per_ip:
            log.warning("refused %s: %d connections open from it (max_connections_per_ip)", address, count)
            return PER_IP
        self.per_ip[address] = count + 1
        self.total += 1
        return None

    def release(self, address: str | None) -> None:
        if address is None:
            return
        count = self.per_ip.get(address, 0) - 1
        if count > 0:
            self.per_ip[address] = count
        else:
            self.per_ip.pop(address, None)      # the table holds open addresses only
        self.total = max(0, self.total - 1)


def address_of(transport) -> str | None:
    """The client's IP address (a TCP peer), or None (a unix socket). IPv6
    peers are counted by their /64: one host is given a whole /64."""
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or not peer:
        return None
    host = peer[0]
    if ":" in host:
        try:
            return str(ipaddress.ip_network(f"{host.partition('%')[0]}/64", strict=False))
        except ValueError:
            return host
    return host


class Admission:
    """One connection's place in the count: taken once, given back once."""

    def __init__(self, limits: ConnectionLimits | None, transport, protocol: str = "other"):
        self.limits = limits
        self.address = address_of(transport)
        self.refusal = limits.admit(self.address) if limits is not None else None
        self._held = limits is not None and self.refusal is None
        self.protocol = protocol
        if self._held:
            limits.sessions[protocol] = limits.sessions.get(protocol, 0) + 1

    def release(self) -> None:
        if self._held:
            self._held = False
            self.limits.release(self.address)
            self.limits.sessions[self.protocol] -= 1
