"""TapDevice against the real kernel, in network namespaces these tests create.

Each test gets its own namespace ``ethox-taptest-<pid>-<n>`` with IPv6 off for new
interfaces (no router solicitations or MLD reports), so the only frames on a TAP are
the ones a test provokes. The kernel side of the TAP holds 198.18.0.1/24; the frames
we send come from 198.18.0.2 (the user-space side), never an address the kernel owns.
"""

from __future__ import annotations

import errno
import glob
import itertools
import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import liburing
import pytest

from ethox_asyncio.device import tap as tap_module
from ethox_asyncio.device import uring_batch
from ethox_asyncio.device.base import (
    DeviceClosed,
    DeviceError,
    DeviceGone,
    DeviceNotFound,
    DevicePermissionError,
    Frame,
    FrameTooLarge,
    frame_len,
)
from ethox_asyncio.device.nsenter import in_netns
from ethox_asyncio.device.tap import TapDevice
from ethox_asyncio.device.uring import UringUnavailable
from ethox_asyncio.device.vnet import NO_OFFLOAD, VNET_HDR_LEN, VnetHeader

TAP = "etap0"
KERNEL_IP = "198.18.0.1"
STACK_IP = "198.18.0.2"
STACK_MAC = bytes.fromhex("020000000002")
BROADCAST = b"\xff" * 6
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_EXPERIMENTAL = 0x88B5  # IEEE 802 local experimental EtherType 1
WAIT = 3.0  # seconds any one expected frame may take
COMMAND_TIMEOUT = 10.0

_namespace_numbers = itertools.count()
#: Every engine: io_uring in both implementations (the compiled helper and pure Python
#: on the liburing binding), and plain read/write.
ENGINES = ["uring/compiled", "uring/python", "plain"]
ENGINE_AND_OFFLOAD = [(engine, offload) for engine in ENGINES for offload in (True, False)]


def engine_args(engine: str) -> dict[str, str]:
    """TapDevice keyword arguments for an ENGINES entry."""
    name, _, impl = engine.partition("/")
    return {"engine": name, "uring_impl": impl or "auto"}


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"ethox-taptest-{os.getpid()}-{next(_namespace_numbers)}"
    ip("netns", "add", name)
    try:
        ip("netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
        yield name
    finally:
        ip("netns", "del", name)


def link_info(netns: str, ifname: str = TAP) -> dict[str, object]:
    (info,) = json.loads(ip("-n", netns, "-j", "-s", "-d", "link", "show", ifname))
    assert isinstance(info, dict)
    return info


def kernel_packets(netns: str, direction: str, ifname: str = TAP) -> int:
    """The TAP's packet counter: ``rx`` = frames we wrote, ``tx`` = frames we read."""
    stats = link_info(netns, ifname)["stats64"]
    assert isinstance(stats, dict)
    return int(stats[direction]["packets"])


def link_exists(netns: str, ifname: str) -> bool:
    return subprocess.run(["ip", "-n", netns, "link", "show", ifname], capture_output=True,
                          timeout=COMMAND_TIMEOUT).returncode == 0


def arp_frame(opcode: int, dst_mac: bytes, target_mac: bytes, target_ip: str) -> bytes:
    """An ARP packet (RFC 826) from STACK_IP / STACK_MAC, padded to the 60-byte minimum."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETHERTYPE_IPV4, 6, 4, opcode, STACK_MAC,
                      socket.inet_aton(STACK_IP), target_mac, socket.inet_aton(target_ip))
    return (dst_mac + STACK_MAC + struct.pack("!H", ETHERTYPE_ARP) + arp).ljust(60, b"\0")


def with_header(frame: bytes, offload: bool) -> bytes:
    return NO_OFFLOAD + frame if offload else frame


def split_header(frame: bytes, offload: bool) -> tuple[VnetHeader | None, bytes]:
    if offload:
        return VnetHeader.parse(frame), frame[VNET_HDR_LEN:]
    return None, frame


def ethertype(ethernet: bytes) -> int:
    return int.from_bytes(ethernet[12:14], "big")


def receive_until(device: TapDevice, wanted: Callable[[bytes], bool]) -> tuple[bytes, int]:
    """The first received frame (header included) that ``wanted`` accepts, and how many
    frames were read in all; fails after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    read = 0
    while time.monotonic() < deadline:
        select.select([device.fileno()], [], [], 0.1)
        for view in device.receive(64):
            read += 1
            if wanted(bytes(view)):
                return bytes(view), read
    pytest.fail(f"no matching frame within {WAIT} s ({read} others read)")


def provoke_arp_request(netns: str) -> None:
    """A datagram to STACK_IP makes the kernel ask who has it (one ARP request)."""
    with in_netns(netns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"hello", (STACK_IP, 9))


def is_arp_request_for_stack(offload: bool) -> Callable[[bytes], bool]:
    def wanted(frame: bytes) -> bool:
        _, ethernet = split_header(frame, offload)
        return (ethertype(ethernet) == ETHERTYPE_ARP and ethernet[:6] == BROADCAST
                and ethernet[14 + 24:14 + 28] == socket.inet_aton(STACK_IP))
    return wanted


# -- frames both ways -------------------------------------------------------------


@pytest.mark.netns
@pytest.mark.parametrize(("engine", "offload"), ENGINE_AND_OFFLOAD)
def test_frames_flow_between_the_kernel_and_us(netns: str, engine: str, offload: bool) -> None:
    with TapDevice(TAP, netns=netns, **engine_args(engine), offload=offload) as device:
        assert device.engine_name == engine.partition("/")[0]
        assert device.fallback_reason is None
        assert device.capabilities.vnet_header is offload
        assert device.capabilities.checksum_offload is device.capabilities.tso is offload
        ip("-n", netns, "addr", "add", f"{KERNEL_IP}/24", "dev", TAP)

        provoke_arp_request(netns)
        request, read = receive_until(device, is_arp_request_for_stack(offload))
        header, ethernet = split_header(request, offload)
        assert header is None or not header.is_gso
        assert kernel_packets(netns, "tx") == read == device.stats.rx_frames

        kernel_mac = ethernet[6:12]
        reply = arp_frame(2, kernel_mac, kernel_mac, KERNEL_IP)
        announcements = [arp_frame(1, BROADCAST, bytes(6), STACK_IP)] * 4
        frames = [with_header(frame, offload) for frame in [reply, *announcements]]
        assert device.transmit(frames) == 5
        assert kernel_packets(netns, "rx") == 5
        assert (device.stats.tx_frames, device.stats.tx_bytes) == (5, 5 * len(frames[0]))
        # The kernel parsed our reply (and, with offload, its virtio-net header).
        neighbours = ip("-n", netns, "neigh", "show", STACK_IP, "dev", TAP)
        assert "lladdr 02:00:00:00:00:02" in neighbours


@pytest.mark.netns
@pytest.mark.parametrize("engine", ENGINES)
def test_with_offload_the_kernel_leaves_tcp_checksums_to_the_header(
        netns: str, engine: str) -> None:
    with TapDevice(TAP, netns=netns, **engine_args(engine), offload=True) as device:
        ip("-n", netns, "addr", "add", f"{KERNEL_IP}/24", "dev", TAP)
        ip("-n", netns, "neigh", "add", STACK_IP, "lladdr", "02:00:00:00:00:02", "dev", TAP)
        with in_netns(netns), socket.socket() as tcp:
            tcp.setblocking(False)
            tcp.connect_ex((STACK_IP, 7))  # sends a SYN through the TAP

            def is_syn(frame: bytes) -> bool:
                ethernet = frame[VNET_HDR_LEN:]
                return ethertype(ethernet) == ETHERTYPE_IPV4 and ethernet[14 + 9] == 6

            syn, _ = receive_until(device, is_syn)
        header = VnetHeader.parse(syn)
        # A partial checksum: the TCP checksum field (offset 16) of the segment after
        # the 14-byte Ethernet and 20-byte IPv4 headers holds only the pseudo-header sum.
        assert header.needs_csum and not header.is_gso
        assert (header.csum_start, header.csum_offset) == (34, 16)


def io_wq_worker_tids() -> set[str]:
    """Thread ids of io_uring's kernel workers (``iou-wrk-*``) in this process."""
    tids = set()
    for comm in glob.glob("/proc/self/task/*/comm"):
        try:
            with open(comm) as file:
                if file.read().startswith("iou-wrk"):
                    tids.add(comm.split("/")[-2])
        except OSError:  # the thread just ended
            pass
    return tids



PINGER = """
import socket, sys, time
ifname, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.bind((ifname, 0x88B5))
s.settimeout(3)
head = b"\\xff" * 6 + bytes.fromhex("020000000002") + b"\\x88\\xb5"
for number in range(count):
    s.send(head + number.to_bytes(4, "big") + bytes(82))
    while int.from_bytes(s.recv(2000)[14:18], "big") != number:
        pass
print("done")
"""


@pytest.mark.netns
@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_io_uring_receives_one_frame_at_a_time_without_kernel_workers(
        netns: str, impl: str) -> None:
    """Request/response traffic from another process (PINGER: one frame in flight, each
    echoed back): frames arrive one at a time into an idle TAP. The multishot read is
    driven by poll in our own task; one READ in flight per buffer instead ends up with
    ~50 ``iou-wrk`` threads blocked in tun_do_read (Linux 6.18, measured: only when the
    frames come from another process, so the pinger is one)."""
    with TapDevice(TAP, netns=netns, engine="uring", uring_impl=impl,
                   offload=False) as device:
        assert "multishot" in device.engine_detail

        def echo() -> None:
            frames = device.receive(8)
            assert len(frames) <= 1, "one frame in flight"
            device.transmit([bytes(frame) for frame in frames])

        stdout, new_workers = ping_pong_with_a_pinger(netns, device.fileno(), echo, 300)
        assert stdout.strip() == "done", "the pinger got every frame back, in order"
        assert device.stats.rx_frames == device.stats.tx_frames == 300
    assert new_workers == set(), f"io-wq workers appeared: {sorted(new_workers)}"


def ping_pong_with_a_pinger(netns: str, fd: int, echo: Callable[[], object],
                            count: int) -> tuple[str, set[str]]:
    """Run PINGER (another process) for ``count`` frames, calling ``echo`` whenever
    ``fd`` is readable (bounded: 20 s); its stdout and the io-wq workers that appeared."""
    before = io_wq_worker_tids()
    new_workers: set[str] = set()
    process = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", PINGER,
                                TAP, str(count)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                echo()
            new_workers |= io_wq_worker_tids() - before
        stdout, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return stdout, new_workers


# -- gathered frames ---------------------------------------------------------------


def experimental_frame(number: int, length: int) -> bytes:
    """A ``length``-byte broadcast frame of the local experimental EtherType whose payload
    starts with ``number`` and varies with it."""
    head = BROADCAST + STACK_MAC + struct.pack("!HI", ETHERTYPE_EXPERIMENTAL, number)
    return head + bytes((number * 7 + i) % 251 for i in range(length - len(head)))


def kernel_side_listener(netns: str) -> socket.socket:
    """A packet socket on the TAP's kernel side for the experimental EtherType: it sees,
    as the kernel received them, the frames we write."""
    with in_netns(netns):
        listener = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                 socket.htons(ETHERTYPE_EXPERIMENTAL))
    listener.bind((TAP, ETHERTYPE_EXPERIMENTAL))
    listener.settimeout(WAIT)
    return listener


@pytest.mark.netns
@pytest.mark.parametrize(("engine", "offload"), ENGINE_AND_OFFLOAD)
def test_gathered_frames_reach_the_kernel_as_the_joined_bytes(
        netns: str, engine: str, offload: bool) -> None:
    ethernet = [experimental_frame(number, length)
                for number, length in enumerate([60, 1514, 800, 61])]
    header = NO_OFFLOAD if offload else b""
    # As the stack gathers: its headers in a bytearray, the payload a read-only view of
    # the application's bytes; with offload also the virtio-net header on its own.
    frames: list[Frame] = [
        (bytearray(header + ethernet[0][:14]), memoryview(ethernet[0][14:])),
        (bytearray(header), bytearray(ethernet[1][:54]), memoryview(ethernet[1][54:])),
        with_header(ethernet[2], offload),  # contiguous frames still work in the same batch
        (bytearray(header + ethernet[3][:20]), b"", memoryview(ethernet[3][20:])),
    ]
    with TapDevice(TAP, netns=netns, **engine_args(engine), offload=offload) as device, \
            kernel_side_listener(netns) as listener:
        assert device.transmit(frames) == 4
        received = [listener.recv(70000) for _ in range(4)]
        stats = device.stats
        kernel = link_info(netns)["stats64"]
    assert received == ethernet
    assert (stats.tx_frames, stats.tx_errors) == (4, 0)
    assert stats.tx_bytes == sum(map(frame_len, frames)) == sum(map(len, ethernet)) + (
        4 * VNET_HDR_LEN if offload else 0)
    assert isinstance(kernel, dict)
    assert (kernel["rx"]["packets"], kernel["rx"]["bytes"]) == (4, sum(map(len, ethernet)))


@pytest.mark.netns
@pytest.mark.parametrize("engine", ENGINES)
def test_a_batch_larger_than_the_send_slots_is_sent_whole_and_in_order(
        netns: str, engine: str) -> None:
    # The io_uring engines have max_batch send slots: a larger batch (the loop hands
    # over up to 256 frames) must not lose what did not fit in the first round.
    frames = [experimental_frame(number, 1000) for number in range(100)]
    with TapDevice(TAP, netns=netns, **engine_args(engine), offload=False,
                   max_batch=8) as device, kernel_side_listener(netns) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        assert device.transmit(frames) == len(frames)
        received = [listener.recv(70000) for _ in frames]
        assert device.stats.tx_frames == len(frames)
    assert received == frames


@pytest.mark.netns
@pytest.mark.parametrize(("engine", "offload"), ENGINE_AND_OFFLOAD)
def test_a_gathered_frame_over_the_limit_sends_nothing(
        netns: str, engine: str, offload: bool) -> None:
    with TapDevice(TAP, netns=netns, **engine_args(engine), offload=offload, mtu=1500) as device:
        limit = device.max_frame_len
        fits = with_header(experimental_frame(1, 60), offload)
        # Each piece is far below the limit; only all of them together exceed it.
        third = (limit + 1) // 3
        too_large = with_header(experimental_frame(2, limit + 1 - len(with_header(b"", offload))),
                                offload)
        pieces = (bytearray(too_large[:third]), bytearray(too_large[third:2 * third]),
                  memoryview(too_large[2 * third:]))
        assert frame_len(pieces) == limit + 1
        with pytest.raises(FrameTooLarge, match=f"{limit + 1} bytes") as refused:
            device.transmit([(bytearray(fits[:30]), memoryview(fits[30:])), pieces])
        assert refused.value.frame_len == limit + 1
        assert (device.stats.tx_frames, device.stats.tx_bytes) == (0, 0)
        assert kernel_packets(netns, "rx") == 0, "nothing of a refused batch is sent"


# -- attaching --------------------------------------------------------------------


@pytest.mark.netns
@pytest.mark.parametrize("offload", [True, False])
@pytest.mark.parametrize("persistent_vnet_hdr", [True, False])
def test_attaches_to_a_persistent_tap_whatever_its_vnet_hdr_setting(
        netns: str, offload: bool, persistent_vnet_hdr: bool) -> None:
    ip("-n", netns, "tuntap", "add", "dev", "ptap0", "mode", "tap",
       *(["vnet_hdr"] if persistent_vnet_hdr else []))
    with TapDevice("ptap0", netns=netns, offload=offload) as device:
        frame = arp_frame(1, BROADCAST, bytes(6), STACK_IP)
        assert device.transmit([with_header(frame, offload)]) == 1
        assert kernel_packets(netns, "rx", "ptap0") == 1
        assert "UP" in link_info(netns, "ptap0")["flags"]  # type: ignore[operator]
    assert link_exists(netns, "ptap0"), "a persistent TAP survives our close()"


@pytest.mark.netns
def test_a_tap_we_created_vanishes_on_close(netns: str) -> None:
    device = TapDevice(TAP, netns=netns)
    assert link_exists(netns, TAP)
    device.close()
    device.close()
    assert device.closed and not link_exists(netns, TAP)
    for call in (device.fileno, lambda: device.receive(1), lambda: device.transmit([])):
        with pytest.raises(DeviceClosed, match=f"TAP '{TAP}' is closed"):
            call()


@pytest.mark.netns
def test_a_tun_with_that_name_is_refused(netns: str) -> None:
    ip("-n", netns, "tuntap", "add", "dev", "ptun0", "mode", "tun")
    with pytest.raises(DeviceError, match="not a single-queue TAP") as raised:
        TapDevice("ptun0", netns=netns)
    assert raised.value.errno == errno.EINVAL


@pytest.mark.netns
def test_a_tap_held_by_another_descriptor_is_busy(netns: str) -> None:
    with TapDevice(TAP, netns=netns, engine="plain"):
        with pytest.raises(DeviceError, match="already attached") as raised:
            TapDevice(TAP, netns=netns, engine="plain")
        assert raised.value.errno == errno.EBUSY


@pytest.mark.netns
def test_mtu_and_txqueuelen_are_set_and_frames_checked(netns: str) -> None:
    with TapDevice(TAP, netns=netns, offload=False, mtu=9000, txqueuelen=5000) as device:
        info = link_info(netns)
        assert (info["mtu"], info["txqlen"]) == (9000, 5000)
        assert device.max_frame_len == 9000 + 14 + 4
        with pytest.raises(FrameTooLarge, match="9019 bytes"):
            device.transmit([bytes(60), bytes(9019)])
        assert kernel_packets(netns, "rx") == 0, "nothing of a refused batch is sent"
    with TapDevice(TAP, netns=netns, offload=True) as device:
        assert device.max_frame_len == VNET_HDR_LEN + 14 + 4 + 65535 + 40
        with pytest.raises(FrameTooLarge):
            device.transmit([bytes(device.max_frame_len + 1)])


# -- engine choice ----------------------------------------------------------------


def refuse_io_uring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ring setup fail as the kernel.io_uring_disabled sysctl would, for both
    io_uring engines."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(liburing, "io_uring_queue_init", refuse)
    if uring_batch._uring_batch is not None:
        monkeypatch.setattr(uring_batch._uring_batch, "Ring", refuse)


@pytest.mark.netns
def test_auto_falls_back_to_plain_with_one_log_line(
        netns: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    refuse_io_uring(monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="ethox_asyncio.device"), \
            TapDevice(TAP, netns=netns, engine="auto") as device:
        assert device.engine_name == "plain"
        assert device.fallback_reason is not None
        assert "io_uring_disabled" in device.fallback_reason
        assert device.fileno() > 0
        announcement = with_header(arp_frame(1, BROADCAST, bytes(6), STACK_IP), offload=True)
        assert device.transmit([announcement]) == 1
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert TAP in record.getMessage() and device.fallback_reason in record.getMessage()


@pytest.mark.netns
def test_engine_uring_does_not_fall_back(netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_io_uring(monkeypatch)
    with pytest.raises(UringUnavailable, match="io_uring_disabled"):
        TapDevice(TAP, netns=netns, engine="uring")
    assert not link_exists(netns, TAP), "a failed open must not leave the TAP behind"


# -- the TAP disappearing ---------------------------------------------------------


@pytest.mark.netns
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("first_call", ["receive", "transmit"])
def test_deleting_the_link_raises_device_gone(netns: str, engine: str, first_call: str) -> None:
    with TapDevice(TAP, netns=netns, **engine_args(engine), offload=False) as device:
        ip("-n", netns, "link", "del", TAP)
        # The kernel fails the reads in flight (or the next read) with EBADFD, which
        # makes the readiness descriptor readable.
        assert select.select([device.fileno()], [], [], WAIT)[0]
        calls: dict[str, Callable[[], object]] = {
            "receive": lambda: device.receive(8),
            "transmit": lambda: device.transmit([bytes(60)]),
        }
        with pytest.raises(DeviceGone, match=f"'{TAP}' disappeared") as raised:
            calls[first_call]()
        assert raised.value.errno == errno.ENODEV
        assert "File descriptor in bad state" in str(raised.value)  # EBADFD
        for call in calls.values():
            with pytest.raises(DeviceGone):
                call()


# -- refusals before any frame moves ---------------------------------------------


def test_a_namespace_that_does_not_exist_is_named() -> None:
    missing = f"ethox-taptest-{os.getpid()}-missing"
    with pytest.raises(DeviceNotFound, match=missing) as raised:
        TapDevice(TAP, netns=missing)
    assert raised.value.errno == errno.ENODEV


@pytest.mark.parametrize(("name", "message"), [
    ("a" * 16, "at most 15"), ("", "not a valid"), ("a/b", "not a valid"),
    ("a b", "not a valid"), ("..", "not a valid")])
def test_names_linux_cannot_take_are_refused(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TapDevice(name)


@pytest.mark.parametrize(("options", "message"), [
    ({"engine": "turbo"}, "engine"), ({"mtu": 67}, "mtu"), ({"max_batch": 0}, "max_batch"),
    ({"rx_buffers": 0}, "rx_buffers"), ({"txqueuelen": -1}, "txqueuelen")])
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TapDevice(TAP, **options)  # type: ignore[arg-type]


def test_a_missing_dev_net_tun_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap_module, "_TUN_PATH", "/nonexistent/net/tun")
    with pytest.raises(DeviceError, match="/nonexistent/net/tun does not exist") as raised:
        TapDevice(TAP)
    assert raised.value.errno == errno.ENOENT


@pytest.mark.netns
def test_without_cap_net_admin_the_error_says_so(netns: str) -> None:
    script = ("from ethox_asyncio.device.tap import TapDevice\n"
              "try:\n    TapDevice('etap0')\n"
              "except Exception as error:\n    print(type(error).__name__, error)\n")
    # Root without CAP_NET_ADMIN: dropped from the bounding set, it is gone after exec.
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "setpriv", "--bounding-set=-net_admin",
         "--inh-caps=-net_admin", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert result.stdout.startswith(DevicePermissionError.__name__)
    assert "creating/attaching TAP 'etap0' needs CAP_NET_ADMIN (run as root)" in result.stdout
