"""The compiled batch ring (ethox_asyncio/device/_uring_batch.c) against real TAPs.

Every ``netns`` test gets a namespace from ``ethox_asyncio.netns.topology()`` and, in
it, its own TAP ``etap0`` (opened with ``tap._open_tap``, gone when its fd closes)
created with IPv6 off, so the only frames on it are the ones a test sends: from the
kernel's side through an AF_PACKET socket bound to the TAP (the kernel transmits them
into the TAP queue, we read them), and towards the kernel with ``Ring.transmit()``.
Frames carry a sequence number (``experimental_frame``), so loss, duplication and
reordering are counted, not guessed. Every test runs with and without
``defer_taskrun``.

The module is skipped when the extension was not built, and fails instead when
``ETHOX_REQUIRE_URING_BATCH=1`` (CI sets it).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ethox_asyncio.device.nsenter import in_netns
from ethox_asyncio.device.tap import _open_tap
from ethox_asyncio.netns import topology
from tests.device.test_tap import (
    TAP,
    WAIT,
    experimental_frame,
    ip,
    kernel_packets,
    kernel_side_listener,
    ping_pong_with_a_pinger,
)

REQUIRED = os.environ.get("ETHOX_REQUIRE_URING_BATCH") == "1"
try:
    from ethox_asyncio.device import _uring_batch
except ImportError as import_error:
    if REQUIRED:
        pytest.fail(f"ETHOX_REQUIRE_URING_BATCH=1 but ethox_asyncio.device._uring_batch does "
                    f"not import: {import_error}", pytrace=False)
    pytest.skip(f"ethox_asyncio.device._uring_batch is not built ({import_error}); "
                "`pip install -e .` builds it with gcc and the Python headers",
                allow_module_level=True)

Ring = _uring_batch.Ring
BUFFER_LEN = 1514
DEVICE_GONE = {errno.EBADFD, errno.ENODEV, errno.EIO}


@pytest.fixture(params=[False, True], ids=["coop", "defer"])
def defer(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def netns() -> Iterator[str]:
    with topology("tap") as topo:
        # TAPs created from now on get no IPv6: no router solicitations, no MLD reports.
        ip("netns", "exec", topo.netns, "sysctl", "-q", "-w",
           "net.ipv6.conf.default.disable_ipv6=1")
        yield topo.netns


@contextmanager
def tap_fd(netns: str, txqueuelen: int = 1000) -> Iterator[int]:
    fd = _open_tap(TAP, netns, offload=False, mtu=1500, txqueuelen=txqueuelen)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def ring_on(fd: int, defer: bool, *, rx: int = 8, tx: int = 8,
            buffer_len: int = BUFFER_LEN) -> Iterator[Any]:
    ring = Ring(fd, rx_buffers=rx, tx_buffers=tx, buffer_len=buffer_len, defer_taskrun=defer)
    try:
        assert ring.defer_taskrun is defer
        yield ring
    finally:
        ring.close()


@contextmanager
def kernel_sender(netns: str) -> Iterator[socket.socket]:
    """An AF_PACKET socket on the TAP's kernel side: what it sends, we read."""
    with in_netns(netns):
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    with sender:
        sender.bind((TAP, 0))
        yield sender


def sequence(frame: bytes | memoryview) -> int:
    return int.from_bytes(frame[14:18], "big")


def readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def receive_frames(ring: Any, count: int, max_frames: int = 64) -> list[bytes]:
    """Receive until ``count`` frames arrived (at most WAIT seconds)."""
    frames: list[bytes] = []
    deadline = time.monotonic() + WAIT
    while len(frames) < count and time.monotonic() < deadline:
        readable(ring.eventfd(), 0.05)
        batch = ring.receive(max_frames)
        assert len(batch) <= max_frames
        frames += [bytes(view) for view in batch]
    assert len(frames) == count, f"got {len(frames)} of {count} frames in {WAIT} s"
    return frames


def tap_tx_dropped(netns: str) -> int:
    """Frames the kernel dropped because the TAP queue was full."""
    return int(ip("netns", "exec", netns, "cat", f"/sys/class/net/{TAP}/statistics/tx_dropped"))


# -- receiving ----------------------------------------------------------------------


@pytest.mark.netns
def test_frames_from_the_kernel_arrive_byte_exact_and_in_order(netns: str, defer: bool) -> None:
    lengths = [60, 61, 1514, 100, 800, 1500, 64, 1513] * 5
    sent = [experimental_frame(number, length) for number, length in enumerate(lengths)]
    with tap_fd(netns) as fd, ring_on(fd, defer, rx=8) as ring, kernel_sender(netns) as sender:
        for frame in sent:  # 40 frames into 8 buffers: the multishot ends and re-arms
            sender.send(frame)
        received: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while len(received) < len(sent) and time.monotonic() < deadline:
            readable(ring.eventfd(), 0.05)
            views = ring.receive(5)
            assert len(views) <= 5
            for view in views:
                assert not view.readonly and view.nbytes == len(view)
            received += [bytes(view) for view in views]
        stats = ring.stats()
        assert received == sent
        assert (stats["rx_frames"], stats["rx_bytes"]) == (len(sent), sum(lengths))
        assert stats["rx_errors"] == 0
        assert kernel_packets(netns, "tx") == len(sent)  # the TAP counts frames read


@pytest.mark.netns
def test_received_views_are_writable_and_reused_only_by_the_next_receive(
        netns: str, defer: bool) -> None:
    with tap_fd(netns) as fd, ring_on(fd, defer, rx=2) as ring, kernel_sender(netns) as sender:
        sender.send(experimental_frame(1, 60))
        (view,) = receive_frames_views(ring, 1)
        view[20:24] = b"MINE"  # the stack may answer in place
        assert bytes(view[20:24]) == b"MINE" and sequence(view) == 1
        sender.send(experimental_frame(2, 60))
        time.sleep(0.05)  # the second frame lands in the other buffer
        assert bytes(view[20:24]) == b"MINE"
        (second,) = receive_frames_views(ring, 1)
        assert sequence(second) == 2


def receive_frames_views(ring: Any, count: int) -> list[memoryview]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        readable(ring.eventfd(), 0.05)
        views: list[memoryview] = ring.receive(count)
        if views:
            assert len(views) == count
            return views
    pytest.fail(f"no frame within {WAIT} s")


@pytest.mark.netns
def test_the_eventfd_is_readable_exactly_while_frames_wait(netns: str, defer: bool) -> None:
    with tap_fd(netns) as fd, ring_on(fd, defer, rx=8) as ring, kernel_sender(netns) as sender:
        efd = ring.eventfd()
        assert not readable(efd, 0.05)
        assert ring.receive(8) == []
        assert not readable(efd, 0.05), "an empty receive() must not leave it readable"
        for number in range(5):
            sender.send(experimental_frame(number, 60))
        assert readable(efd, WAIT)
        got = [sequence(view) for view in ring.receive(2)]
        assert got == [0, 1]
        assert readable(efd), "3 frames wait: receive() re-signals the eventfd"
        got = [sequence(view) for view in ring.receive(2)]
        assert got == [2, 3]
        assert readable(efd)
        got = [sequence(view) for view in ring.receive(2)]
        assert got == [4]
        assert not readable(efd, 0.1), "the last frame was taken"
        assert ring.receive(2) == []
        assert not readable(efd, 0.1)
        # Our own writes complete inside transmit(): they must not wake the loop.
        assert ring.transmit([experimental_frame(9, 60)] * 3) == 3
        assert not readable(efd, 0.1)
        sender.send(experimental_frame(5, 60))
        assert readable(efd, WAIT), "and a new frame wakes it again"
        assert [sequence(view) for view in ring.receive(8)] == [5]
        assert not readable(efd, 0.1)


@pytest.mark.netns
def test_handing_out_every_buffer_keeps_the_eventfd_readable(netns: str, defer: bool) -> None:
    """With every buffer handed out, frames wait in the TAP queue where no completion
    can announce them: the eventfd must stay readable until the next receive() gives
    the buffers back, or a loop that waits for it stalls."""
    with tap_fd(netns) as fd, ring_on(fd, defer, rx=4) as ring, kernel_sender(netns) as sender:
        efd = ring.eventfd()
        for number in range(4):
            sender.send(experimental_frame(number, 60))
        assert [sequence(view) for view in receive_frames_views(ring, 4)] == [0, 1, 2, 3]
        assert readable(efd), "every buffer is out: the next receive() must come"
        for number in range(4, 10):
            sender.send(experimental_frame(number, 60))
        assert readable(efd, WAIT)
        assert [sequence(view) for view in ring.receive(3)] == [4, 5, 6]
        assert readable(efd)  # 1 buffer in the kernel holds frame 7 (or will)
        rest: list[int] = []
        deadline = time.monotonic() + WAIT
        while len(rest) < 3 and time.monotonic() < deadline:
            assert readable(efd, WAIT), f"stalled after {rest}"
            rest += [sequence(view) for view in ring.receive(8)]
        assert rest == [7, 8, 9]
        assert ring.receive(8) == []
        assert not readable(efd, 0.1), "buffers back, nothing waits: quiet"


@pytest.mark.netns
def test_with_every_buffer_out_the_read_rearms_and_nothing_is_lost(
        netns: str, defer: bool) -> None:
    """4 buffers, 120 frames sent while we do not read: the multishot read ends with
    ENOBUFS, the frames wait in the TAP queue, and every one arrives exactly once."""
    count = 120
    with tap_fd(netns, txqueuelen=1000) as fd, ring_on(fd, defer, rx=4) as ring, \
            kernel_sender(netns) as sender:
        dropped_before = tap_tx_dropped(netns)
        held = None
        for number in range(count):
            sender.send(experimental_frame(number, 200))
            if number == 10:  # hold 4 views: no buffer left for the kernel at all
                held = receive_frames_views(ring, 4)
        assert held is not None and [sequence(view) for view in held] == [0, 1, 2, 3]
        time.sleep(0.1)  # 116 frames wait in the TAP queue; the kernel has no buffer
        received = [0, 1, 2, 3]
        deadline = time.monotonic() + WAIT
        while len(received) < count and time.monotonic() < deadline:
            readable(ring.eventfd(), 0.05)
            received += [sequence(view) for view in ring.receive(3)]
        stats = ring.stats()
        assert received == list(range(count))
        assert stats["enobufs"] >= 1 and stats["rearms"] >= 1
        assert stats["rx_frames"] == count and stats["rx_errors"] == 0
        assert tap_tx_dropped(netns) == dropped_before
        assert not readable(ring.eventfd(), 0.1)


SENDER = """
import socket, sys, time
ifname, count, seconds, burst = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((ifname, 0))
head = b"\\xff" * 6 + bytes.fromhex("020000000002") + b"\\x88\\xb5"
pad = bytes(60 - 18)
deadline = time.monotonic() + seconds
sent = 0
while sent < count and time.monotonic() < deadline:
    try:
        s.send(head + sent.to_bytes(4, "big") + pad)
    except OSError:  # ENOBUFS: not sent, try the same number again
        time.sleep(0.0001)
        continue
    sent += 1
    if sent % burst == 0:
        time.sleep(0.001)  # bursts: some overflow the queue, most do not
print(sent)
"""


@pytest.mark.netns
@pytest.mark.parametrize(("rx", "tx"), [(1, 1), (2, 2), (4, 3)])
def test_a_concurrent_sender_loses_only_what_the_tap_queue_drops(
        netns: str, defer: bool, rx: int, tx: int) -> None:
    """A sender process floods the TAP (queue 64) while we receive in small, random
    batches, echo some frames back (through too few send slots) and now and then
    pause: every frame is received exactly once, in order, or counted as dropped by
    the kernel."""
    count, burst = 20000, 40
    rng = random.Random(f"{rx}-{tx}-{defer}")
    with tap_fd(netns, txqueuelen=64) as fd, ring_on(fd, defer, rx=rx, tx=tx) as ring:
        dropped_before = tap_tx_dropped(netns)
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", SENDER, TAP, str(count), "10",
             str(burst)],
            stdout=subprocess.PIPE, text=True)
        try:
            received: list[int] = []
            accepted = offered = 0
            last_frame = time.monotonic()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if process.poll() is not None and time.monotonic() - last_frame > 0.5:
                    break
                readable(ring.eventfd(), 0.02)
                views = ring.receive(rng.randint(1, rx + 1))
                if views:
                    last_frame = time.monotonic()
                    received += [sequence(view) for view in views]
                    if rng.random() < 0.3:
                        offered += len(views)
                        accepted += ring.transmit(list(views))
                if rng.random() < 0.01:
                    time.sleep(0.002)  # every buffer runs out meanwhile
            stdout, _ = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        sent = int(stdout)
        dropped = tap_tx_dropped(netns) - dropped_before
        stats = ring.stats()
    assert sent > 1000
    assert len(set(received)) == len(received), "a frame was received twice"
    assert received == sorted(received), "frames were reordered"
    assert received and received[-1] < sent
    assert len(received) + dropped == sent, (
        f"sent {sent}, received {len(received)}, dropped by the TAP {dropped}: "
        f"{sent - len(received) - dropped} lost")
    assert stats["rx_frames"] == len(received) and stats["rx_errors"] == 0
    assert stats["rearms"] >= 100, "tiny rings: the multishot read ran dry over and over"
    assert accepted <= offered and stats["tx_frames"] == accepted and stats["tx_errors"] == 0


# -- sending ------------------------------------------------------------------------


@pytest.mark.netns
def test_gathered_frames_reach_the_kernel_as_the_joined_bytes(netns: str, defer: bool) -> None:
    ethernet = [experimental_frame(number, length)
                for number, length in enumerate([60, 1514, 800, 61])]
    frames = [
        (bytearray(ethernet[0][:14]), memoryview(ethernet[0][14:])),
        (bytes(ethernet[1][:10]), bytearray(ethernet[1][10:54]), memoryview(ethernet[1][54:])),
        ethernet[2],
        (bytearray(ethernet[3][:20]), b"", memoryview(ethernet[3][20:])),
    ]
    with tap_fd(netns) as fd, ring_on(fd, defer, tx=8) as ring, \
            kernel_side_listener(netns) as listener:
        assert ring.transmit(frames) == 4
        received = [listener.recv(70000) for _ in range(4)]
        stats = ring.stats()
        kernel_received = kernel_packets(netns, "rx")
    assert received == ethernet
    assert (stats["tx_frames"], stats["tx_bytes"]) == (4, sum(map(len, ethernet)))
    assert stats["tx_errors"] == stats["tx_dropped"] == 0
    assert kernel_received == 4


@pytest.mark.netns
def test_a_frame_over_buffer_len_raises_before_anything_is_sent(netns: str, defer: bool) -> None:
    fits = experimental_frame(1, 60)
    too_long = experimental_frame(2, BUFFER_LEN + 1)
    third = len(too_long) // 3
    pieces = (bytearray(too_long[:third]), too_long[third:2 * third],
              memoryview(too_long[2 * third:]))
    with tap_fd(netns) as fd, ring_on(fd, defer, tx=8) as ring:
        with pytest.raises(ValueError, match=f"{BUFFER_LEN + 1} bytes.*buffer_len"):
            ring.transmit([fits, too_long])
        with pytest.raises(ValueError, match="buffer_len"):
            ring.transmit([(fits[:30], fits[30:]), pieces])  # only the sum is too long
        with pytest.raises(TypeError):
            ring.transmit([fits, (fits[:30], 12345)])  # not bytes-like: nothing sent either
        assert ring.tx_available == 8, "a refused batch takes no send slot"
        assert ring.stats()["tx_frames"] == 0
        assert kernel_packets(netns, "rx") == 0, "nothing of a refused batch is sent"
        assert ring.transmit([fits, experimental_frame(3, BUFFER_LEN)]) == 2
        assert kernel_packets(netns, "rx") == 2


# -- the device and the ring going away ------------------------------------------


@pytest.mark.netns
def test_deleting_the_link_fails_receive_and_transmit_with_its_errno(
        netns: str, defer: bool) -> None:
    with tap_fd(netns) as fd, ring_on(fd, defer) as ring:
        ip("-n", netns, "link", "del", TAP)
        assert readable(ring.eventfd(), WAIT), "the failed read wakes the loop"
        with pytest.raises(OSError) as raised:
            ring.receive(8)
        assert raised.value.errno in DEVICE_GONE
        for call in (lambda: ring.receive(8), lambda: ring.transmit([bytes(60)])):
            with pytest.raises(OSError) as again:
                call()
            assert again.value.errno == raised.value.errno


@pytest.mark.netns
def test_close_is_idempotent_and_every_later_call_raises(netns: str, defer: bool) -> None:
    with tap_fd(netns) as fd, kernel_sender(netns) as sender:
        ring = Ring(fd, rx_buffers=4, tx_buffers=4, buffer_len=BUFFER_LEN, defer_taskrun=defer)
        efd = ring.eventfd()
        for number in range(6):
            sender.send(experimental_frame(number, 100))
        views = receive_frames_views(ring, 2)  # handed out, 2 more queued, 2 in the TAP
        ring.close()
        assert ring.closed
        ring.close()
        for call in (lambda: ring.receive(1), lambda: ring.transmit([bytes(60)]),
                     ring.eventfd, ring.stats):
            with pytest.raises(ValueError, match="ring is closed"):
                call()
        with pytest.raises(OSError) as closed_fd:
            fcntl.fcntl(efd, fcntl.F_GETFD)
        assert closed_fd.value.errno == errno.EBADF, "close() closes the eventfd"
        # Views outlive the ring: stale by contract, but never unmapped memory.
        assert [sequence(view) for view in views] == [0, 1]
        assert bytes(views[1]) == experimental_frame(1, 100)
        assert _uring_batch._unreclaimed == [], "the kernel let go of every buffer"
    # The TAP fd still works without the ring: the ring never owned it.




@pytest.mark.netns
def test_one_frame_at_a_time_creates_no_io_wq_workers(netns: str, defer: bool) -> None:
    """Ping-pong with a kernel-side process, one frame in flight. The multishot read is
    driven by poll in our own task. With one READ in flight per buffer instead, the
    same exchange grows ~50 ``iou-wrk`` threads blocked in tun_do_read (measured on
    Linux 6.18 with the pure-Python engine's single reads; only when the frames come
    from another process, not when this thread sends them itself)."""
    with tap_fd(netns) as fd, ring_on(fd, defer, rx=64, tx=64) as ring:
        echoed = 0

        def echo() -> None:
            nonlocal echoed
            views = ring.receive(8)
            assert len(views) <= 1, "one frame in flight"
            echoed += ring.transmit(views)

        stdout, new_workers = ping_pong_with_a_pinger(netns, ring.eventfd(), echo, 500)
        stats = ring.stats()
    assert stdout.strip() == "done", "the pinger got every frame back"
    assert new_workers == set(), f"io-wq workers appeared: {sorted(new_workers)}"
    assert echoed == stats["rx_frames"] == stats["tx_frames"] == 500
    assert stats["rearms"] == 0, "one multishot read served the whole exchange"


# -- without a TAP: a datagram socket pair stands in ------------------------------


@contextmanager
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, peer:
        yield ours, peer


def test_transmit_accepts_only_what_free_send_slots_hold(defer: bool) -> None:
    """Writes that cannot complete at once (a full socket buffer) keep their slots;
    transmit() then accepts fewer frames, and more again once they complete."""
    frames = [bytes([number]) * 1000 for number in range(12)]
    with socket_pair() as (ours, peer):
        # Writes of 1000-byte datagrams wait after the first few (SO_SNDBUF's minimum).
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        peer.setblocking(False)
        with ring_on(ours.fileno(), defer, rx=2, tx=4, buffer_len=2048) as ring:
            assert ring.transmit(frames) == 4, "4 send slots"
            assert ring.tx_available < 4, "some writes wait for room, holding their slots"
            accepted, refused, got = 4, 0, []
            deadline = time.monotonic() + WAIT
            while (accepted < len(frames) or len(got) < len(frames)) and \
                    time.monotonic() < deadline:
                try:
                    got.append(peer.recv(2000))
                    continue
                except BlockingIOError:
                    pass
                offered = len(frames) - accepted
                if offered:
                    taken = ring.transmit(frames[accepted:])
                    refused += taken < offered
                    accepted += taken
                if readable(ring.eventfd(), 0.001):
                    # As a pump would: under defer_taskrun, writes that waited for room
                    # complete as deferred work, which only receive() runs.
                    assert ring.receive(8) == []
            assert ring.receive(8) == []  # reaps the last completions into the counters
            stats = ring.stats()
    assert accepted == len(frames) and refused >= 1
    # Writes that had to wait may complete in any order; none is lost or doubled.
    assert sorted(got) == sorted(frames)
    assert stats["tx_frames"] == len(frames) and stats["tx_errors"] == 0


def test_receive_hands_out_at_most_max_frames_in_arrival_order(defer: bool) -> None:
    with socket_pair() as (ours, peer), ring_on(ours.fileno(), defer, rx=4, buffer_len=256) as ring:
        sent = [b"datagram %03d" % number for number in range(50)]
        received: list[bytes] = []
        for start in range(0, 50, 10):
            for datagram in sent[start:start + 10]:
                peer.send(datagram)
            deadline = time.monotonic() + WAIT
            while len(received) < start + 10 and time.monotonic() < deadline:
                readable(ring.eventfd(), 0.05)
                batch = ring.receive(3)
                assert len(batch) <= 3
                received += [bytes(view) for view in batch]
        assert received == sent
        assert ring.stats()["rearms"] >= 1  # 10 datagrams into 4 buffers


def test_a_descriptor_that_cannot_poll_is_refused(tmp_path: Any, defer: bool) -> None:
    path = tmp_path / "regular"
    path.write_bytes(b"not a device")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            Ring(fd, rx_buffers=2, tx_buffers=2, buffer_len=64, defer_taskrun=defer)
        assert raised.value.errno == errno.EBADFD
    finally:
        os.close(fd)


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"rx_buffers": 0}, ValueError, "rx_buffers"),
    ({"rx_buffers": 32769}, ValueError, "rx_buffers"),
    ({"tx_buffers": 0}, ValueError, "tx_buffers"),
    ({"buffer_len": 0}, ValueError, "buffer_len"),
    ({"buffer_len": None}, TypeError, "integer"),
])
def test_bad_arguments_are_refused(options: dict[str, Any], error: type[Exception],
                                   message: str) -> None:
    arguments: dict[str, Any] = {"rx_buffers": 2, "tx_buffers": 2, "buffer_len": 64, **options}
    with socket_pair() as (ours, _), pytest.raises(error, match=message):
        Ring(ours.fileno(), **arguments)


def test_the_buffer_sizes_must_be_given_by_keyword() -> None:
    with socket_pair() as (ours, _):
        with pytest.raises(TypeError, match="rx_buffers, tx_buffers and buffer_len"):
            Ring(ours.fileno())
        with pytest.raises(TypeError):
            Ring(ours.fileno(), 2, 2, 64)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="fd"):
            Ring(-1, rx_buffers=2, tx_buffers=2, buffer_len=64)


def test_the_setup_flags_say_what_the_kernel_accepted(defer: bool) -> None:
    module = _uring_batch
    with socket_pair() as (ours, _), ring_on(ours.fileno(), defer, rx=2, tx=2) as ring:
        flags = ring.setup_flags
        assert flags & module.IORING_SETUP_TASKRUN_FLAG
        if defer:
            assert flags & module.IORING_SETUP_DEFER_TASKRUN
            assert flags & module.IORING_SETUP_SINGLE_ISSUER
        else:
            assert flags & module.IORING_SETUP_COOP_TASKRUN
            assert not flags & module.IORING_SETUP_DEFER_TASKRUN


def test_the_compiled_abi_constants_match_the_liburing_package() -> None:
    """The header on the build machine may be older than the kernel (Debian's 6.1
    lacks IORING_OP_READ_MULTISHOT): the values we define must be the kernel's."""
    liburing = pytest.importorskip("liburing")
    module = _uring_batch
    for name in ["IORING_CQE_F_BUFFER", "IORING_CQE_F_MORE", "IORING_CQE_BUFFER_SHIFT",
                 "IOSQE_BUFFER_SELECT", "IORING_SETUP_COOP_TASKRUN", "IORING_SETUP_TASKRUN_FLAG",
                 "IORING_SETUP_SINGLE_ISSUER", "IORING_SETUP_DEFER_TASKRUN",
                 "IORING_SETUP_SUBMIT_ALL", "IORING_SETUP_CQSIZE", "IORING_SQ_TASKRUN",
                 "IORING_CQ_EVENTFD_DISABLED", "IORING_ENTER_GETEVENTS", "IORING_ENTER_EXT_ARG",
                 "IORING_FEAT_SINGLE_MMAP", "IORING_FEAT_EXT_ARG", "IORING_ASYNC_CANCEL_ALL",
                 "IORING_ASYNC_CANCEL_ANY", "IORING_OFF_SQ_RING", "IORING_OFF_CQ_RING",
                 "IORING_OFF_SQES"]:
        assert getattr(module, name) == getattr(liburing, name), name
    # Opcodes are not exported: read them back from SQEs liburing prepared.
    ring = liburing.Ring()
    liburing.io_uring_queue_init(4, ring)
    try:
        sqe = liburing.io_uring_get_sqe(ring)
        liburing.io_uring_prep_read_multishot(sqe, 0, 0, 0, 0)
        assert (sqe.opcode, sqe.flags) == (module.IORING_OP_READ_MULTISHOT,
                                           module.IOSQE_BUFFER_SELECT)
        sqe = liburing.io_uring_get_sqe(ring)
        liburing.io_uring_prep_write(sqe, 0, b"x")
        assert sqe.opcode == module.IORING_OP_WRITE
        sqe = liburing.io_uring_get_sqe(ring)
        liburing.io_uring_prep_cancel64(sqe, 0, 0)
        assert sqe.opcode == module.IORING_OP_ASYNC_CANCEL
    finally:
        liburing.io_uring_queue_exit(ring)


def test_the_helper_compiles_without_a_warning(tmp_path: Path) -> None:
    """The build is optional and does not use -Werror (a new compiler's warning must not
    silently drop the extension for users): warnings are caught here instead."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = Path(__file__).resolve().parents[2] / "ethox_asyncio/device/_uring_batch.c"
    result = subprocess.run([compiler, "-fsyntax-only", "-O2", "-Wall", "-Wextra", "-Werror",
                             f"-I{sysconfig.get_paths()['include']}", str(source)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
