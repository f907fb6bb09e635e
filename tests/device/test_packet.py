"""PacketDevice against the Linux kernel, over a veth pair in a namespace each test makes.

Topology: namespace ``ethox-pkt-<pid>-<n>`` holding ``veth-k`` (the kernel's end:
198.18.0.1/24, fd00::1/64 without DAD) and ``veth-s`` (the device's end: no address,
IPv6 and ARP off, so the kernel never sends anything through it). The kernel end does
chatter (IPv6 link-local, MLD), so tests pick their own frames out of what arrives.
Frames from the kernel side are made with a raw socket on ``veth-k``; what reached the
kernel is read from ``veth-k``'s counters.
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from ethox_asyncio.device.base import (
    Device,
    DeviceClosed,
    DeviceError,
    DeviceGone,
    DeviceNotFound,
    Frame,
    FrameTooLarge,
    frame_len,
)
from ethox_asyncio.device.nsenter import in_netns
from ethox_asyncio.device.packet import AUTO_MODE, PacketDevice
from ethox_asyncio.device.vnet import (
    FLAG_NEEDS_CSUM,
    GSO_UDP_L4,
    NO_OFFLOAD,
    VNET_HDR_LEN,
    VnetHeader,
)
from ethox_asyncio.stack.wire.arp import ArpOperation, ArpRepr
from ethox_asyncio.stack.wire.checksum import fold, pseudo_header
from ethox_asyncio.stack.wire.ethernet import EthernetAddress, EthernetRepr, EtherType
from ethox_asyncio.stack.wire.icmpv4 import Icmpv4EchoReply, Icmpv4EchoRequest, parse_icmpv4
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Repr
from ethox_asyncio.stack.wire.udp import UdpRepr

KERNEL_IP = IPv4Address("198.18.0.1")
STACK_IP = IPv4Address("198.18.0.2")
KERNEL_IF = "veth-k"
STACK_IF = "veth-s"
PEER_MAC = EthernetAddress("02:00:00:00:00:01")
EXPERIMENTAL = b"\x88\xb5"  # IEEE 802 local experimental EtherType 1
MARKER = b"ethox-pkt"
TIMEOUT = 3.0  # seconds any wait for frames may take
REPO = Path(__file__).resolve().parents[2]

MODES = ("socket", "ring")
COMBINATIONS = [(mode, offload) for mode in MODES for offload in (True, False)]
COMBINATION_IDS = [f"{mode}-offload_{'on' if offload else 'off'}" for mode, offload in COMBINATIONS]
_namespace_numbers = itertools.count()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)


@dataclass
class Veth:
    netns: str

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], check=check,
                              timeout=15, capture_output=True, text=True)

    def counter(self, ifname: str, name: str) -> int:
        return int(self.run("cat", f"/sys/class/net/{ifname}/statistics/{name}").stdout)

    def raw_socket(self, ifname: str) -> socket.socket:
        """A packet socket that sends through ``ifname`` (and receives nothing)."""
        with in_netns(self.netns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.bind((ifname, 0))
        return sock

    def mac(self, ifname: str) -> EthernetAddress:
        return EthernetAddress(self.run("cat", f"/sys/class/net/{ifname}/address").stdout.strip())

    def open(self, mode: str = "socket", offload: bool = True, **options: int) -> PacketDevice:
        return PacketDevice(STACK_IF, netns=self.netns, mode=mode, offload=offload, **options)


@pytest.fixture
def veth() -> Iterator[Veth]:
    netns = f"ethox-pkt-{os.getpid()}-{next(_namespace_numbers)}"
    _ip("netns", "add", netns)
    try:
        _ip("-n", netns, "link", "add", KERNEL_IF, "type", "veth", "peer", "name", STACK_IF)
        topology = Veth(netns)
        topology.run("sysctl", "-qw", f"net.ipv6.conf.{STACK_IF}.disable_ipv6=1")
        _ip("-n", netns, "link", "set", STACK_IF, "arp", "off", "up")
        _ip("-n", netns, "link", "set", KERNEL_IF, "up")
        _ip("-n", netns, "addr", "add", f"{KERNEL_IP}/24", "dev", KERNEL_IF)
        _ip("-n", netns, "addr", "add", "fd00::1/64", "dev", KERNEL_IF, "nodad")
        yield topology
    finally:
        # Deleting one end removes the pair; a test may have deleted it already.
        subprocess.run(["ip", "-n", netns, "link", "del", KERNEL_IF], timeout=10,
                       capture_output=True)
        _ip("netns", "del", netns)


@pytest.fixture(params=COMBINATIONS, ids=COMBINATION_IDS)
def device(request: pytest.FixtureRequest, veth: Veth) -> Iterator[PacketDevice]:
    mode, offload = request.param
    with veth.open(mode, offload) as opened:
        yield opened


# --- frames ---------------------------------------------------------------------------------


def marked_frame(dst: bytes, number: int, size: int = 60) -> bytes:
    payload = MARKER + struct.pack("!I", number)
    return dst + PEER_MAC + EXPERIMENTAL + payload.ljust(size - 14, b"\0")


def marker_number(frame: bytes) -> int | None:
    if frame[12:14] != EXPERIMENTAL or frame[14 : 14 + len(MARKER)] != MARKER:
        return None
    number: int = struct.unpack_from("!I", frame, 14 + len(MARKER))[0]
    return number


def for_device(device: PacketDevice, frame: bytes) -> bytes:
    """``frame`` as ``transmit()`` takes it: behind an empty vnet header with offload."""
    return NO_OFFLOAD + frame if device.capabilities.vnet_header else frame


def ethernet_of(device: PacketDevice, frame: bytes) -> bytes:
    return frame[VNET_HDR_LEN:] if device.capabilities.vnet_header else frame


def echo_request_frame(device: PacketDevice, kernel_mac: EthernetAddress, seq_no: int) -> bytes:
    echo = Icmpv4EchoRequest(ident=0x4242, seq_no=seq_no, data=b"ethox" * 8)
    ip = Ipv4Repr(src=STACK_IP, dst=KERNEL_IP, protocol=IpProtocol.ICMP,
                  payload_len=echo.buffer_len)
    ethernet = EthernetRepr(src=EthernetAddress(device.mac_address), dst=kernel_mac,
                            ethertype=EtherType.IPV4)
    buf = bytearray(ethernet.header_len + ip.buffer_len)
    ethernet.emit(buf)
    ip.emit(memoryview(buf)[ethernet.header_len :])
    echo.emit(memoryview(buf)[ethernet.header_len + ip.header_len :])
    return bytes(buf)


def receive_until(device: Device, done: Callable[[list[bytes]], bool],
                  timeout: float = TIMEOUT) -> list[bytes]:
    """Copies of every frame received until ``done(frames)`` or ``timeout`` seconds."""
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(device.fileno(), select.POLLIN)
    while not done(frames) and time.monotonic() < deadline:
        poller.poll(50)
        frames.extend(bytes(view) for view in device.receive(64))
    return frames


def drain(device: Device, timeout: float = TIMEOUT) -> list[bytes]:
    """Receive until a call returns nothing (bounded): afterwards the device holds no
    frame, and a ring has every block back with the kernel."""
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = device.receive(64)
        if not views:
            return frames
        frames.extend(bytes(view) for view in views)
    raise AssertionError(f"still receiving after {timeout} s")


def until_marker(device: PacketDevice, number: int) -> Callable[[list[bytes]], bool]:
    """A ``receive_until()`` condition: the marked frame ``number`` has arrived."""
    def arrived(frames: list[bytes]) -> bool:
        return any(marker_number(ethernet_of(device, frame)) == number for frame in frames)
    return arrived


def wait_for_counter(veth: Veth, ifname: str, name: str, at_least: int) -> int:
    deadline = time.monotonic() + TIMEOUT
    value = veth.counter(ifname, name)
    while value < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
        value = veth.counter(ifname, name)
    return value


# --- opening --------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"mode": "mmap"}, {"max_batch": 0}, {"ring_blocks": 0},
                                     {"block_timeout_ms": 0}, {"socket_buffer_len": 0}])
def test_bad_arguments_are_refused_before_opening(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PacketDevice("eth-none", **options)  # type: ignore[arg-type]


@pytest.mark.netns
def test_opens_with_capabilities_matching_offload(device: PacketDevice, veth: Veth) -> None:
    offload = device.offload
    assert isinstance(device, Device)
    assert device.capabilities.mtu == 1500
    assert device.capabilities.max_batch == 64
    assert (device.capabilities.vnet_header, device.capabilities.checksum_offload,
            device.capabilities.tso) == (offload, offload, offload)
    assert device.mac_address == bytes(veth.mac(STACK_IF))
    assert device.fileno() >= 0


@pytest.mark.netns
def test_auto_mode_is_the_measured_default(veth: Veth) -> None:
    with veth.open("auto") as device:
        assert device.mode == AUTO_MODE == "socket"


@pytest.mark.netns
def test_missing_interface_or_namespace_is_device_not_found(veth: Veth) -> None:
    with pytest.raises(DeviceNotFound) as missing_interface:
        PacketDevice("ethox-nope0", netns=veth.netns)
    assert missing_interface.value.errno == errno.ENODEV
    assert "ethox-nope0" in str(missing_interface.value)
    with pytest.raises(DeviceNotFound, match="does not exist"):
        PacketDevice(STACK_IF, netns=f"{veth.netns}-missing")


@pytest.mark.netns
def test_non_ethernet_interface_is_refused(veth: Veth) -> None:
    with pytest.raises(DeviceError, match="not an Ethernet interface") as refused:
        PacketDevice("lo", netns=veth.netns)
    assert refused.value.errno == errno.EINVAL


@pytest.mark.netns
def test_missing_cap_net_raw_is_a_permission_error() -> None:
    probe = ("from ethox_asyncio.device.packet import PacketDevice\n"
             "try:\n    PacketDevice('lo')\n"
             "except Exception as exc:\n    print(type(exc).__name__, exc.errno, exc)\n")
    # Without CAP_NET_RAW in the bounding set, root's exec gets no CAP_NET_RAW either.
    result = subprocess.run(["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw",
                             sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=30, check=True)
    assert result.stdout.startswith(f"DevicePermissionError {errno.EPERM} ")
    assert "CAP_NET_RAW" in result.stdout


# --- the data path --------------------------------------------------------------------------


@pytest.mark.netns
def test_transmitted_frames_reach_the_kernel_which_answers(device: PacketDevice,
                                                           veth: Veth) -> None:
    veth.run("ip", "neigh", "replace", str(STACK_IP), "lladdr",
             str(EthernetAddress(device.mac_address)), "dev", KERNEL_IF)
    before = veth.counter(KERNEL_IF, "rx_packets")
    kernel_mac = veth.mac(KERNEL_IF)
    requests = [for_device(device, echo_request_frame(device, kernel_mac, seq))
                for seq in range(1, 6)]
    assert device.transmit(requests) == 5
    assert wait_for_counter(veth, KERNEL_IF, "rx_packets", before + 5) == before + 5

    def replies(frames: list[bytes]) -> list[Icmpv4EchoReply]:
        found = []
        for frame in frames:
            ethernet = ethernet_of(device, frame)
            if ethernet[12:14] == b"\x08\x00" and ethernet[23] == IpProtocol.ICMP:
                message = parse_icmpv4(ethernet[34:])  # verifies the checksum in software
                if isinstance(message, Icmpv4EchoReply) and message.ident == 0x4242:
                    found.append(message)
        return found

    frames = receive_until(device, lambda frames: len(replies(frames)) >= 5)
    assert sorted(reply.seq_no for reply in replies(frames)) == [1, 2, 3, 4, 5]
    stats = device.stats
    assert stats.tx_frames == 5
    assert stats.tx_bytes == sum(len(frame) for frame in requests)
    assert stats.rx_frames >= 5


@pytest.mark.netns
def test_kernel_arp_requests_arrive(device: PacketDevice, veth: Veth) -> None:
    # The kernel has no neighbour entry for the stack's address: pinging it sends ARP.
    ping = subprocess.Popen(["ip", "netns", "exec", veth.netns, "ping", "-n", "-q", "-c", "2",
                             "-i", "0.2", "-W", "1", str(STACK_IP)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def arp_requests(frames: list[bytes]) -> list[ArpRepr]:
            found = []
            for frame in frames:
                ethernet = ethernet_of(device, frame)
                if ethernet[12:14] == b"\x08\x06":
                    found.append(ArpRepr.parse(ethernet[14:]))
            return found

        requests = arp_requests(receive_until(device, lambda frames: bool(arp_requests(frames))))
    finally:
        ping.wait(timeout=10)
    assert requests, "no ARP request from the kernel arrived"
    assert requests[0].operation == ArpOperation.REQUEST
    assert (requests[0].source_protocol_addr, requests[0].target_protocol_addr) == (
        KERNEL_IP, STACK_IP)


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_frames_leaving_the_interface_are_not_received(veth: Veth, mode: str) -> None:
    with veth.open(mode) as device, veth.raw_socket(STACK_IF) as other_sender, \
            veth.raw_socket(KERNEL_IF) as kernel_side:
        device.transmit([for_device(device, marked_frame(PEER_MAC, n)) for n in range(5)])
        for number in range(5, 10):  # another socket sending out through the same interface
            other_sender.send(marked_frame(PEER_MAC, number))
        kernel_side.send(marked_frame(device.mac_address, 100))  # proves receiving works
        frames = receive_until(device, until_marker(device, 100))
    numbers = [marker_number(ethernet_of(device, frame)) for frame in frames]
    assert [number for number in numbers if number is not None] == [100]


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_receive_respects_batch_limits_and_keeps_order(veth: Veth, mode: str) -> None:
    sent = 40
    with veth.open(mode, max_batch=8) as device, veth.raw_socket(KERNEL_IF) as kernel_side:
        for number in range(sent):
            kernel_side.send(marked_frame(device.mac_address, number))
        time.sleep(0.01)  # let a ring block retire
        numbers: list[int] = []
        batch_sizes: list[int] = []
        deadline = time.monotonic() + TIMEOUT
        while len(numbers) < sent and time.monotonic() < deadline:
            views = device.receive(3 if len(batch_sizes) % 2 else 1000)
            batch_sizes.append(len(views))
            assert all(not view.readonly for view in views)
            found = (marker_number(ethernet_of(device, bytes(view))) for view in views)
            numbers.extend(number for number in found if number is not None)
            if not views:
                time.sleep(0.002)
    assert numbers == list(range(sent))
    assert max(batch_sizes[0::2]) == 8
    assert max(batch_sizes[1::2]) == 3


@pytest.mark.netns
def test_ring_blocks_are_given_back_and_reused(veth: Veth) -> None:
    # A frame becomes visible only when its block retires (1 ms after it came), so each
    # round retires at least one block: 30 rounds wrap a two-block ring 15 times, which
    # only works if read blocks go back to the kernel. One frame per round, and every
    # block handed back (drained) before the next: a burst sent while the previous
    # round's block is still ours would depend on how fast the sender runs — a sender
    # preempted for more than 1 ms mid-burst retires the only free block, and the next
    # frame finds none (a kernel drop, seen under CPU load).
    numbers: list[int] = []
    with veth.open("ring", ring_blocks=2) as device, veth.raw_socket(KERNEL_IF) as kernel_side:
        for number in range(30):
            kernel_side.send(marked_frame(device.mac_address, number))
            frames = receive_until(device, until_marker(device, number))
            frames += drain(device)
            found = (marker_number(ethernet_of(device, frame)) for frame in frames)
            numbers.extend(number for number in found if number is not None)
        assert device.stats.rx_kernel_drops == 0
    assert numbers == list(range(30))


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_kernel_drops_are_counted_when_the_buffer_overflows(veth: Veth, mode: str) -> None:
    # One ring block or the smallest socket buffer cannot hold this burst unread.
    sent = 2000
    with veth.open(mode, ring_blocks=1, socket_buffer_len=1) as device, \
            veth.raw_socket(KERNEL_IF) as kernel_side:
        # What the kernel sent on its own (IPv6 DAD, MLD, router solicitations of a link
        # just up) would fill the tiny buffer before the burst: take it out first.
        receive_until(device, lambda frames: False, timeout=0.2)
        for number in range(sent):
            kernel_side.send(marked_frame(device.mac_address, number))
        time.sleep(0.01)
        frames = receive_until(device, lambda frames: False, timeout=0.3)
        received = sum(marker_number(ethernet_of(device, frame)) is not None
                       for frame in frames)
        drops = device.stats.rx_kernel_drops
    assert 0 < received < sent
    assert drops >= sent - received


# --- gathered frames -------------------------------------------------------------------------


def gathered(frame: bytes, *cuts: int) -> tuple[bytearray | memoryview, ...]:
    """``frame`` cut at ``cuts`` as the stack hands it over: bytearrays of the headers it
    built, then the payload as a read-only view of application bytes."""
    bounds = [0, *cuts, len(frame)]
    pieces: list[bytearray | memoryview] = [
        bytearray(frame[start:end]) for start, end in itertools.pairwise(bounds[:-1])]
    pieces.append(memoryview(frame[bounds[-2]:]))
    return tuple(pieces)


def kernel_side_listener(veth: Veth) -> socket.socket:
    """A packet socket on ``veth-k`` for the experimental EtherType: the frames the kernel
    received from the device, as it received them."""
    ethertype = int.from_bytes(EXPERIMENTAL, "big")
    with in_netns(veth.netns):
        listener = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    listener.bind((KERNEL_IF, ethertype))
    listener.settimeout(TIMEOUT)
    return listener


@pytest.mark.netns
def test_gathered_frames_reach_the_kernel_as_the_joined_bytes(device: PacketDevice,
                                                               veth: Veth) -> None:
    kernel_mac = bytes(veth.mac(KERNEL_IF))
    ethernet = [marked_frame(kernel_mac, number, size)
                for number, size in enumerate([60, 1514, 300, 61])]
    header = VNET_HDR_LEN if device.capabilities.vnet_header else 0
    frames: list[Frame] = [
        gathered(for_device(device, ethernet[0]), header + 14),
        # With offload: the virtio-net header alone, then the headers, then the payload.
        gathered(for_device(device, ethernet[1]), header, header + 54) if header
        else gathered(ethernet[1], 6, 54),
        for_device(device, ethernet[2]),  # contiguous frames still work in the same batch
        # A piece boundary inside the virtio-net header (or the MACs), and an empty piece.
        gathered(for_device(device, ethernet[3]), 4, 20, 20),
    ]
    with kernel_side_listener(veth) as listener:
        before = veth.counter(KERNEL_IF, "rx_bytes")
        assert device.transmit(frames) == 4
        received = [listener.recv(70000) for _ in range(4)]
    assert received == ethernet
    stats = device.stats
    assert stats.tx_frames == 4
    assert stats.tx_bytes == sum(map(frame_len, frames)) == sum(map(len, ethernet)) + 4 * header
    assert veth.counter(KERNEL_IF, "rx_bytes") - before == sum(map(len, ethernet))


@pytest.mark.netns
@pytest.mark.parametrize("offload", [True, False])
def test_a_gathered_frame_over_the_limit_sends_nothing(veth: Veth, offload: bool) -> None:
    with veth.open("socket", offload) as device:
        before = veth.counter(KERNEL_IF, "rx_packets")
        header = VNET_HDR_LEN if offload else 0
        fits = gathered(for_device(device, marked_frame(PEER_MAC, 1, size=1514)), header + 14)
        too_large = gathered(for_device(device, marked_frame(PEER_MAC, 2, size=1515)),
                             header + 14, header + 600)
        assert max(map(len, too_large)) < 1514 < frame_len(too_large) - header
        with pytest.raises(FrameTooLarge) as refused:
            device.transmit([fits, too_large])
        assert (refused.value.frame_len, refused.value.max_frame_len) == (1515, 1514)
        assert device.stats.tx_frames == 0
        # The 802.1Q TPID that allows 4 bytes more is read across a piece boundary, and
        # from inside a later piece.
        tagged = for_device(device, PEER_MAC + PEER_MAC + b"\x81\x00\x00\x05"
                            + EXPERIMENTAL + bytes(1500))
        assert device.transmit([fits, gathered(tagged, header + 13, header + 40),
                                gathered(tagged, header + 6, header + 40)]) == 3
        assert wait_for_counter(veth, KERNEL_IF, "rx_packets", before + 3) == before + 3
        assert (device.stats.tx_frames, device.stats.tx_bytes) == (
            3, 3 * header + 1514 + 2 * 1518)


# --- offloads -------------------------------------------------------------------------------


def _kernel_udp_traffic(veth: Veth, device: PacketDevice) -> None:
    """A 101-byte datagram (odd: the checksum pads) and an 8000-byte UDP GSO super-frame."""
    veth.run("ip", "neigh", "replace", str(STACK_IP), "lladdr",
             str(EthernetAddress(device.mac_address)), "dev", KERNEL_IF)
    with in_netns(veth.netns):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender:
        sender.sendto(b"d" * 101, (str(STACK_IP), 9))
        sender.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT: GSO, udp(7)
        sender.sendto(b"g" * 8000, (str(STACK_IP), 9))


def _udp_frames(device: PacketDevice, frames: list[bytes]) -> list[bytes]:
    return [frame for frame in frames
            if ethernet_of(device, frame)[12:14] == b"\x08\x00"
            and ethernet_of(device, frame)[23] == IpProtocol.UDP]


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_offload_on_hands_over_partial_checksums_and_super_frames(veth: Veth,
                                                                  mode: str) -> None:
    with veth.open(mode, offload=True) as device:
        _kernel_udp_traffic(veth, device)
        frames = receive_until(device, lambda frames: len(_udp_frames(device, frames)) >= 2)
    small, large = _udp_frames(device, frames)
    assert len(small) == VNET_HDR_LEN + 14 + 20 + 8 + 101
    assert VnetHeader.parse(small).needs_csum
    header = VnetHeader.parse(large)
    assert len(large) == VNET_HDR_LEN + 14 + 20 + 8 + 8000
    assert (header.gso_type, header.gso_size) == (GSO_UDP_L4, 1000)
    assert header.needs_csum


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_offload_off_completes_checksums_and_drops_super_frames(veth: Veth, mode: str) -> None:
    with veth.open(mode, offload=False) as device:
        _kernel_udp_traffic(veth, device)
        frames = receive_until(device, lambda frames: bool(_udp_frames(device, frames)))
        time.sleep(0.01)
        frames += receive_until(device, lambda frames: False, timeout=0.1)
        stats = device.stats
    [datagram] = _udp_frames(device, frames)
    ip = Ipv4Repr.parse(datagram[14:])
    udp = UdpRepr.parse(datagram[34:], ip.src, ip.dst)  # verifies the checksum in software
    assert udp.payload_len == 101
    assert stats.rx_csum_completed >= 1
    assert stats.rx_gso_dropped == 1


@pytest.mark.netns
@pytest.mark.parametrize("gathered_frame", [False, True], ids=["contiguous", "gathered"])
def test_offload_on_transmits_super_frames_the_kernel_segments(veth: Veth,
                                                               gathered_frame: bool) -> None:
    segment_len, segments = 1000, 4
    payload = bytes(range(250)) * 16
    with in_netns(veth.netns):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, veth.open("socket", offload=True) as device:
        receiver.bind((str(KERNEL_IP), 7777))
        receiver.settimeout(TIMEOUT)
        udp_len = 8 + len(payload)
        ip = Ipv4Repr(src=STACK_IP, dst=KERNEL_IP, protocol=IpProtocol.UDP, payload_len=udp_len)
        frame = bytearray(VNET_HDR_LEN + 14 + ip.buffer_len)
        VnetHeader(flags=FLAG_NEEDS_CSUM, gso_type=GSO_UDP_L4, hdr_len=42,
                   gso_size=segment_len, csum_start=34, csum_offset=6).emit(frame)
        EthernetRepr(src=EthernetAddress(device.mac_address), dst=veth.mac(KERNEL_IF),
                     ethertype=EtherType.IPV4).emit(memoryview(frame)[VNET_HDR_LEN:])
        ip.emit(memoryview(frame)[VNET_HDR_LEN + 14 :])
        # The kernel finishes the checksum from the pseudo-header sum (NEEDS_CSUM).
        pseudo = fold(pseudo_header(int(STACK_IP), int(KERNEL_IP), IpProtocol.UDP, udp_len))
        frame[VNET_HDR_LEN + 34 :] = struct.pack("!HHHH", 40000, 7777, udp_len, pseudo) + payload
        # Gathered, the super-frame is recognised by the gso_type in its first piece
        # (the virtio-net header), and the payload stays the application's buffer.
        sent: Frame = (bytes(frame[:VNET_HDR_LEN]), frame[VNET_HDR_LEN : VNET_HDR_LEN + 42],
                       memoryview(payload)) if gathered_frame else frame
        assert frame_len(sent) == len(frame)
        assert device.transmit([sent]) == 1
        assert device.stats.tx_bytes == len(frame)
        datagrams = [receiver.recv(65536) for _ in range(segments)]
    assert [len(datagram) for datagram in datagrams] == [segment_len] * segments
    assert b"".join(datagrams) == payload


@pytest.mark.netns
@pytest.mark.parametrize("offload", [True, False])
def test_too_large_frames_raise_before_anything_is_sent(veth: Veth, offload: bool) -> None:
    with veth.open("socket", offload) as device:
        before = veth.counter(KERNEL_IF, "rx_packets")
        fits = for_device(device, marked_frame(PEER_MAC, 1, size=1514))
        too_large = for_device(device, marked_frame(PEER_MAC, 2, size=1515))
        with pytest.raises(FrameTooLarge) as refused:
            device.transmit([fits, too_large])
        assert (refused.value.frame_len, refused.value.max_frame_len) == (1515, 1514)
        tagged = for_device(device, PEER_MAC + PEER_MAC + b"\x81\x00\x00\x05"
                            + EXPERIMENTAL + bytes(1500))
        assert device.transmit([fits, tagged]) == 2
        assert wait_for_counter(veth, KERNEL_IF, "rx_packets", before + 2) == before + 2
        assert device.stats.tx_frames == 2


# --- link events and closing ----------------------------------------------------------------


def receive_until_gone(device: PacketDevice) -> None:
    """Receive after the interface was deleted until ``DeviceGone`` (bounded).

    The socket reports the deletion at once (the pending socket error comes before any
    queued frame). A ring first hands out the frames already in retired blocks — the
    kernel end's chatter that came before the deletion — and reads the socket error
    on the first call that finds nothing; each wake-up is POLLIN or POLLERR.
    """
    poller = select.poll()
    poller.register(device.fileno(), select.POLLIN)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert poller.poll(int(TIMEOUT * 1000)), "no POLLERR after the deletion"
        for view in device.receive(64):
            assert marker_number(ethernet_of(device, bytes(view))) is None
    raise AssertionError(f"no DeviceGone within {TIMEOUT} s of the deletion")


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("first_call", ["receive", "transmit"])
def test_deleted_interface_raises_device_gone(veth: Veth, mode: str, first_call: str) -> None:
    with veth.open(mode) as device:
        frame = for_device(device, marked_frame(PEER_MAC, 1))
        _ip("-n", veth.netns, "link", "del", KERNEL_IF)
        with pytest.raises(DeviceGone) as gone:
            if first_call == "receive":
                receive_until_gone(device)
            else:
                device.transmit([frame])
        assert gone.value.errno == errno.ENODEV
        with pytest.raises(DeviceGone):
            device.receive(64)
        with pytest.raises(DeviceGone):
            device.transmit([frame])
        assert "gone" in repr(device)
    assert device.closed


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_link_down_drops_frames_and_the_device_recovers(veth: Veth, mode: str) -> None:
    with veth.open(mode) as device:
        frames = [for_device(device, marked_frame(PEER_MAC, n)) for n in range(3)]
        _ip("-n", veth.netns, "link", "set", STACK_IF, "down")
        assert device.transmit(frames) == 3  # eaten, like a NIC without carrier
        assert device.stats.tx_dropped == 3
        # Reads the kernel's ENETDOWN and does not raise. A ring first hands out what
        # its retired blocks still hold (the kernel end's chatter from before), so
        # receive until nothing is left rather than expecting the first call empty.
        leftovers = drain(device)
        assert all(marker_number(ethernet_of(device, frame)) is None for frame in leftovers)
        _ip("-n", veth.netns, "link", "set", STACK_IF, "up")
        before = veth.counter(KERNEL_IF, "rx_packets")
        assert device.transmit(frames) == 3
        assert device.stats.tx_dropped == 3  # these went out
        assert wait_for_counter(veth, KERNEL_IF, "rx_packets", before + 3) == before + 3


@pytest.mark.netns
def test_peer_down_refuses_frames_for_retry(veth: Veth) -> None:
    with veth.open("socket") as device:
        _ip("-n", veth.netns, "link", "set", KERNEL_IF, "down")
        frames = [for_device(device, marked_frame(PEER_MAC, n)) for n in range(3)]
        assert device.transmit(frames) == 0  # ENOBUFS: nothing accepted, retry later
        assert device.stats.tx_busy == 1
        assert device.stats.tx_frames == 0


@pytest.mark.netns
@pytest.mark.parametrize("mode", MODES)
def test_close_is_idempotent_and_later_calls_fail(veth: Veth, mode: str) -> None:
    device = veth.open(mode)
    with veth.raw_socket(KERNEL_IF) as kernel_side:
        kernel_side.send(marked_frame(device.mac_address, 7))
        held: list[memoryview] = []
        deadline = time.monotonic() + TIMEOUT
        while not held and time.monotonic() < deadline:
            held = [view for view in device.receive(64)
                    if marker_number(ethernet_of(device, bytes(view))) == 7]
            time.sleep(0.002)
    device.close()  # while the caller still holds a view into the buffer or the ring
    device.close()
    assert device.closed
    assert marker_number(ethernet_of(device, bytes(held[0]))) == 7
    assert device.stats.rx_frames >= 1  # the counters stay readable
    for call in (device.fileno, lambda: device.receive(1), lambda: device.transmit([])):
        with pytest.raises(DeviceClosed):
            call()
