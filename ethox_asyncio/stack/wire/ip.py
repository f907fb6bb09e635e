"""Numbers shared by IPv4 and IPv6: the IANA protocol / next-header registry.

Contract: :class:`IpProtocol` values are the on-wire protocol numbers; unknown
numbers stay plain ``int`` wherever a Repr carries them, so parsing never fails
on an unassigned value.
"""

from __future__ import annotations

import enum

__all__ = ["IpProtocol", "protocol_name"]


class IpProtocol(enum.IntEnum):
    HOPOPT = 0  # IPv6 hop-by-hop options (RFC 8200 §4.3)
    ICMP = 1
    TCP = 6
    UDP = 17
    IPV6_ROUTE = 43  # RFC 8200 §4.4
    IPV6_FRAG = 44  # RFC 8200 §4.5
    ICMPV6 = 58
    IPV6_NONXT = 59  # No next header (RFC 8200 §4.7)
    IPV6_OPTS = 60  # Destination options (RFC 8200 §4.6)


def protocol_name(number: int) -> str:
    """A short lower-case name for logs (``tcp``, ``udp``, ``proto-99``)."""
    try:
        return IpProtocol(number).name.lower()
    except ValueError:
        return f"proto-{number}"
