"""Scripted-segment harness for the TCP connection tests (smoltcp / packetdrill style).

A test drives one :class:`TcpConnection` ("us") against a scripted peer ("them"):
``send(conn, seg, now)`` delivers a segment the peer built, ``recv(conn, now)``
returns what we send now (``output``), ``recv_nothing`` asserts silence,
``tick`` runs due timers. Every segment crosses the wire format both ways
(``emit_header`` + payload, then ``Segment.parse``), so the codec is exercised too.

Sequence numbers start near 2**32 on both sides so every test crosses the wrap:
``l(n)`` is our ISS + n, ``r(n)`` the peer's. ``check(seg, ...)`` compares the
given fields only; flags are tcpdump letters in the order F S R P . (ACK).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.connection import (
    EV_CLOSED,
    EV_DATA,
    EV_EOF,
    EV_ESTABLISHED,
    TcpConnection,
)
from ethox_asyncio.stack.tcp.segment import ACK, FIN, PSH, RST, SYN, URG, Segment
from ethox_asyncio.stack.tcp.state import TcpState

__all__ = [
    "LOCAL_ISS",
    "LOCAL_PORT",
    "MSS",
    "REMOTE_ISS",
    "REMOTE_PORT",
    "Clock",
    "check",
    "config",
    "connection",
    "data_of",
    "drain",
    "established",
    "events_of",
    "flags_of",
    "l",
    "r",
    "recv",
    "recv_nothing",
    "seg",
    "send",
    "tick",
]

MASK = 0xFFFFFFFF
LOCAL_PORT = 80
REMOTE_PORT = 49152
LOCAL_ISS = 0xFFFFFFF0  # our data crosses 2**32 after 15 bytes
REMOTE_ISS = 0xFFFFFF00  # theirs after 255 bytes
MSS = 1460
_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"))


def l(n: int) -> int:  # noqa: E743 - short on purpose: l(1) reads as "our ISS + 1"
    """Our sequence number ISS + n (mod 2**32)."""
    return (LOCAL_ISS + n) & MASK


def r(n: int) -> int:
    """The peer's sequence number ISS + n (mod 2**32)."""
    return (REMOTE_ISS + n) & MASK


class Clock:
    """A virtual clock for pair tests."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def advance(self, dt: float) -> float:
        self.now += dt
        return self.now


def config(**changes: Any) -> TcpConfig:
    return dataclasses.replace(TcpConfig(), **changes)


def flags_of(segment: Segment) -> str:
    return "".join(letter for bit, letter in _LETTERS if segment.flags & bit)


def _parse_flags(text: str) -> int:
    value = 0
    for letter in text:
        value |= {"F": FIN, "S": SYN, "R": RST, "P": PSH, ".": ACK, "U": URG}[letter]
    return value


def seg(seq: int, ack: int | None = None, flags: str = "", payload: bytes = b"",
        window: int = 65535, *, mss: int | None = None, wscale: int | None = None,
        sack_permitted: bool = False, sack: tuple[tuple[int, int], ...] = (),
        ts: tuple[int, int] | None = None) -> Segment:
    """A segment from the peer. ``flags`` in tcpdump letters; ACK is implied by ``ack``."""
    bits = _parse_flags(flags)
    if ack is not None:
        bits |= ACK
    ts_val, ts_ecr = ts if ts is not None else (None, None)
    return Segment(REMOTE_PORT, LOCAL_PORT, seq & MASK, (ack or 0) & MASK, bits, window,
                   payload, mss, wscale, sack_permitted, sack, ts_val, ts_ecr)


def _wire(segment: Segment) -> Segment:
    """Encode and decode, as the IP glue would (the checksum is the glue's)."""
    buf = bytearray(b"\xa5" * 60)
    header_len = segment.emit_header(buf, 0)
    assert header_len == segment.header_len
    assert buf[16:18] == b"\x00\x00", "checksum field must be left zero"
    frame = bytes(buf[:header_len]) + bytes(segment.payload)
    parsed = Segment.parse(memoryview(frame))
    assert bytes(parsed.payload) == bytes(segment.payload)
    for name in ("src_port", "dst_port", "seq", "ack", "flags", "window", "mss", "wscale",
                 "sack_permitted", "sack_blocks", "ts_val", "ts_ecr"):
        if name == "ack" and not segment.flags & ACK:
            continue
        expected = getattr(segment, name)
        if name == "ts_ecr" and segment.ts_val is not None and expected is None:
            expected = 0
        assert getattr(parsed, name) == expected, (name, segment, parsed)
    return parsed


def send(conn: TcpConnection, segment: Segment, now: float) -> None:
    """Deliver ``segment`` (from the peer) to ``conn``."""
    conn.on_segment(_wire(segment), now)


def recv(conn: TcpConnection, now: float, budget: int = 1000) -> list[Segment]:
    """What ``conn`` sends now (each checked to survive the wire format)."""
    out = conn.output(now, budget)
    for segment in out:
        assert segment.src_port == conn.local_port and segment.dst_port == conn.remote_port
        _wire(segment)
    return out


def recv_nothing(conn: TcpConnection, now: float) -> None:
    out = conn.output(now, 1000)
    assert out == [], f"expected silence, got {out}"


def recv_one(conn: TcpConnection, now: float) -> Segment:
    out = recv(conn, now)
    assert len(out) == 1, f"expected one segment, got {out}"
    return out[0]


def tick(conn: TcpConnection, now: float) -> None:
    """Run the timers due at ``now``."""
    at = conn.poll_at()
    if at is not None and at <= now:
        conn.on_timer(now)


def check(segment: Segment, *, seq: int | None = None, ack: int | None = None,
          flags: str | None = None, window: int | None = None, payload: bytes | None = None,
          length: int | None = None, **options: Any) -> Segment:
    """Assert the given fields of ``segment``; returns it for chaining."""
    if flags is not None:
        assert flags_of(segment) == flags, f"flags {flags_of(segment)!r} != {flags!r}: {segment}"
    if seq is not None:
        assert segment.seq == seq & MASK, f"seq {segment.seq} != {seq & MASK}: {segment}"
    if ack is not None:
        assert segment.flags & ACK and segment.ack == ack & MASK, \
            f"ack {segment.ack} != {ack & MASK}: {segment}"
    if window is not None:
        assert segment.window == window, f"window {segment.window} != {window}: {segment}"
    if payload is not None:
        assert bytes(segment.payload) == payload, segment
    if length is not None:
        assert len(segment.payload) == length, f"length {len(segment.payload)}: {segment}"
    for name, value in options.items():
        assert getattr(segment, name) == value, f"{name} {getattr(segment, name)!r}: {segment}"
    return segment


def drain(events: deque[tuple[str, Any, Any]]) -> list[tuple[str, Any]]:
    """Pop all events as ``(kind, arg)`` (data as bytes)."""
    out = []
    while events:
        kind, _, arg = events.popleft()
        if kind == EV_DATA:
            arg = bytes(arg)
        out.append((kind, arg))
    return out


def events_of(conn: TcpConnection) -> list[tuple[str, Any]]:
    return drain(conn.events)


def data_of(conn: TcpConnection, *, consume: bool = True) -> bytes:
    """All data delivered so far (consumed, opening the window, unless told otherwise)."""
    chunks = []
    kept = deque()
    while conn.events:
        item = conn.events.popleft()
        if item[0] == EV_DATA:
            chunks.append(bytes(item[2]))
        else:
            kept.append(item)
    conn.events.extend(kept)
    data = b"".join(chunks)
    if consume and data:
        conn.consumed(len(data))
    return data


def connection(cfg: TcpConfig | None = None, *, iss: int = LOCAL_ISS, mss_limit: int = MSS,
               now: float = 0.0, ts_offset: int = 0) -> TcpConnection:
    return TcpConnection(cfg or TcpConfig(), local_port=LOCAL_PORT, remote_port=REMOTE_PORT,
                         iss=iss, mss_limit=mss_limit, now=now, events=deque(),
                         ts_offset=ts_offset)


def established(cfg: TcpConfig | None = None, *, now: float = 0.0, window: int = 65535,
                mss: int | None = MSS, wscale: int | None = None, sack: bool = False,
                ts: bool = False, rtt: float = 0.0) -> TcpConnection:
    """An actively opened connection in ESTABLISHED; the peer's options as given.

    Defaults (no timestamps, no window scaling, no SACK) keep scripts short; the
    peer's SYN-ACK uses ``r(0)`` and acknowledges ``l(1)``. ``ts`` uses TSval 1000.
    """
    conn = connection(cfg, now=now)
    conn.open(now)
    syn = recv_one(conn, now)
    assert flags_of(syn) == "S"
    now += rtt
    send(conn, seg(r(0), l(1), "S", window=window, mss=mss, wscale=wscale,
                   sack_permitted=sack, ts=(1000, syn.ts_val or 0) if ts else None), now)
    ack = recv_one(conn, now)
    check(ack, seq=l(1), ack=r(1), flags=".")
    assert conn.state is TcpState.ESTABLISHED
    assert events_of(conn) == [(EV_ESTABLISHED, None)]
    return conn


__all__ += ["EV_CLOSED", "EV_DATA", "EV_EOF", "EV_ESTABLISHED", "recv_one"]
