"""The io_uring frame engine, over socket pairs, pipes and ptys (no root needed).

A SOCK_DGRAM socket pair stands in for a TAP: one datagram is one frame, in both
directions. Writes are made to wait (a full send buffer) where a test needs an
operation still in flight when it looks.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import select
import socket
import time
from collections.abc import Iterator

import liburing
import pytest

from ethox_asyncio.device import uring
from ethox_asyncio.device.base import DeviceClosed, DeviceGone, Frame, FrameTooLarge
from ethox_asyncio.device.uring import (
    BufferPool,
    BufferState,
    BufferStateError,
    UringEngine,
    UringUnavailable,
)

FREE, RECEIVING, RECEIVED, SENDING = BufferState
LEGAL_MOVES = [
    (FREE, RECEIVING), (RECEIVING, RECEIVED), (RECEIVING, FREE), (RECEIVED, RECEIVING),
    (RECEIVED, FREE), (FREE, SENDING), (SENDING, FREE),
]
# The shortest way to bring a FREE buffer into each state.
PATH_TO = {FREE: [], RECEIVING: [RECEIVING], RECEIVED: [RECEIVING, RECEIVED],
           SENDING: [SENDING]}
WAIT = 2.0  # seconds any one completion may take to show up


def readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def receive_exactly(engine: UringEngine, count: int, max_frames: int = 64) -> list[bytes]:
    """Receive until ``count`` frames arrived (bounded by WAIT seconds)."""
    frames: list[bytes] = []
    deadline = time.monotonic() + WAIT
    while len(frames) < count and time.monotonic() < deadline:
        readable(engine.fileno(), 0.1)
        batch = engine.receive(max_frames)
        assert len(batch) <= max_frames
        frames.extend(bytes(frame) for frame in batch)
    assert len(frames) == count, f"got {len(frames)} of {count} frames in {WAIT} s"
    return frames


def drain(sock: socket.socket, count: int) -> list[bytes]:
    sock.settimeout(WAIT)
    return [sock.recv(70000) for _ in range(count)]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, peer:
        yield ours, peer


@pytest.fixture(params=[True, False], ids=["multishot", "single-reads"])
def multishot(request: pytest.FixtureRequest) -> bool:
    """Both receive modes: one multishot read over provided buffers (Linux >= 6.7, the
    default where supported), and one read per buffer (the fallback)."""
    return bool(request.param)


@pytest.fixture
def engine(pair: tuple[socket.socket, socket.socket], multishot: bool) -> Iterator[UringEngine]:
    ours, _ = pair
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=8,
                         tx_buffers=8, multishot=multishot)
    assert engine.multishot is multishot
    yield engine
    engine.close()


def small_send_buffer(sock: socket.socket) -> None:
    """Make writes of 1000-byte datagrams wait after the first few (the kernel doubles
    the value and enforces a minimum near 4.5 KiB, socket(7))."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)


# -- BufferPool -------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), LEGAL_MOVES)
def test_every_legal_move_is_allowed_and_counted(old: BufferState, new: BufferState) -> None:
    pool = BufferPool(3, 16)
    for state in PATH_TO[old]:
        pool.move(1, state)
    pool.move(1, new)
    assert pool.state(1) is new
    assert pool.count(new) == 1 + (2 if new is FREE else 0)
    assert sum(pool.count(state) for state in BufferState) == 3


@pytest.mark.parametrize(
    ("old", "new"),
    [move for move in itertools.product(BufferState, repeat=2) if move not in LEGAL_MOVES])
def test_every_other_move_raises(old: BufferState, new: BufferState) -> None:
    pool = BufferPool(1, 16)
    for state in PATH_TO[old]:
        pool.move(0, state)
    with pytest.raises(BufferStateError, match=f"{old.name} -> {new.name}"):
        pool.move(0, new)
    assert pool.state(0) is old
    assert pool.count(old) == 1


def test_move_many_moves_all_buffers_or_none() -> None:
    pool = BufferPool(4, 16)
    pool.move_many([0, 1, 2], SENDING)
    assert pool.count(SENDING) == 3 and pool.count(FREE) == 1
    with pytest.raises(BufferStateError, match="buffer 2: SENDING -> RECEIVING"):
        pool.move_many([3, 2, 1], RECEIVING)
    assert [pool.state(index) for index in range(4)] == [SENDING, SENDING, SENDING, FREE]
    assert (pool.count(SENDING), pool.count(FREE)) == (3, 1)
    pool.move_many([0, 1, 2], FREE)
    pool.move_many([0, 3], RECEIVING)
    pool.move(0, RECEIVED)
    pool.move_many([0, 3], FREE)  # from two different states at once
    assert pool.count(FREE) == 4


def test_pool_buffers_are_sized() -> None:
    pool = BufferPool(4, 100)
    assert len(pool) == 4
    assert [len(buffer) for buffer in pool.buffers] == [100] * 4
    with pytest.raises(ValueError, match="count >= 1"):
        BufferPool(0, 100)


# -- receiving --------------------------------------------------------------------


def test_frames_arrive_in_order_in_bounded_batches(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    sent = [b"frame %03d " % number + bytes(number) for number in range(100)]
    received: list[bytes] = []
    # Only 8 reads can be in flight: sending in chunks and never calling transmit()
    # also shows that receive() re-arms (submits) on its own.
    for chunk_start in range(0, 100, 8):
        for frame in sent[chunk_start:chunk_start + 8]:
            peer.send(frame)
        received += receive_exactly(engine, len(sent[chunk_start:chunk_start + 8]),
                                    max_frames=3)
    assert received == sent
    assert engine.stats.rx_frames == 100
    assert engine.stats.rx_bytes == sum(map(len, sent))


def test_received_views_are_writable_slices_of_pool_buffers(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    peer.send(b"hello")
    assert readable(engine.fileno(), WAIT)
    (frame,) = engine.receive(8)
    assert bytes(frame) == b"hello" and not frame.readonly
    frame[0:1] = b"j"
    assert any(buffer.startswith(b"jello") for buffer in engine.pool.buffers)


def test_eventfd_is_readable_exactly_while_frames_wait(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    assert not readable(engine.fileno())
    for number in range(5):
        peer.send(b"f%d" % number)
    assert readable(engine.fileno(), WAIT)
    time.sleep(0.05)  # let all five reads complete
    assert len(engine.receive(2)) == 2
    assert readable(engine.fileno()), "frames left behind must keep the eventfd readable"
    receive_exactly(engine, 3)
    assert not readable(engine.fileno(), 0.05)
    assert engine.receive(8) == []


def test_empty_reads_are_counted_and_re_armed(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    peer.send(b"")
    peer.send(b"real")
    assert receive_exactly(engine, 1) == [b"real"]
    assert engine.stats.rx_errors == 1
    assert engine.pool.count(RECEIVING) == 8 - 1  # all but the one handed out


def test_read_errors_are_counted_and_the_buffers_re_armed(multishot: bool) -> None:
    read_end, write_end = os.pipe()
    try:
        # read() on a pipe's write end fails with EBADF: an error, not a vanished device.
        engine = UringEngine(write_end, name="pipe", buffer_len=64, rx_buffers=4,
                             tx_buffers=1, low_watermark=4, multishot=multishot)
        try:
            assert readable(engine.fileno(), WAIT)
            time.sleep(0.05)
            assert engine.receive(8) == []
            # One failure per read in flight; the multishot read is one read.
            assert engine.stats.rx_errors == (1 if multishot else 4)
            assert engine.pool.count(RECEIVING) == 4
        finally:
            engine.close()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_device_failing_reads_with_eio_is_gone() -> None:
    """(Single reads only: a multishot read on a pty whose terminal is closed never
    completes, measured on Linux 6.18; the multishot mode's gone device is a deleted TAP,
    tests/device/test_tap.py.)"""
    controller, terminal = os.openpty()
    os.close(terminal)  # reads on the controller side now fail with EIO
    try:
        engine = UringEngine(controller, name="pty", buffer_len=64, rx_buffers=2, tx_buffers=1,
                             multishot=False)
        assert readable(engine.fileno(), WAIT)
        time.sleep(0.05)
        with pytest.raises(DeviceGone, match="'pty' disappeared") as raised:
            engine.receive(8)
        assert raised.value.errno == errno.ENODEV
        with pytest.raises(DeviceGone):
            engine.transmit([b"x"])
        engine.close()
    finally:
        os.close(controller)


# -- transmitting -----------------------------------------------------------------


def test_transmit_sends_every_frame(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    frames: list[Frame] = [b"a" * 60, bytearray(b"b" * 61), memoryview(b"c" * 62)]
    assert engine.transmit(frames) == 3
    assert drain(peer, 3) == [bytes(frame) for frame in frames]
    assert (engine.stats.tx_frames, engine.stats.tx_bytes) == (3, 183)
    assert not readable(engine.fileno()), "write completions must not wake the loop"


def gathered(frame: bytes, *cuts: int) -> tuple[bytearray | memoryview, ...]:
    """``frame`` cut at ``cuts`` into pieces as the stack hands them over: bytearrays of
    headers it just built, then the payload as a read-only view of application bytes."""
    bounds = [0, *cuts, len(frame)]
    pieces: list[bytearray | memoryview] = [
        bytearray(frame[start:end]) for start, end in itertools.pairwise(bounds[:-1])]
    pieces.append(memoryview(frame[bounds[-2]:]))
    return tuple(pieces)


def test_transmit_sends_gathered_frames_as_the_joined_bytes(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    two = bytes(range(200)) * 3
    three = bytes(reversed(range(256))) * 5
    frames: list[Frame] = [gathered(two, 54), gathered(three, 10, 64), b"contiguous"]
    assert engine.transmit(frames) == 3
    assert drain(peer, 3) == [two, three, b"contiguous"]
    assert (engine.stats.tx_frames, engine.stats.tx_bytes) == (3, 600 + 1280 + 10)
    assert engine.stats.tx_errors == 0


def test_a_reused_send_buffer_takes_each_gathered_frames_exact_length(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    single = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=1,
                         tx_buffers=1)
    try:
        # One send buffer shrinks and grows: long, short, longer, tiny, full, and a
        # frame with an empty piece in the middle.
        sent = []
        for number, (length, cuts) in enumerate([
                (1500, (10, 64)), (60, (14,)), (1800, (10, 64)), (12, (10,)),
                (2048, (1, 2, 2000)), (700, (54, 54))]):
            frame = bytes((number * 37 + i) % 256 for i in range(length))
            assert single.transmit([gathered(frame, *cuts)]) == 1
            sent.append(frame)
            assert drain(peer, 1) == [frame]
            single.receive(1)  # harvests the write, freeing the buffer
        assert single.stats.tx_bytes == sum(map(len, sent))
        assert single.stats.tx_frames == len(sent)
    finally:
        single.close()


def test_a_gathered_frame_larger_than_the_buffers_sends_nothing(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    # Every piece fits a buffer; only the whole frame does not.
    with pytest.raises(FrameTooLarge, match="2049 bytes"):
        engine.transmit([gathered(bytes(100), 14), gathered(bytes(2049), 10, 1024)])
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)
    assert engine.pool.count(SENDING) == 0
    assert engine.stats.tx_frames == 0


def test_transmit_copies_so_the_caller_may_reuse_its_buffers(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    small_send_buffer(ours)
    with_waiting_writes = UringEngine(ours.fileno(), name="pair", buffer_len=2048,
                                      rx_buffers=2, tx_buffers=16)
    try:
        frames = [bytearray(bytes([number]) * 1000) for number in range(16)]
        originals = [bytes(frame) for frame in frames]
        assert with_waiting_writes.transmit(frames) == 16
        assert with_waiting_writes.pool.count(SENDING) > 0, "some writes must still wait"
        for frame in frames:
            frame[:] = b"X" * 1000
        # Writes that had to wait for room complete in any order (a TAP's never wait).
        assert sorted(drain(peer, 16)) == originals
    finally:
        with_waiting_writes.close()


def test_transmit_accepts_only_as_many_frames_as_free_send_buffers(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    small_send_buffer(ours)
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=2,
                         tx_buffers=4)
    try:
        frames = [bytes([number]) * 1000 for number in range(10)]
        assert engine.transmit(frames) == 4
        waiting = engine.pool.count(SENDING)
        assert waiting > 0
        assert engine.transmit(frames[4:]) == 4 - waiting
        drain(peer, 8 - waiting)
        deadline = time.monotonic() + WAIT
        while engine.pool.count(SENDING) and time.monotonic() < deadline:
            time.sleep(0.01)
            engine.receive(8)  # harvests the write completions
        assert engine.stats.tx_frames == 8 - waiting
    finally:
        engine.close()


def test_a_frame_larger_than_the_buffers_sends_nothing(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    with pytest.raises(FrameTooLarge):
        engine.transmit([b"fits", bytes(2049)])
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)
    assert engine.pool.count(SENDING) == 0


def test_write_errors_are_counted(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=64, rx_buffers=1,
                         tx_buffers=2)
    try:
        peer.close()  # writes now fail with ECONNREFUSED
        assert engine.transmit([b"lost", b"lost too"]) == 2
        assert (engine.stats.tx_errors, engine.stats.tx_frames) == (2, 0)
        assert engine.pool.count(SENDING) == 0
    finally:
        engine.close()


def test_short_writes_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # A non-blocking stream socket takes what fits and returns a short count.
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, peer:
        ours.setblocking(False)
        with pytest.raises(BlockingIOError):
            for _ in range(1000):
                ours.send(bytes(4096))
        peer.recv(20000)
        engine = UringEngine(ours.fileno(), name="stream", buffer_len=300000, rx_buffers=1,
                             tx_buffers=1)
        try:
            with caplog.at_level(logging.ERROR, logger="ethox_asyncio.device"):
                assert engine.transmit([bytes(300000)]) == 1
            assert engine.stats.tx_errors == 1 and engine.stats.tx_frames == 0
            assert "short write" in caplog.text
        finally:
            engine.close()


def test_one_submit_per_receive_and_transmit_pump(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    _, peer = pair
    for _ in range(3):  # pump rounds: a frame in, a frame out
        peer.send(b"ping")
        assert readable(engine.fileno(), WAIT)
        submits = engine.stats.submits
        received = engine.receive(8)
        engine.transmit([b"pong"] * len(received))
        assert engine.stats.submits - submits == 1
    assert drain(peer, 3) == [b"pong"] * 3


def test_a_full_submission_queue_is_submitted_and_retried(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, peer = pair
    real_get_sqe = liburing.io_uring_get_sqe
    calls = itertools.count()
    monkeypatch.setattr(liburing, "io_uring_get_sqe",
                        lambda ring: None if next(calls) == 0 else real_get_sqe(ring))
    submits = engine.stats.submits
    assert engine.transmit([b"after a retry"]) == 1
    assert engine.stats.submits - submits == 2  # the retry's submit, then transmit's
    assert drain(peer, 1) == [b"after a retry"]


# -- setup and close --------------------------------------------------------------


def test_close_is_idempotent_and_later_calls_raise(
        engine: UringEngine, pair: tuple[socket.socket, socket.socket]) -> None:
    engine.transmit([b"x"])
    event_fd = engine.fileno()
    engine.close()
    engine.close()
    assert engine.closed
    assert engine.pool.count(RECEIVING) == engine.pool.count(SENDING) == 0
    with pytest.raises(OSError) as raised:
        os.fstat(event_fd)
    assert raised.value.errno == errno.EBADF
    for call in (engine.fileno, lambda: engine.receive(1), lambda: engine.transmit([b"x"])):
        with pytest.raises(DeviceClosed, match="'pair' is closed"):
            call()


def test_close_cancels_writes_still_in_flight(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    small_send_buffer(ours)
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=2,
                         tx_buffers=16)
    engine.transmit([bytes(1000)] * 16)
    assert engine.pool.count(SENDING) > 0
    engine.close()
    assert engine.pool.count(SENDING) == 0


def test_ring_setup_refused_raises_uring_unavailable(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(entries: int, ring: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(liburing, "io_uring_queue_init", refuse)
    with pytest.raises(UringUnavailable, match="io_uring_disabled") as raised:
        UringEngine(pair[0].fileno(), name="pair", buffer_len=64)
    assert raised.value.errno == errno.EPERM


@pytest.mark.parametrize("sizes", [{"rx_buffers": 0}, {"tx_buffers": 0},
                                   {"rx_buffers": 8, "low_watermark": 9}])
def test_bad_sizes_are_refused(pair: tuple[socket.socket, socket.socket],
                               sizes: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(reversed(sizes))):
        UringEngine(pair[0].fileno(), name="pair", buffer_len=64, **sizes)


# -- the multishot read -------------------------------------------------------------


def test_one_multishot_read_serves_every_frame_in_order(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=8,
                         tx_buffers=1, multishot=True)
    try:
        submits = engine.stats.submits
        sent = [f"frame {n}".encode() for n in range(40)]  # five times the buffers
        received: list[bytes] = []
        for start in range(0, 40, 4):
            for frame in sent[start:start + 4]:
                peer.send(frame)
            received += receive_exactly(engine, 4)
        assert received == sent
        assert engine.stats.rx_no_buffers == 0
        # Buffers go back with the next pump's submit; no read is re-armed per frame.
        assert engine.stats.submits - submits <= 10
    finally:
        engine.close()


def test_all_buffers_out_ends_the_multishot_read_and_their_return_re_arms_it(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """With every buffer handed out the kernel ends the multishot read (ENOBUFS): the
    frames wait in the socket (a TAP's queue), nothing is lost, and giving the buffers
    back (the next receive()) re-arms it."""
    ours, peer = pair
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=2,
                         tx_buffers=1, multishot=True)
    try:
        sent = [f"frame {n}".encode() for n in range(7)]
        for frame in sent:
            peer.send(frame)
        assert readable(engine.fileno(), WAIT)
        time.sleep(0.05)
        first = [bytes(view) for view in engine.receive(8)]  # both buffers, now held
        assert first == sent[:2]
        time.sleep(0.05)
        # Gives both back, harvests the ENOBUFS end, re-arms; hands nothing out.
        assert engine.receive(0) == []
        assert engine.stats.rx_no_buffers >= 1 and engine._multishot_armed
        rest = receive_exactly(engine, 5, max_frames=2)
        assert first + rest == sent
        assert engine._multishot_armed
    finally:
        engine.close()


def test_close_releases_the_provided_buffers_at_once(
        pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    ours, _ = pair
    engine = UringEngine(ours.fileno(), name="pair", buffer_len=2048, rx_buffers=8,
                         tx_buffers=1, multishot=True)
    assert engine.pool.count(RECEIVING) == 8
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ethox_asyncio.device"):
        engine.close()
    assert time.monotonic() - started < 0.5  # not the 1 s close timeout
    assert engine.pool.count(RECEIVING) == 0 and not caplog.records


def test_multishot_on_a_kernel_without_it_is_refused(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uring, "_supports_multishot_read", lambda ring: False)
    with pytest.raises(UringUnavailable, match="multishot"):
        UringEngine(pair[0].fileno(), name="pair", buffer_len=64, multishot=True)
    fallback = UringEngine(pair[0].fileno(), name="pair", buffer_len=64)
    try:
        assert fallback.multishot is False  # auto: single reads
    finally:
        fallback.close()
