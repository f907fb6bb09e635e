"""An io_uring frame engine: batched reads and writes of whole frames on one descriptor.

Contract:

- :class:`UringEngine` drives one descriptor on which every ``read()`` returns one
  frame and every ``write()`` sends one (a TAP fd; a datagram socket in tests). The
  descriptor should be blocking: io_uring waits for readiness itself (an io_uring
  READ on a TAP fd waits for a frame even with O_NONBLOCK, PLATFORM.md). The engine
  does not own the descriptor: the caller closes it after :meth:`UringEngine.close`.
- Memory: a fixed :class:`BufferPool` of ``rx_buffers + tx_buffers`` buffers of
  ``buffer_len`` bytes; ``user_data`` of every operation is the buffer index. The first
  ``rx_buffers`` buffers only ever receive, the rest only send, so a transmit burst can
  never take the buffers the reads need (and vice versa). Each buffer is FREE,
  RECEIVING (read in flight), RECEIVED (frame completed, queued or handed out) or
  SENDING (write in flight); an illegal move raises :class:`BufferStateError`. A send
  buffer takes the length of the frame copied into it (``io_uring_prep_write`` writes
  a whole bytearray and refuses memoryviews), which is safe because only FREE
  buffers are refilled.
- Receiving, two modes (``multishot``; default: the first where the kernel has it):
  **multishot** (Linux >= 6.7): the receive buffers are provided to the kernel
  (IORING_OP_PROVIDE_BUFFERS, one buffer group) and one READ_MULTISHOT serves every
  frame, each completion naming its buffer. The kernel polls the descriptor itself, so
  no read waits in an io-wq worker thread; with every buffer out it ends the read
  (ENOBUFS, ``stats.rx_no_buffers``; frames wait in the TAP's queue) and the engine
  re-arms it when buffers come back. **Single reads**: one READ in flight per receive
  buffer. On a TAP, a read that finds no frame is handed to an io-wq worker that
  blocks in the driver (Linux 6.18, measured: 64 reads in flight, ~60 ``iou-wrk``
  threads under request/response), so each frame costs a thread wake-up; kept for
  older kernels. "Re-arm" below means provide the buffer again, or read into it.
- ``receive(max_frames)`` harvests every completion, returns up to ``max_frames``
  writable views of RECEIVED buffers (valid until the next ``receive()``), and re-arms
  the buffers it handed out the time before. Re-arms are only *prepared*;
  ``transmit()`` submits them together with its writes, so a pump that calls
  ``receive()`` then ``transmit()`` makes one ``io_uring_enter`` per iteration. Reads
  never starve without ``transmit()``: ``receive()`` submits by itself when fewer than
  ``low_watermark`` reads are in flight (default half the receive buffers). Under a
  flood every read completes at once, so ``receive()`` then submits too (two enters
  per pump, one per 64 frames); submitting on every ``receive()``
  (``low_watermark=rx_buffers``) measured no faster, and costs an extra enter per pump
  under light load. ``transmit([])`` submits pending re-arms without sending anything.
- ``transmit(frames)`` copies each frame into a FREE send buffer (the caller may reuse
  its buffers on return), prepares a write, and submits. A gathered frame (a tuple of
  buffers) is copied piece by piece into the send buffer, once each, never joined
  first. It returns how many frames it accepted: fewer than given when every send
  buffer is busy. A frame longer than ``buffer_len`` (all its pieces together) raises
  ``FrameTooLarge`` before anything is sent. Writes leave in
  order when they complete during the submit, as TAP writes do (the TAP's send buffer
  is unlimited); writes that have to wait for room (a full socket) are woken together
  and may complete in any order.
- ``fileno()`` is an eventfd registered with the ring. It is level-correct: readable
  exactly while completed frames wait for ``receive()``. The kernel signals it for
  every completion; ``receive()`` and ``transmit()`` drain it *before* harvesting
  completions and signal it again when frames remain (``max_frames`` reached), so a
  completion posted meanwhile is never lost. Writes to a TAP complete during the
  submit, and ``transmit()`` clears their signals, so sending does not wake the loop.
- Errors of completed operations: a read failing with EBADFD, EIO or ENODEV means the
  device is gone (a deleted TAP fails its reads with EBADFD, measured): ``receive()`` and
  ``transmit()`` raise ``DeviceGone`` from then on. Other read errors, and reads of
  0 bytes, are counted in ``stats.rx_errors`` and the buffer is re-armed. Writes failing
  with EAGAIN count as ``tx_dropped`` (io_uring normally waits for room instead, so
  this needs a descriptor without non-blocking support); other write errors and short
  writes (a TAP write is all-or-nothing) count as ``tx_errors`` and short writes are
  logged.
- ``close()`` cancels every operation in flight, waits (at most
  :data:`CLOSE_TIMEOUT` seconds) until the kernel has let go of every buffer, exits the
  ring and closes the eventfd; it is idempotent, and every other call afterwards
  raises ``DeviceClosed``. Buffers the kernel still holds after the timeout are kept
  alive forever rather than freed under its feet.
- Setting up the ring raises :class:`UringUnavailable` (a ``DeviceError``) when
  io_uring cannot be used here: the ``liburing`` package does not load, the kernel
  lacks io_uring (ENOSYS), or it is forbidden (EPERM from the
  ``kernel.io_uring_disabled`` sysctl or a seccomp filter).

Single-threaded: an engine belongs to one thread / event loop.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .base import (
    ETHERNET_HEADER_LEN,
    Buffer,
    DeviceClosed,
    DeviceError,
    DeviceGone,
    Frame,
    FrameTooLarge,
    frame_len,
)

try:
    import liburing
except ImportError as exc:  # the wheel's native library does not load on this system
    liburing = None
    _LIBURING_IMPORT_ERROR: str | None = f"the liburing package does not import: {exc}"
else:
    _LIBURING_IMPORT_ERROR = None

__all__ = [
    "CLOSE_TIMEOUT",
    "DEVICE_GONE_ERRNOS",
    "BufferPool",
    "BufferState",
    "BufferStateError",
    "EngineStats",
    "UringEngine",
    "UringUnavailable",
]

log = logging.getLogger("ethox_asyncio.device")

#: Seconds ``close()`` waits for cancelled operations to release their buffers.
CLOSE_TIMEOUT: Final = 1.0

#: A read or write failing with one of these means the interface went away: a TAP
#: whose link was deleted fails reads and writes with EBADFD (drivers/net/tun.c:
#: tun_get() finds no device once detached; measured), other drivers say EIO or ENODEV.
DEVICE_GONE_ERRNOS: Final = frozenset({errno.EBADFD, errno.EIO, errno.ENODEV})

# user_data of the cancel-everything request close() submits: above every buffer index.
_CANCEL_USER_DATA: Final = 2**63
# user_data of the multishot read, and of buffer i's IORING_OP_PROVIDE_BUFFERS (whose
# successes post no completion: IOSQE_CQE_SKIP_SUCCESS).
_MULTISHOT_USER_DATA: Final = 2**62
_PROVIDE_USER_DATA: Final = 2**61
# include/uapi/linux/io_uring.h; the binding exports neither constant.
_IORING_OP_READ_MULTISHOT: Final = 49  # Linux 6.7
_IORING_CQE_F_BUFFER: Final = 1 << 0
_IORING_CQE_F_MORE: Final = 1 << 1
_BUFFER_GROUP: Final = 0
_BUFFER_SHIFT: Final = 16  # IORING_CQE_BUFFER_SHIFT: the buffer id in cqe.flags


class UringUnavailable(DeviceError):
    """io_uring cannot be used on this system; ``reason`` says why."""

    def __init__(self, reason: str, code: int = errno.ENOSYS) -> None:
        super().__init__(code, f"io_uring unavailable: {reason}")
        self.reason = reason


class BufferStateError(RuntimeError):
    """An illegal buffer state change: a bug in the engine, never a runtime condition."""


class BufferState(enum.IntEnum):
    FREE = 0
    RECEIVING = 1  # a read into the buffer is prepared or in flight
    RECEIVED = 2  # the read completed: queued for, or handed out by, receive()
    SENDING = 3  # a write from the buffer is prepared or in flight


_FREE: Final = BufferState.FREE
_RECEIVING: Final = BufferState.RECEIVING
_RECEIVED: Final = BufferState.RECEIVED
_SENDING: Final = BufferState.SENDING

_LEGAL_MOVES: Final = frozenset({
    (_FREE, _RECEIVING),  # arm a read
    (_RECEIVING, _RECEIVED),  # the read completed with a frame
    (_RECEIVING, _FREE),  # the read failed or was cancelled
    (_RECEIVED, _RECEIVING),  # the frame's view expired (next receive()): read again
    (_RECEIVED, _FREE),
    (_FREE, _SENDING),  # a frame was copied in and its write prepared
    (_SENDING, _FREE),  # the write completed, failed or was cancelled
})


class BufferPool:
    """``count`` buffers (bytearrays, initially ``buffer_len`` bytes) and their states.

    The kernel reads or writes a buffer while an operation is in flight, so a buffer
    may only be resized or refilled while FREE. :meth:`move_many` checks a whole
    batch in one call (the engine's hot paths move up to a batch of buffers at a time)
    and moves all of them or none.
    """

    __slots__ = ("_counts", "_states", "buffer_len", "buffers")

    def __init__(self, count: int, buffer_len: int) -> None:
        if count < 1 or buffer_len < 1:
            raise ValueError(f"a buffer pool needs count >= 1 and buffer_len >= 1, "
                             f"got {count} and {buffer_len}")
        self.buffer_len = buffer_len
        self.buffers = [bytearray(buffer_len) for _ in range(count)]
        self._states = [_FREE] * count
        self._counts = [0] * len(BufferState)
        self._counts[_FREE] = count

    def __len__(self) -> int:
        return len(self._states)

    def state(self, index: int) -> BufferState:
        return self._states[index]

    def count(self, state: BufferState) -> int:
        """How many buffers are in ``state`` (kept up to date, O(1))."""
        return self._counts[state]

    def move(self, index: int, new_state: BufferState) -> None:
        """Change buffer ``index`` to ``new_state``; raise ``BufferStateError`` if illegal."""
        self.move_many((index,), new_state)

    def move_many(self, indices: Sequence[int], new_state: BufferState) -> None:
        """``move()`` every buffer in ``indices``; if one move is illegal, none is made."""
        states = self._states
        old_states = [states[index] for index in indices]
        distinct_old_states = set(old_states)
        for old_state in distinct_old_states:
            if (old_state, new_state) not in _LEGAL_MOVES:
                index = indices[old_states.index(old_state)]
                raise BufferStateError(
                    f"buffer {index}: {old_state.name} -> {new_state.name} is not a legal move")
        for index in indices:
            states[index] = new_state
        counts = self._counts
        if len(distinct_old_states) == 1:  # the usual batch: all from the same state
            counts[old_states[0]] -= len(old_states)
        else:
            for old_state in old_states:
                counts[old_state] -= 1
        counts[new_state] += len(old_states)


@dataclass(slots=True)
class EngineStats:
    """Counters of a frame engine. ``tx_*`` count writes the kernel completed in full."""

    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0  # writes refused with EAGAIN
    rx_errors: int = 0  # failed or empty reads (the buffer is re-armed)
    tx_errors: int = 0  # failed or short writes
    rx_no_buffers: int = 0  # multishot read ended: every receive buffer was out (ENOBUFS)
    submits: int = 0  # io_uring_submit calls (io_uring_enter system calls)


def _supports_multishot_read(ring: Any) -> bool:
    probe = liburing.io_uring_get_probe_ring(ring)
    try:
        return bool(liburing.io_uring_opcode_supported(probe, _IORING_OP_READ_MULTISHOT))
    finally:
        liburing.io_uring_free_probe(probe)


def _ring_entries(operations: int) -> int:
    """A power of two with room for every buffer's operation plus close()'s cancel."""
    entries = 1
    while entries < operations + 1:
        entries *= 2
    return entries


def _setup_ring(entries: int) -> Any:
    """Create a ring, or raise ``UringUnavailable`` explaining why io_uring is unusable."""
    if liburing is None:
        assert _LIBURING_IMPORT_ERROR is not None
        raise UringUnavailable(_LIBURING_IMPORT_ERROR)
    ring = liburing.Ring()
    try:
        liburing.io_uring_queue_init(entries, ring)
    except OSError as error:
        code = error.errno if error.errno is not None else errno.ENOSYS
        if code == errno.EPERM:
            reason = "io_uring_setup() is forbidden (EPERM): the kernel.io_uring_disabled " \
                     "sysctl or a seccomp filter blocks it"
        elif code == errno.ENOSYS:
            reason = "the kernel has no io_uring (ENOSYS)"
        else:
            reason = f"io_uring_setup({entries}) failed: {os.strerror(code)}"
        raise UringUnavailable(reason, code) from error
    return ring


# Buffer pools the kernel may still write into (close() timed out): kept alive forever.
_UNRECLAIMED_POOLS: list[BufferPool] = []


def _gather_into(buffer: bytearray, pieces: tuple[Buffer, ...], zeros: memoryview) -> None:
    """Make ``buffer`` the concatenation of ``pieces``: at most one resize (to the frame's
    length, growing from ``zeros``, which holds at least that many), then one copy per piece.

    Assigning the first piece to ``buffer[:]`` and appending the others would resize once
    per piece, and CPython reallocates a bytearray that shrinks below half its allocation
    (a 10-byte virtio-net header first) and again as each piece grows it.
    """
    total = sum(map(len, pieces))
    surplus = len(buffer) - total
    if surplus > 0:
        del buffer[total:]
    elif surplus < 0:
        buffer += zeros[:-surplus]
    offset = 0
    for piece in pieces:
        end = offset + len(piece)
        buffer[offset:end] = piece  # the same length: a plain copy, no resize
        offset = end


class UringEngine:
    """Frames in and out of ``fd`` through io_uring (see the module doc)."""

    def __init__(
        self,
        fd: int,
        *,
        name: str,
        buffer_len: int,
        rx_buffers: int = 128,
        tx_buffers: int = 128,
        low_watermark: int | None = None,
        multishot: bool | None = None,
    ) -> None:
        if rx_buffers < 1 or tx_buffers < 1:
            raise ValueError(f"rx_buffers and tx_buffers must be at least 1, "
                             f"got {rx_buffers} and {tx_buffers}")
        if low_watermark is None:
            low_watermark = max(1, rx_buffers // 2)
        if not 1 <= low_watermark <= rx_buffers:
            raise ValueError(f"low_watermark must be within 1..rx_buffers ({rx_buffers}), "
                             f"got {low_watermark}")
        self.name = name
        self.stats = EngineStats()
        self.pool = BufferPool(rx_buffers + tx_buffers, buffer_len)
        # Zeros to grow a send buffer with before a gathered frame's pieces fill it.
        self._zeros = memoryview(bytes(buffer_len))
        self._fd = fd
        self._rx_count = rx_buffers
        self._low_watermark = low_watermark
        # Receive buffers are never resized, so their views are made once.
        self._rx_views = [memoryview(self.pool.buffers[index]) for index in range(rx_buffers)]
        self._rx_len = [0] * rx_buffers
        self._tx_free = list(range(rx_buffers + tx_buffers - 1, rx_buffers - 1, -1))
        self._ready: deque[int] = deque()  # indices of RECEIVED buffers not yet handed out
        self._handed_out: list[int] = []
        self._gone_detail: str | None = None
        self._closed = False
        self._ring = _setup_ring(_ring_entries(len(self.pool) + 1))
        self._cqe = liburing.Cqe()
        self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            supported = _supports_multishot_read(self._ring)
            if multishot and not supported:
                raise UringUnavailable("this kernel has no multishot read (Linux >= 6.7)",
                                       errno.EOPNOTSUPP)
            self.multishot = supported if multishot is None else multishot
            self._multishot_armed = False
            self._rearming = False  # a multishot re-arm waits in the submission queue
            liburing.io_uring_register_eventfd(self._ring, self._event_fd)
            self._arm_reads(range(rx_buffers))
            self._submit()
        except BaseException:
            liburing.io_uring_queue_exit(self._ring)
            os.close(self._event_fd)
            raise

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            f"{self.pool.count(_RECEIVING)} reads in flight, {len(self._ready)} ready")
        return f"<UringEngine {self.name!r} fd={self._fd}, {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The eventfd: readable while received frames wait for ``receive()``."""
        self._check_open()
        return self._event_fd

    def receive(self, max_frames: int) -> list[memoryview]:
        """Up to ``max_frames`` received frames, as views valid until the next call."""
        self._check_usable()
        if self._handed_out:  # their views expire now: read into the buffers again
            self._arm_reads(self._handed_out)
            self._handed_out = []
        self._drain_event_fd()
        self._harvest()
        frames = self._hand_out(max_frames)
        unsubmitted = liburing.io_uring_sq_ready(self._ring)
        if unsubmitted and (self.pool.count(_RECEIVING) - unsubmitted < self._low_watermark
                            or (self.multishot and self._rearming)):
            self._submit()
        if self._ready:
            os.eventfd_write(self._event_fd, 1)  # frames left behind: stay readable
        self._raise_if_gone()
        return frames

    def transmit(self, frames: Sequence[Frame]) -> int:
        """Copy frames into send buffers and submit them (with pending re-arms)."""
        self._check_usable()
        if frames:
            longest = max(map(frame_len, frames))
            if longest > self.pool.buffer_len:
                raise FrameTooLarge(longest, self.pool.buffer_len,
                                    self.pool.buffer_len - ETHERNET_HEADER_LEN)
        if len(self._tx_free) < len(frames):
            self._harvest()  # completed writes give their buffers back
        accepted = self._prepare_writes(frames)
        if liburing.io_uring_sq_ready(self._ring):
            self._submit()
        if accepted:
            # TAP writes complete inside the submit; clear the eventfd signals of
            # those completions so the loop is not woken for nothing.
            self._drain_event_fd()
            self._harvest()
            if self._ready:
                os.eventfd_write(self._event_fd, 1)
        self._raise_if_gone()
        return accepted

    def close(self) -> None:
        """Cancel everything in flight, release the ring and the eventfd (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._cancel_in_flight()
        finally:
            liburing.io_uring_queue_exit(self._ring)
            os.close(self._event_fd)
            self._ready.clear()
            self._handed_out = []

    # -- the hot paths: one Python loop per batch, C calls only inside -------------

    def _arm_reads(self, indices: Sequence[int]) -> None:
        """Make buffers ``indices`` receive again: one read each, or, multishot, hand
        them back to the kernel's buffer group (and re-arm the multishot read if it
        ended)."""
        self.pool.move_many(indices, _RECEIVING)
        get_sqe = liburing.io_uring_get_sqe
        ring = self._ring
        fd = self._fd
        buffers = self.pool.buffers
        if self.multishot:
            provide = liburing.io_uring_prep_provide_buffers
            skip = liburing.IOSQE_CQE_SKIP_SUCCESS
            for index in indices:
                sqe = get_sqe(ring) or self._sqe_after_submit()
                provide(sqe, buffers[index], 1, _BUFFER_GROUP, index)
                sqe.flags = skip
                sqe.user_data = _PROVIDE_USER_DATA + index
            if not self._multishot_armed:
                self._arm_multishot()
            return
        prep_read = liburing.io_uring_prep_read
        for index in indices:
            sqe = get_sqe(ring) or self._sqe_after_submit()
            prep_read(sqe, fd, buffers[index])
            sqe.user_data = index

    def _arm_multishot(self) -> None:
        """One READ_MULTISHOT serves every frame (io_uring_prep_read_multishot(3)): the
        kernel picks a provided buffer per frame and polls the TAP itself, where many
        single reads in flight each end up blocked in an io-wq worker thread (measured:
        64 reads in flight, ~60 iou-wrk threads). The length must be 0 (the buffer's)."""
        sqe = liburing.io_uring_get_sqe(self._ring) or self._sqe_after_submit()
        liburing.io_uring_prep_read_multishot(sqe, self._fd, _BUFFER_GROUP, 0, 0)
        sqe.user_data = _MULTISHOT_USER_DATA
        self._multishot_armed = True
        self._rearming = True

    def _prepare_writes(self, frames: Sequence[Frame]) -> int:
        tx_free = self._tx_free
        count = min(len(frames), len(tx_free))
        if not count:
            return 0
        indices = tx_free[-count:]
        del tx_free[-count:]
        self.pool.move_many(indices, _SENDING)
        get_sqe = liburing.io_uring_get_sqe
        prep_write = liburing.io_uring_prep_write
        ring = self._ring
        fd = self._fd
        buffers = self.pool.buffers
        zeros = self._zeros
        for index, frame in zip(indices, frames, strict=False):  # frames may be more
            # A FREE buffer may be resized: the copy takes the frame's exact length, and
            # io_uring_prep_write() writes a whole bytearray (it refuses memoryviews).
            buffer = buffers[index]
            if isinstance(frame, tuple):
                _gather_into(buffer, frame, zeros)
            else:
                buffer[:] = frame
            sqe = get_sqe(ring) or self._sqe_after_submit()
            prep_write(sqe, fd, buffer)
            sqe.user_data = index
        return count

    def _harvest(self) -> None:
        """Process every completion waiting in the completion queue."""
        cqe = self._cqe
        rx_count = self._rx_count
        rx_len = self._rx_len
        reads: list[int] = []
        writes: list[int] = []
        written: list[int] = []
        failures: list[tuple[int, OSError | None]] = []
        ended: OSError | None = None  # the multishot read's final error
        seen = 0
        try:
            # CqeIter + one cq_advance: indexing cqe[i] breaks when the CQ ring
            # wraps, and io_uring_peek_batch_cqe is not implemented (PLATFORM.md).
            for _ in liburing.CqeIter(self._ring, cqe):
                seen += 1
                completion = cqe[0]
                index = completion.user_data
                if index == _MULTISHOT_USER_DATA:
                    flags = completion.flags
                    if not flags & _IORING_CQE_F_MORE:
                        self._multishot_armed = False  # ended: re-armed with buffers
                    if flags & _IORING_CQE_F_BUFFER:
                        index = flags >> _BUFFER_SHIFT
                    else:  # no buffer taken: ENOBUFS (all out), an error, or EOF
                        try:
                            _ = completion.res  # raises OSError for a negative result
                        except OSError as error:
                            ended = error  # handled after the frames before it
                        else:  # a read of 0 bytes (never on a TAP; an empty datagram)
                            self.stats.rx_errors += 1
                        continue
                try:
                    result = completion.res  # raises OSError for a negative result
                except OSError as error:
                    failures.append((index, error))
                    continue
                if index < rx_count:
                    if result:
                        reads.append(index)
                        rx_len[index] = result
                    else:  # not a frame (never on a TAP): a socket at EOF, an empty datagram
                        failures.append((index, None))
                elif index < _PROVIDE_USER_DATA:  # not a cancel (or a skipped provide)
                    writes.append(index)
                    written.append(result)
        finally:
            if seen:
                liburing.io_uring_cq_advance(self._ring, seen)
        if reads:
            self.pool.move_many(reads, _RECEIVED)
            self._ready.extend(reads)
        if writes:
            self._complete_writes(writes, written)
        for index, failure in failures:
            if index == _CANCEL_USER_DATA:
                continue
            if index >= _PROVIDE_USER_DATA and index < _MULTISHOT_USER_DATA:
                index -= _PROVIDE_USER_DATA  # the kernel refused the buffer back
            if index < rx_count:
                self._on_read_failed(index, failure)
            else:
                self._on_write_failed(index, failure)
        if ended is not None:
            self._on_multishot_failed(ended)
        if (self.multishot and not self._multishot_armed and not self._closed
                and self._gone_detail is None and self.pool.count(_RECEIVING)):
            self._arm_multishot()  # it ended with buffers left (else: when they return)

    def _hand_out(self, max_frames: int) -> list[memoryview]:
        ready = self._ready
        count = min(max_frames, len(ready))
        if not count:
            return []
        popleft = ready.popleft
        indices = [popleft() for _ in range(count)]
        views = self._rx_views
        rx_len = self._rx_len
        frames = [views[index][:rx_len[index]] for index in indices]
        self._handed_out = indices
        self.stats.rx_frames += count
        self.stats.rx_bytes += sum(map(len, frames))
        return frames

    def _complete_writes(self, indices: list[int], written: list[int]) -> None:
        self.pool.move_many(indices, _FREE)
        self._tx_free.extend(indices)
        buffers = self.pool.buffers
        expected = [len(buffers[index]) for index in indices]
        if written == expected:
            self.stats.tx_frames += len(indices)
            self.stats.tx_bytes += sum(written)
            return
        for length, wanted in zip(written, expected, strict=True):
            if length == wanted:
                self.stats.tx_frames += 1
                self.stats.tx_bytes += length
            else:
                self.stats.tx_errors += 1
                log.error("%s: short write: %d of %d bytes (a frame write should be all or "
                          "nothing)", self.name, length, wanted)

    # -- failures -----------------------------------------------------------------

    def _on_read_failed(self, index: int, error: OSError | None) -> None:
        """A read failed (``error``) or returned no data (``None``)."""
        self.pool.move(index, _FREE)
        if self._closed or (error is not None and error.errno == errno.ECANCELED):
            return  # close() cancelled it
        if error is not None and error.errno in DEVICE_GONE_ERRNOS:
            self._gone_detail = f"read failed: {error.strerror}"
            return  # no point in re-arming: every read would fail the same way
        self.stats.rx_errors += 1
        log.debug("%s: read failed: %s", self.name, error or "no data")
        self._arm_reads((index,))

    def _on_multishot_failed(self, error: OSError) -> None:
        """The multishot read ended without a frame (``_harvest`` re-arms it at once when
        buffers are left, else ``_arm_reads`` does when receive() gives them back)."""
        if self._closed or error.errno == errno.ECANCELED:
            self._release_provided()
            return
        if error.errno in DEVICE_GONE_ERRNOS:
            self._gone_detail = f"read failed: {error.strerror}"
            return
        if error.errno == errno.ENOBUFS:
            self.stats.rx_no_buffers += 1  # every buffer is out: frames wait in the TAP
        else:
            self.stats.rx_errors += 1
            log.debug("%s: multishot read failed: %s", self.name, error)

    def _release_provided(self) -> None:
        """With no read left to pick them, provided buffers are the engine's again."""
        provided = [index for index in range(self._rx_count)
                    if self.pool.state(index) is _RECEIVING]
        if provided:
            self.pool.move_many(provided, _FREE)

    def _on_write_failed(self, index: int, error: OSError | None) -> None:
        self.pool.move(index, _FREE)
        self._tx_free.append(index)
        code = error.errno if error is not None else None
        if code == errno.ECANCELED:
            return  # close() cancelled it
        if code == errno.EAGAIN:
            self.stats.tx_dropped += 1
        elif code in DEVICE_GONE_ERRNOS:
            self._gone_detail = f"write failed: {os.strerror(code)}"
        else:
            self.stats.tx_errors += 1
            log.debug("%s: write failed: %s", self.name, error)

    # -- the ring -----------------------------------------------------------------

    def _sqe_after_submit(self) -> Any:
        """The submission queue was full: submit it and take an entry again."""
        self._submit()
        sqe = liburing.io_uring_get_sqe(self._ring)
        if sqe is None:  # the ring has an entry per buffer: cannot happen
            raise RuntimeError(f"{self.name}: io_uring submission queue full after submit")
        return sqe

    def _submit(self) -> None:
        liburing.io_uring_submit(self._ring)
        self.stats.submits += 1
        self._rearming = False

    def _drain_event_fd(self) -> None:
        try:
            os.eventfd_read(self._event_fd)  # resets the counter: no longer readable
        except BlockingIOError:
            pass

    def _cancel_in_flight(self) -> None:
        """Cancel every operation and wait until the kernel has finished with the buffers."""
        pool = self.pool
        if self.multishot and not self._multishot_armed:
            self._release_provided()  # no read can pick them
        if pool.count(_RECEIVING) + pool.count(_SENDING) == 0:
            return
        sqe = liburing.io_uring_get_sqe(self._ring) or self._sqe_after_submit()
        # ANY|ALL: every request on this ring, whatever its user_data (io_uring_prep_cancel(3)).
        liburing.io_uring_prep_cancel64(
            sqe, 0, liburing.IORING_ASYNC_CANCEL_ANY | liburing.IORING_ASYNC_CANCEL_ALL)
        sqe.user_data = _CANCEL_USER_DATA
        self._submit()
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while pool.count(_RECEIVING) + pool.count(_SENDING):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                liburing.io_uring_wait_cqe_timeout(
                    self._ring, self._cqe, liburing.timespec(remaining))
            except OSError as error:
                if error.errno == errno.ETIME:
                    break
                raise
            self._harvest()
        still_held = pool.count(_RECEIVING) + pool.count(_SENDING)
        if still_held:
            _UNRECLAIMED_POOLS.append(pool)
            log.warning("%s: %d operations still in flight %.1f s after cancelling them; "
                        "keeping their buffers alive", self.name, still_held, CLOSE_TIMEOUT)

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed(f"io_uring engine for {self.name!r}")

    def _check_usable(self) -> None:
        self._check_open()
        self._raise_if_gone()

    def _raise_if_gone(self) -> None:
        if self._gone_detail is not None:
            raise DeviceGone(self.name, self._gone_detail)
