"""ICMP error policy: when an error may be sent, how often, and what it quotes.

Contract:
- :class:`TokenBucket` limits the rate of ICMP error messages (RFC 1812
  §4.3.2.8, RFC 4443 §2.4 (f)). Defaults are Linux's global limit,
  net.ipv4.icmp_msgs_per_sec = 1000 and net.ipv4.icmp_msgs_burst = 50; the
  kernel's additional per-destination limit is not modelled. Time comes in as
  ``now`` (seconds); a clock that goes backwards adds no tokens.
- :func:`may_send_icmpv4_error` applies RFC 1122 §3.2.2 and
  :func:`may_send_icmpv6_error` applies RFC 4443 §2.4 (e): the callers say what
  they know about the offending packet (link-layer broadcast, fragment offset, ...)
  and get a yes/no; rate limiting is a separate step.
- :func:`quote_ipv4` / :func:`quote_ipv6` return the start of the offending
  packet for the error's body: at most ``MAX_QUOTED_LEN`` octets of the wire
  modules (576 resp. 1280 octet error datagrams), never past the IP length field
  (so Ethernet padding is not quoted).
"""

from __future__ import annotations

import math
import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from .wire.icmpv4 import MAX_QUOTED_LEN as MAX_QUOTED_LEN_V4
from .wire.icmpv4 import Icmpv4Type
from .wire.icmpv6 import MAX_QUOTED_LEN as MAX_QUOTED_LEN_V6
from .wire.icmpv6 import Icmpv6Type

__all__ = [
    "DEFAULT_ICMP_BURST",
    "DEFAULT_ICMP_RATE",
    "MAX_QUOTED_LEN_V4",
    "MAX_QUOTED_LEN_V6",
    "TokenBucket",
    "is_icmpv4_error",
    "is_icmpv6_error",
    "may_send_icmpv4_error",
    "may_send_icmpv6_error",
    "quote_ipv4",
    "quote_ipv6",
]

DEFAULT_ICMP_RATE = 1000.0  # tokens per second: Linux net.ipv4.icmp_msgs_per_sec
DEFAULT_ICMP_BURST = 50  # bucket depth: Linux net.ipv4.icmp_msgs_burst

_U16 = struct.Struct("!H")
_IPV4_MIN_HEADER_LEN = 20
_IPV6_HEADER_LEN = 40
# Refill arithmetic in floats leaves 0.9999999 where a whole token is due (10 x 0.1 s
# at 10/s); a token counts as whole within this slack, so limits hold exactly.
_TOKEN_SLACK = 1e-9

# RFC 1812 §4.3.2.7 / Linux icmp_pointers[].error: the ICMPv4 error messages.
_ICMPV4_ERRORS = frozenset({
    int(Icmpv4Type.DEST_UNREACHABLE),
    4,  # Source Quench (RFC 792, deprecated by RFC 6633 but still an error message)
    int(Icmpv4Type.REDIRECT),
    int(Icmpv4Type.TIME_EXCEEDED),
    int(Icmpv4Type.PARAMETER_PROBLEM),
})
_THIS_NETWORK = IPv4Network("0.0.0.0/8")  # RFC 1122 §3.2.1.3 (a), (b): source-only
_CLASS_E = IPv4Network("240.0.0.0/4")  # includes the limited broadcast 255.255.255.255


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each allowed message spends one.

    ``rate`` may be ``math.inf`` to disable limiting. The bucket starts full.
    """

    __slots__ = ("_last", "_tokens", "allowed", "burst", "rate", "suppressed")

    def __init__(self, rate: float = DEFAULT_ICMP_RATE, burst: int = DEFAULT_ICMP_BURST) -> None:
        if not rate > 0:  # also rejects NaN
            raise ValueError(f"ICMP rate limit must be > 0 per second, not {rate!r}")
        if burst < 1:
            raise ValueError(f"ICMP burst must be at least 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self.allowed = 0
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        """Spend a token if there is one at time ``now``; count the outcome."""
        if math.isinf(self.rate):
            self.allowed += 1
            return True
        last = self._last
        if last is not None and now > last:
            self._tokens = min(float(self.burst), self._tokens + (now - last) * self.rate)
        if last is None or now > last:
            self._last = now
        if self._tokens >= 1.0 - _TOKEN_SLACK:
            self._tokens = max(0.0, self._tokens - 1.0)
            self.allowed += 1
            return True
        self.suppressed += 1
        return False

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (does not spend or update anything)."""
        if math.isinf(self.rate):
            return math.inf
        last = self._last
        if last is None or now <= last:
            return self._tokens
        return min(float(self.burst), self._tokens + (now - last) * self.rate)

    @property
    def stats(self) -> dict[str, int]:
        return {"allowed": self.allowed, "suppressed": self.suppressed}

    def __repr__(self) -> str:
        return (f"<TokenBucket {self.rate}/s burst {self.burst} "
                f"allowed={self.allowed} suppressed={self.suppressed}>")


def is_icmpv4_error(icmp_type: int) -> bool:
    """Whether an ICMPv4 type is an error message (unreachable, quench, redirect, ...)."""
    return icmp_type in _ICMPV4_ERRORS


def is_icmpv6_error(icmp_type: int) -> bool:
    """RFC 4443 §2.1: error messages have the high bit of the type clear (0..127)."""
    return 0 <= icmp_type < 128


def may_send_icmpv4_error(*, dst_is_broadcast_or_multicast: bool, src: IPv4Address,
                          is_icmp_error: bool, frag_offset: int, link_broadcast: bool,
                          src_is_broadcast: bool = False) -> bool:
    """RFC 1122 §3.2.2: whether an ICMP error may answer the offending datagram.

    Never in response to an ICMP error message, a datagram to an IP broadcast or
    multicast address, a link-layer broadcast, a non-initial fragment, or a
    datagram whose source is not a single host: 0.0.0.0/8 ("this network",
    §3.2.1.3), loopback, multicast, class E (which holds 255.255.255.255), or a
    directed broadcast of a local subnet (``src_is_broadcast``, which only the
    interface can know).
    """
    if is_icmp_error or dst_is_broadcast_or_multicast or link_broadcast or frag_offset:
        return False
    return not (src_is_broadcast or src in _THIS_NETWORK or src.is_loopback
                or src.is_multicast or src in _CLASS_E)


def may_send_icmpv6_error(*, error_type: int, dst: IPv6Address, src: IPv6Address,
                          is_icmp_error: bool, link_multicast: bool) -> bool:
    """RFC 4443 §2.4 (e): whether an error of type ``error_type`` may be sent.

    Never in response to an ICMPv6 error or a Redirect (``is_icmp_error`` covers
    both, e.1 and e.2); not for a packet to a multicast address (e.3) or sent as a
    link-layer multicast or broadcast (``link_multicast``, e.4/e.5), except Packet
    Too Big; never to a source that is not a single node: unspecified or multicast
    (e.6; we hold no anycast addresses). The other multicast exception, Parameter
    Problem code 2 for an option of action 10 (RFC 8200 §4.2), needs the option's
    action, and we never send Parameter Problem, so it is refused here too.
    """
    if is_icmp_error:
        return False
    if src.is_unspecified or src.is_multicast:
        return False
    if dst.is_multicast or link_multicast:
        return error_type == Icmpv6Type.PACKET_TOO_BIG
    return True


def quote_ipv4(packet: bytes | bytearray | memoryview) -> bytes:
    """The IPv4 header and as much payload as fits ``MAX_QUOTED_LEN_V4`` octets.

    Cut at the header's total length when it is plausible (drops link padding);
    a malformed length quotes what was received, still bounded.
    """
    end = len(packet)
    if end >= 4:
        total_len: int = _U16.unpack_from(packet, 2)[0]
        if _IPV4_MIN_HEADER_LEN <= total_len < end:
            end = total_len
    return bytes(packet[:min(end, MAX_QUOTED_LEN_V4)])


def quote_ipv6(packet: bytes | bytearray | memoryview) -> bytes:
    """The IPv6 packet up to ``MAX_QUOTED_LEN_V6`` octets (RFC 4443 §2.4 (c)).

    Cut at 40 + payload length (drops link padding); a payload length of 0 (a
    jumbogram) or past the buffer quotes what was received, still bounded.
    """
    end = len(packet)
    if end >= _IPV6_HEADER_LEN:
        payload_len: int = _U16.unpack_from(packet, 4)[0]
        if payload_len > 0 and _IPV6_HEADER_LEN + payload_len < end:
            end = _IPV6_HEADER_LEN + payload_len
    return bytes(packet[:min(end, MAX_QUOTED_LEN_V6)])
