"""Facts about a connection's peer that every protocol asks."""
from __future__ import annotations

import ipaddress


def peer_of(writer) -> tuple[str, bool]:
    """("host:port", whether the peer is on loopback) for a stream writer."""
    peer = writer.get_extra_info("peername")
    text = f"{peer[0]}:{peer[1]}" if peer else "?"
    try:
        loopback = bool(peer) and ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:      # a unix socket, or something else without an address
        loopback = False
    return text, loopback
