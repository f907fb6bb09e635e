"""Initial sequence numbers (RFC 6528) and per-host timestamp offsets (RFC 7323 §5.4).

Contract:
- ``IsnGenerator(secret)`` takes exactly 16 bytes (the caller draws them from
  ``os.urandom`` once per stack); anything else is ``ValueError`` — siphash24
  would silently zero-pad a short key (PLATFORM.md).
- :meth:`IsnGenerator.isn` is RFC 6528 §3's ``ISN = M + F(localip, localport,
  remoteip, remoteport, secretkey)`` modulo 2**32, with M a timer ticking every
  4 µs (``int(now * 250_000)``, ``now`` in seconds on any monotonic clock) and
  F the low 32 bits of SipHash-2-4 over the 4-tuple. Addresses are ints (IPv4
  < 2**32, IPv6 < 2**128), each packed as 16 bytes big-endian, so the message is
  ``local_addr | local_port | remote_addr | remote_port`` (36 bytes).
  Deterministic for a given secret, 4-tuple and ``now``.
- :meth:`IsnGenerator.ts_offset` is a 32-bit offset to add to TCP timestamp
  values, keyed on the address pair only (as Linux's ``secure_tcp_ts_off``), so
  timestamps do not reveal the host's clock (RFC 7323 §7.1) yet stay monotonic
  across connections between the same two hosts (PAWS, RFC 7323 §5.4).
- Ports and addresses out of range are ``ValueError``.
"""

from __future__ import annotations

import siphash24

__all__ = ["IsnGenerator", "check_secret"]

_MASK32 = 0xFFFFFFFF
_ADDR_LIMIT = 1 << 128
# RFC 6528 §3: "M is the 4 microsecond timer".
_TICKS_PER_SECOND = 250_000
# A leading byte no 4-tuple message has, to keep the timestamp-offset PRF input
# apart from the ISN one (different lengths already do; this is belt and braces).
_TS_TAG = 0x01


def check_secret(secret: bytes, what: str = "secret") -> bytes:
    """Return ``secret`` if it is exactly 16 bytes, else raise ``ValueError``."""
    if not isinstance(secret, bytes) or len(secret) != 16:
        length = len(secret) if isinstance(secret, (bytes, bytearray, memoryview)) else "?"
        raise ValueError(f"{what} must be exactly 16 bytes (a SipHash key), got {length}")
    return secret


class IsnGenerator:
    """RFC 6528 initial sequence numbers for one stack."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = check_secret(secret)

    def __repr__(self) -> str:  # never show the key
        return "<IsnGenerator>"

    def isn(
        self, local_addr: int, local_port: int, remote_addr: int, remote_port: int, now: float
    ) -> int:
        """The ISN for a new connection on this 4-tuple at time ``now`` (seconds)."""
        if not (0 <= local_addr < _ADDR_LIMIT and 0 <= remote_addr < _ADDR_LIMIT):
            raise ValueError(f"address out of range: {local_addr}, {remote_addr}")
        if not (0 <= local_port <= 0xFFFF and 0 <= remote_port <= 0xFFFF):
            raise ValueError(f"port out of range: {local_port}, {remote_port}")
        # RFC 6528 §3: F(localip, localport, remoteip, remoteport, secretkey).
        message = (
            (local_addr << 160) | (local_port << 144) | (remote_addr << 16) | remote_port
        ).to_bytes(36, "big")
        f = int(siphash24.siphash24(message, key=self._key).intdigest()) & _MASK32
        # RFC 6528 §3: ISN = M + F(...), modulo 2**32 (RFC 9293 §3.4.1).
        return (int(now * _TICKS_PER_SECOND) + f) & _MASK32

    def ts_offset(self, local_addr: int, remote_addr: int) -> int:
        """A 32-bit offset for TCP timestamps towards ``remote_addr`` (RFC 7323 §5.4, §7.1)."""
        if not (0 <= local_addr < _ADDR_LIMIT and 0 <= remote_addr < _ADDR_LIMIT):
            raise ValueError(f"address out of range: {local_addr}, {remote_addr}")
        message = ((_TS_TAG << 256) | (local_addr << 128) | remote_addr).to_bytes(33, "big")
        return int(siphash24.siphash24(message, key=self._key).intdigest()) & _MASK32
