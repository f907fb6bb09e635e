"""Micro-benchmark of the wire codecs: what one frame costs in pure Python.

Run: .venv/bin/python bench/wire.py [--repeat 5] [--number 20000]
Prints the median (over --repeat runs) time per operation and the implied
operations per second. Bounded: repeat x number iterations per case, nothing
touches the network. These are per-frame costs the stack will pay on its hot
path; the end-to-end comparison against the kernel comes with the loop.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from ipaddress import IPv4Address

from ethox_asyncio.stack.path import FramePath
from ethox_asyncio.stack.tcp.host import _emit, _frame
from ethox_asyncio.stack.tcp.segment import ACK, Segment
from ethox_asyncio.stack.wire.checksum import checksum, ones_sum, pseudo_header
from ethox_asyncio.stack.wire.ethernet import EthernetFrame
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'operation':48s} {'median µs':>10s} {'ops/s':>12s}")
    for name, function in cases().items():
        runs = timeit.repeat(function, repeat=args.repeat, number=args.number)
        per_op = statistics.median(runs) / args.number
        print(f"{name:48s} {per_op * 1e6:10.2f} {1 / per_op:12,.0f}")


if __name__ == "__main__":
    main()
