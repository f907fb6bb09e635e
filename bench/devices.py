"""Device benchmark: frames/s and Gbit/s, receive and transmit, per device and engine.

Run (root): .venv/bin/python bench/devices.py [--frames 50000] [--runs 5] [--sizes 106,1514]
            [--paths TAP,AF_PACKET]

For each device, in a network namespace this script creates and removes:
- receive: a generator inside the namespace (an AF_PACKET socket on the kernel's
  side of the link) first queues N frames while our side does not read (the TAP
  queue / socket buffer is sized to hold them), then we time draining them
  through ``Device.receive()``. The generator's speed therefore does not limit
  the figure, and the two vCPUs do not fight over one ping-pong.
- transmit: we time ``Device.transmit()`` of N frames in batches of 64; the
  kernel counts them (rx_packets) and drops them (they are addressed to a MAC
  nobody has).
Raw limits measured in the same run: ``FileIO.readinto`` / ``os.write`` on a plain
TAP fd, and ``recv_into`` / ``send`` on an AF_PACKET socket, with no device code.
Medians of --runs runs, the paths interleaved within each run; every loop is bounded
by --frames and a 20 s deadline.
Writes a Markdown table to stdout (and --markdown FILE).
"""

from __future__ import annotations

import argparse
import fcntl
import io
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ethox_asyncio.device.base import Device
from ethox_asyncio.device.nsenter import in_netns
from ethox_asyncio.device.packet import PacketDevice
from ethox_asyncio.device.tap import TapDevice
from ethox_asyncio.netns import Topology, topology

DEADLINE = 20.0
RING_BLOCKS = 1024  # x 128 KiB: holds 50 000 full-size frames queued before reading
BATCH = 64
ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33  # socket(7); not exported by the socket module
SOCKET_BUFFER = 1 << 28  # holds every queued frame of a run
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
# Generator frames: to a MAC nobody owns, local experimental EtherType 0x88b5
# (IEEE 802), so the receiving kernel drops them at once.
NOBODY = bytes.fromhex("020000ffff01")
SENDER = bytes.fromhex("020000ffff02")

GENERATOR = """
import socket, sys, time
ifname, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
frame = bytes.fromhex("020000ffff01020000ffff0288b5") + bytes(size - 14)
deadline = time.monotonic() + 20
sent = 0
while sent < count and time.monotonic() < deadline:
    try:
        s.send(frame)
        sent += 1
    except BlockingIOError:
        time.sleep(0.0005)
print(sent)
"""


@dataclass
class Result:
    path: str
    direction: str
    size: int
    frames_per_second: float

    @property
    def gbits(self) -> float:
        return self.frames_per_second * self.size * 8 / 1e9


def frame_of(size: int, vnet: bool) -> bytes:
    frame = NOBODY + SENDER + b"\x88\xb5" + bytes(size - 14)
    return (bytes(10) + frame) if vnet else frame


def generate(topo: Topology, count: int, size: int) -> int:
    """Queue ``count`` frames towards our side from the kernel side of the link."""
    result = topo.run(sys.executable, "-c", GENERATOR, topo.kernel_ifname, str(count), str(size),
                      capture_output=True, text=True, check=True)
    return int(result.stdout)


def kernel_rx_packets(topo: Topology) -> int:
    result = topo.run("cat", f"/sys/class/net/{topo.kernel_ifname}/statistics/rx_packets",
                      capture_output=True, text=True, check=True)
    return int(result.stdout)


def time_receive(receive: Callable[[], int], wait_fd: int, count: int) -> float:
    import select

    received = 0
    start = time.perf_counter()
    deadline = start + DEADLINE
    while received < count and time.perf_counter() < deadline:
        got = receive()
        if got == 0:
            select.select([wait_fd], [], [], 0.01)
        received += got
    elapsed = time.perf_counter() - start
    return received / elapsed


def time_transmit(transmit: Callable[[], int], count: int) -> float:
    sent = 0
    start = time.perf_counter()
    deadline = start + DEADLINE
    while sent < count and time.perf_counter() < deadline:
        sent += transmit()
    return sent / (time.perf_counter() - start)


def device_receive(device: Device) -> Callable[[], int]:
    return lambda: len(device.receive(BATCH))


def device_transmit(device: Device, size: int) -> Callable[[], int]:
    batch = [frame_of(size, device.capabilities.vnet_header)] * BATCH
    return lambda: device.transmit(batch)


@contextmanager
def raw_tap(topo: Topology) -> Iterator[int]:
    with in_netns(topo.netns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", topo.stack_ifname.encode(),
                                               IFF_TAP | IFF_NO_PI))
        yield fd
    finally:
        os.close(fd)


@contextmanager
def raw_packet(topo: Topology) -> Iterator[socket.socket]:
    with in_netns(topo.netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
        sock.bind((topo.stack_ifname, ETH_P_ALL))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def raw_tap_receive(fd: int) -> Callable[[], int]:
    reader = io.FileIO(fd, "rb", closefd=False)
    buffer = bytearray(65550)

    def receive() -> int:
        got = 0
        while got < BATCH:
            if reader.readinto(buffer) is None:
                break
            got += 1
        return got
    return receive


def raw_tap_transmit(fd: int, size: int) -> Callable[[], int]:
    frame = frame_of(size, vnet=False)

    def transmit() -> int:
        for _ in range(BATCH):
            os.write(fd, frame)
        return BATCH
    return transmit


def raw_packet_receive(sock: socket.socket) -> Callable[[], int]:
    buffer = bytearray(65550)

    def receive() -> int:
        got = 0
        try:
            while got < BATCH:
                sock.recv_into(buffer)
                got += 1
        except BlockingIOError:
            pass
        return got
    return receive


def raw_packet_transmit(sock: socket.socket, size: int) -> Callable[[], int]:
    frame = frame_of(size, vnet=False)

    def transmit() -> int:
        sent = 0
        try:
            for _ in range(BATCH):
                sock.send(frame)
                sent += 1
        except BlockingIOError:
            pass
        return sent
    return transmit


PATHS: dict[str, tuple[str, Callable[[Topology], object]]] = {
    "TAP raw readinto/os.write (limit)": ("tap", lambda t: raw_tap(t)),
    "TAP io_uring compiled, offload": ("tap", lambda t: TapDevice(
        t.stack_ifname, netns=t.netns, engine="uring", uring_impl="compiled", offload=True)),
    "TAP io_uring compiled": ("tap", lambda t: TapDevice(
        t.stack_ifname, netns=t.netns, engine="uring", uring_impl="compiled", offload=False)),
    "TAP io_uring pure Python": ("tap", lambda t: TapDevice(
        t.stack_ifname, netns=t.netns, engine="uring", uring_impl="python", offload=False)),
    "TAP plain": ("tap", lambda t: TapDevice(t.stack_ifname, netns=t.netns, engine="plain",
                                             offload=False)),
    "AF_PACKET raw recv_into/send (limit)": ("veth", lambda t: raw_packet(t)),
    "AF_PACKET ring": ("veth", lambda t: PacketDevice(t.stack_ifname, netns=t.netns,
                                                      mode="ring", offload=False,
                                                      ring_blocks=RING_BLOCKS)),
    "AF_PACKET socket": ("veth", lambda t: PacketDevice(t.stack_ifname, netns=t.netns,
                                                        mode="socket", offload=False,
                                                        socket_buffer_len=SOCKET_BUFFER)),
}


def measure(name: str, topo: Topology, size: int, count: int) -> tuple[float, float]:
    kind_factory = PATHS[name][1]
    opened = kind_factory(topo)
    with opened as handle:  # type: ignore[attr-defined]
        if isinstance(handle, int):
            receive, transmit = raw_tap_receive(handle), raw_tap_transmit(handle, size)
            wait_fd = handle
        elif isinstance(handle, socket.socket):
            receive, transmit = raw_packet_receive(handle), raw_packet_transmit(handle, size)
            wait_fd = handle.fileno()
        else:
            receive, transmit = device_receive(handle), device_transmit(handle, size)
            wait_fd = handle.fileno()
        queued = generate(topo, count, size)
        rx_rate = time_receive(receive, wait_fd, queued)
        before = kernel_rx_packets(topo)
        tx_rate = time_transmit(transmit, count)
        arrived = kernel_rx_packets(topo) - before
        if arrived < count * 0.9:
            print(f"  note: {name}: the kernel counted {arrived} of {count} frames sent",
                  file=sys.stderr)
    return rx_rate, tx_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="106,1514")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--paths", default="",
                        help="only the paths whose name contains one of these (comma-separated)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/devices.py needs root (network namespaces, TAP, AF_PACKET)", file=sys.stderr)
        return 2
    sizes = [int(size) for size in args.sizes.split(",")]
    results: list[Result] = []
    wanted = [part for part in args.paths.split(",") if part]
    chosen = [name for name in PATHS if not wanted or any(part in name for part in wanted)]
    for kind in ("tap", "veth"):
        names = [name for name in chosen if PATHS[name][0] == kind]
        if not names:
            continue
        with topology(kind, txqueuelen=max(10000, args.frames + 1000)) as topo:
            # Runs interleave the paths, so a noisy moment of the machine hits them all.
            samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for _ in range(args.runs):
                for name in names:
                    for size in sizes:
                        samples.setdefault((name, size), []).append(
                            measure(name, topo, size, args.frames))
            for (name, size), runs in samples.items():
                results.append(Result(name, "rx", size, statistics.median(r[0] for r in runs)))
                results.append(Result(name, "tx", size, statistics.median(r[1] for r in runs)))
                print(f"{name:40s} {size:5d} B  rx {results[-2].frames_per_second:10,.0f}/s"
                      f"  tx {results[-1].frames_per_second:10,.0f}/s", file=sys.stderr)
    table = render(results, sizes)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(table)
    return 0


def render(results: list[Result], sizes: list[int]) -> str:
    lines = ["| path | dir | " + " | ".join(f"{s} B frames/s (Gbit/s)" for s in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for name in PATHS:
        if not any(r.path == name for r in results):
            continue
        for direction in ("rx", "tx"):
            cells = []
            for size in sizes:
                match = [r for r in results
                         if r.path == name and r.direction == direction and r.size == size]
                cells.append(f"{match[0].frames_per_second / 1e6:.2f} M ({match[0].gbits:.2f})"
                             if match else "–")
            lines.append(f"| {name} | {direction} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
