"""Micro-benchmark of the wire codecs and of the TCP hot path: what one frame costs.

Run: .venv/bin/python bench/wire.py [--repeat 5] [--number 20000] [--segments 20000]
     .venv/bin/python bench/wire.py --profile   # cProfile of the TCP cases instead

Codecs: the median (over --repeat runs) time per operation and the implied
operations per second. Bounded: repeat x number iterations per case, nothing
touches the network.

TCP hot path: two sans-IO interfaces wired back to back in memory (virtual clock),
the server side configured as on a TAP with offloads (the device vouches for
checksums on receive, completes them on transmit). Per segment, the median over
--repeat runs of --segments segments each:

- ping-pong: a 64-byte request (data + the ACK of the last answer) into the
  server's ``Interface.ingress``; the server's ``egress`` of the echo (data + ACK);
  ``poll_at`` after the exchange (what the loop asks each pump);
- bulk: 1448-byte in-order data segments into the receiver's ``ingress``; its
  pure ACKs out (``egress``, every second segment, RFC 5681 §4.2); those pure ACKs
  of new data into the sender's ``ingress``; the sender's data segments out.

The application's part (taking the data, writing the echo) is not timed.
``--profile`` runs the same cases under cProfile and prints Python calls per
segment and the top functions, so a change can be traced to where it saved.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import timeit
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface
from time import perf_counter

from ethox_asyncio.stack.interface import Interface, InterfaceConfig
from ethox_asyncio.stack.path import FramePath
from ethox_asyncio.stack.tcp.connection import EV_DATA, TcpConnection
from ethox_asyncio.stack.tcp.host import _emit, _frame, complete_checksum, partial_checksum_span
from ethox_asyncio.stack.tcp.segment import ACK, Segment
from ethox_asyncio.stack.wire.checksum import checksum, ones_sum, pseudo_header
from ethox_asyncio.stack.wire.ethernet import EthernetAddress, EthernetFrame
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from ethox_asyncio.stack.wire.tcp import TcpFlags, TcpRepr, parse_tcp_fast

SRC, DST = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")


def data_segment(payload_len: int) -> tuple[bytes, bytes]:
    """(Ethernet frame, TCP segment) of an established-connection data segment."""
    tcp = TcpRepr(40000, 80, seq=1, ack=1, flags=TcpFlags.ACK | TcpFlags.PSH, window=512,
                  timestamp=(100, 200), payload_len=payload_len)
    ip = Ipv4Repr(SRC, DST, IpProtocol.TCP, tcp.buffer_len)
    frame = bytearray(14 + ip.buffer_len)
    frame[12:14] = b"\x08\x00"
    ip.emit(memoryview(frame)[14:])
    segment = memoryview(frame)[14 + ip.header_len:]
    segment[tcp.header_len:] = bytes(range(256)) * (payload_len // 256) + bytes(payload_len % 256)
    tcp.emit(segment, SRC, DST)
    return bytes(frame), bytes(segment)


def frame_path() -> FramePath:
    """The Ethernet + IPv4 template a connection's segments are built on (stack/path.py)."""
    ip = bytearray(20)
    Ipv4Repr(SRC, DST, IpProtocol.TCP, 0, ident=0).emit(ip)
    ip[10:12] = b"\0\0"  # the template leaves the checksum to send_on
    return FramePath(bytes(12) + b"\x08\x00" + bytes(ip),
                     pseudo_header(int(SRC), int(DST), IpProtocol.TCP, 0), ones_sum(ip))


def cases() -> dict[str, Callable[[], object]]:
    frame, segment = data_segment(1448)
    ip_bytes = frame[14:]
    path = frame_path()
    app_bytes = bytes(range(256)) * 6
    seg = Segment(40000, 80, 1, 1, ACK, 512, memoryview(app_bytes)[:1448])
    seg.ts_val, seg.ts_ecr = 100, 200
    src, dst = int(SRC), int(DST)
    return {
        "checksum 1460 B": lambda: checksum(segment),
        "EthernetFrame.checked": lambda: EthernetFrame.checked(frame),
        "Ipv4Packet.checked (verifies header checksum)": lambda: Ipv4Packet.checked(ip_bytes),
        "parse_tcp_fast": lambda: parse_tcp_fast(segment),
        "TcpRepr.parse, checksum verified, 1448 B": lambda: TcpRepr.parse(segment, SRC, DST),
        "TCP headers on a FramePath, software checksum": lambda: _frame(seg, path, False),
        "TCP headers on a FramePath, partial checksum": lambda: _frame(seg, path, True),
        "TCP segment copied whole (unresolved next hop)": lambda: _emit(seg, src, dst, False),
    }


# --- the TCP hot path through whole interfaces -----------------------------------------

PORT = 7
STEP = 30e-6  # virtual time per exchange: a request every 30 µs


def _joined(frame: object) -> bytes:
    return b"".join(frame) if type(frame) is tuple else bytes(frame)  # type: ignore


def _completed(frame: object) -> bytes:
    """A frame of the offloading side as its device sends it (checksum completed)."""
    data = _joined(frame)
    span = partial_checksum_span(data)
    return data if span is None else complete_checksum(data, span)


class _Pair:
    """Client A and server B back to back; B as on a TAP with checksum offload."""

    def __init__(self) -> None:
        self.a = Interface(InterfaceConfig(mac=EthernetAddress("02:00:00:00:00:01"),
                                           addresses=(IPv4Interface("198.18.0.1/24"),)))
        self.b = Interface(InterfaceConfig(mac=EthernetAddress("02:00:00:00:00:02"),
                                           addresses=(IPv4Interface("198.18.0.2/24"),),
                                           tcp_checksum_offload=True))
        self.now = 100.0
        listener = self.b.tcp.listen(4, 0, PORT, backlog=8)
        self.client = self.a.tcp.connect(4, int(IPv4Address("198.18.0.1")), 0,
                                         int(IPv4Address("198.18.0.2")), PORT, self.now)
        for _ in range(20):
            self.shuttle()
        server = listener.accept()
        assert server is not None and self.client.state.name == "ESTABLISHED"
        self.server: TcpConnection = server
        server.set_reading(True)
        self.client.set_reading(True)
        self.b.events.clear()
        self.a.events.clear()

    def shuttle(self) -> None:
        self.now += 0.001
        for frame in self.a.egress(self.now, 256):
            self.b.ingress(_joined(frame), self.now, checksum_verified=True)
        for frame in self.b.egress(self.now, 256):
            self.a.ingress(_completed(frame), self.now)


def _take(iface: Interface, conn: TcpConnection) -> int:
    n = 0
    for event in iface.events:
        if type(event) is tuple and event[0] == EV_DATA:
            n += len(event[2])
    iface.events.clear()
    if n:
        conn.consumed(n)
        iface.tcp.touch(conn)
    return n


def ping_pong(count: int) -> dict[str, float]:
    """µs per request: the server's ingress, egress and poll_at (see the docstring)."""
    pair = _Pair()
    a, b, client, server = pair.a, pair.b, pair.client, pair.server
    request = bytes(64)
    t_in = t_out = t_poll = 0.0
    now = pair.now
    for _ in range(count):
        now += STEP
        client.send(request)
        a.tcp.touch(client)
        frames = [_joined(f) for f in a.egress(now, 8)]
        t0 = perf_counter()
        for frame in frames:
            b.ingress(frame, now, checksum_verified=True)
        t1 = perf_counter()
        for event in b.events:  # the echo application
            if type(event) is tuple and event[0] == EV_DATA:
                server.send(bytes(event[2]))
                server.consumed(len(event[2]))
                b.tcp.touch(server)
        b.events.clear()
        t2 = perf_counter()
        out = b.egress(now, 8)
        t3 = perf_counter()
        b.poll_at()
        t4 = perf_counter()
        t_in += t1 - t0
        t_out += t3 - t2
        t_poll += t4 - t3
        assert len(frames) == 1 and len(out) == 1
        for frame in out:
            a.ingress(_completed(frame), now)
        _take(a, client)
    return {"ping-pong: request in (data + ACK)": t_in / count,
            "ping-pong: echo out (data + ACK)": t_out / count,
            "ping-pong: poll_at": t_poll / count}


def bulk(count: int) -> dict[str, float]:
    """µs per segment of a one-way transfer in MSS-sized segments (see the docstring)."""
    pair = _Pair()
    a, b, client, server = pair.a, pair.b, pair.client, pair.server
    chunk = bytes(range(256)) * 256  # 64 KiB
    t_data_in = t_ack_out = t_ack_in = t_data_out = 0.0
    n_data = n_ack = 0
    now = pair.now
    while n_data < count:
        now += STEP
        if client.send_buffered < 4 * len(chunk):
            client.send(chunk)
            a.tcp.touch(client)
        t0 = perf_counter()
        frames = a.egress(now, 64)
        t1 = perf_counter()
        t_data_out += t1 - t0
        data = [_joined(f) for f in frames]
        t0 = perf_counter()
        for frame in data:
            b.ingress(frame, now, checksum_verified=True)
        t1 = perf_counter()
        t_data_in += t1 - t0
        n_data += len(data)
        _take(b, server)
        t0 = perf_counter()
        acks = b.egress(now, 64)
        t1 = perf_counter()
        t_ack_out += t1 - t0
        n_ack += len(acks)
        acks_bytes = [_completed(f) for f in acks]
        t0 = perf_counter()
        for frame in acks_bytes:
            a.ingress(frame, now)
        t1 = perf_counter()
        t_ack_in += t1 - t0
        a.events.clear()
    return {"bulk: data segment in (1448 B)": t_data_in / n_data,
            "bulk: pure ACK out": t_ack_out / max(n_ack, 1),
            "bulk: pure ACK in (new data acknowledged)": t_ack_in / max(n_ack, 1),
            "bulk: data segment out (1448 B)": t_data_out / n_data}


def stack_cases(segments: int, repeat: int) -> None:
    results: dict[str, list[float]] = {}
    for _ in range(repeat):
        for case in (ping_pong, bulk):
            for name, value in case(segments).items():
                results.setdefault(name, []).append(value)
    for name, values in results.items():
        per_op = statistics.median(values)
        print(f"{name:48s} {per_op * 1e6:10.2f} {1 / per_op:12,.0f}")


def profile_stack(segments: int, top: int) -> None:
    for case in (ping_pong, bulk):
        profiler = cProfile.Profile()
        profiler.enable()
        case(segments)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total_calls = stats.total_calls  # type: ignore[attr-defined]
        print(f"\n== {case.__name__}: {segments} segments, "
              f"{total_calls / segments:.1f} Python calls per segment (harness included)")
        stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--segments", type=int, default=20000,
                        help="segments per TCP hot-path run (20000)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the TCP hot-path cases instead of timing")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--only-stack", action="store_true", help="skip the codec cases")
    args = parser.parse_args()
    if args.profile:
        profile_stack(args.segments, args.top)
        return
    print(f"{'operation':48s} {'median µs':>10s} {'ops/s':>12s}")
    if not args.only_stack:
        for name, function in cases().items():
            runs = timeit.repeat(function, repeat=args.repeat, number=args.number)
            per_op = statistics.median(runs) / args.number
            print(f"{name:48s} {per_op * 1e6:10.2f} {1 / per_op:12,.0f}")
    stack_cases(args.segments, args.repeat)


if __name__ == "__main__":
    main()
