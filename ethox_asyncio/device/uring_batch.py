"""The compiled io_uring frame engine: a thin adapter over ``_uring_batch.Ring``.

Contract: :class:`BatchUringEngine` keeps the contract of :class:`~.uring.UringEngine`
(that module's docstring: receive/transmit/fileno/close, buffers never reused while
the kernel may write into them, a level-correct eventfd, no completion lost) with the
work of a batch done in one call into C: ``receive()`` gives the previous batch's
buffers back to a provided-buffer ring, harvests every completion and returns views;
``transmit()`` copies each frame (or each piece of a gathered one) into a send slot,
prepares the writes and submits them with any multishot re-arm in one
``io_uring_enter``. It exists because the PyPI binding costs five to seven Python→C
calls per frame and cannot set up a provided-buffer ring (PLATFORM.md), so the
pure-Python engine stays slower than plain ``read``/``write`` (docs/performance.md).

Here the C module's plain exceptions become the device errors: OSError(EBADFD, EIO,
ENODEV) from a vanished interface → ``DeviceGone``, a frame too long → ``FrameTooLarge``,
any call after ``close()`` → ``DeviceClosed``; a ring that cannot be set up (the
module was not built, io_uring disabled or too old for provided-buffer rings or
multishot reads) → ``UringUnavailable`` with the reason, so the TAP falls back.

Single-threaded: the engine belongs to the thread (event loop) that made it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from .base import ETHERNET_HEADER_LEN, DeviceClosed, DeviceGone, Frame, FrameTooLarge, frame_len
from .uring import DEVICE_GONE_ERRNOS, EngineStats, UringUnavailable

try:
    from . import _uring_batch
except ImportError as exc:  # not built (no compiler at install time) or not loadable
    _uring_batch = None  # type: ignore[assignment,unused-ignore]
    IMPORT_ERROR: str | None = (f"the compiled helper ethox_asyncio.device._uring_batch is "
                                f"not available ({exc}); reinstall with gcc and the Python "
                                f"headers present to build it")
else:
    IMPORT_ERROR = None

__all__ = ["IMPORT_ERROR", "BatchUringEngine"]


class BatchUringEngine:
    """Frames in and out of ``fd`` through the compiled io_uring helper (module doc)."""

    def __init__(self, fd: int, *, name: str, buffer_len: int, rx_buffers: int = 128,
                 tx_buffers: int = 128, defer_taskrun: bool = False) -> None:
        if _uring_batch is None:
            assert IMPORT_ERROR is not None
            raise UringUnavailable(IMPORT_ERROR)
        if rx_buffers < 1 or tx_buffers < 1:
            raise ValueError(f"rx_buffers and tx_buffers must be at least 1, "
                             f"got {rx_buffers} and {tx_buffers}")
        self.name = name
        self.buffer_len = buffer_len
        try:
            self._ring = _uring_batch.Ring(fd, rx_buffers=rx_buffers, tx_buffers=tx_buffers,
                                           buffer_len=buffer_len, defer_taskrun=defer_taskrun)
        except OSError as error:
            code = error.errno if error.errno is not None else errno.ENOSYS
            raise UringUnavailable(_setup_failure(code), code) from error
        self._event_fd: int = self._ring.eventfd()
        self._receive = self._ring.receive
        self._transmit = self._ring.transmit

    def __repr__(self) -> str:
        state = "closed" if self._ring.closed else (
            f"{self._ring.queued} frames queued, multishot "
            f"{'armed' if self._ring.armed else 'waiting for buffers'}")
        return f"<BatchUringEngine {self.name!r}, {state}>"

    @property
    def closed(self) -> bool:
        return bool(self._ring.closed)

    @property
    def stats(self) -> EngineStats:
        counts = self._ring.stats()
        return EngineStats(rx_frames=counts["rx_frames"], rx_bytes=counts["rx_bytes"],
                           tx_frames=counts["tx_frames"], tx_bytes=counts["tx_bytes"],
                           tx_dropped=counts["tx_dropped"], rx_errors=counts["rx_errors"],
                           tx_errors=counts["tx_errors"], rx_no_buffers=counts["enobufs"],
                           submits=counts["submits"])

    def fileno(self) -> int:
        """The eventfd: readable while received frames wait for ``receive()``."""
        if self._ring.closed:
            raise DeviceClosed(f"io_uring engine for {self.name!r}")
        return self._event_fd

    def receive(self, max_frames: int) -> list[memoryview]:
        try:
            frames: list[memoryview] = self._receive(max_frames)
        except OSError as error:
            raise self._device_error(error) from None
        except ValueError:
            raise self._closed_error() from None
        return frames

    def transmit(self, frames: Sequence[Frame]) -> int:
        try:
            accepted: int = self._transmit(frames)
        except OSError as error:
            raise self._device_error(error) from None
        except ValueError:
            if self._ring.closed:
                raise self._closed_error() from None
            longest = max(map(frame_len, frames))
            raise FrameTooLarge(longest, self.buffer_len,
                                self.buffer_len - ETHERNET_HEADER_LEN) from None
        return accepted

    def close(self) -> None:
        """Cancel everything in flight and release the ring (idempotent)."""
        self._ring.close()

    def _device_error(self, error: OSError) -> OSError:
        if error.errno in DEVICE_GONE_ERRNOS:
            return DeviceGone(self.name, f"read failed: {os.strerror(error.errno or 0)}")
        return error

    def _closed_error(self) -> DeviceClosed:
        return DeviceClosed(f"io_uring engine for {self.name!r}")


def _setup_failure(code: int) -> str:
    if code == errno.EPERM:
        return ("io_uring_setup() is forbidden (EPERM): the kernel.io_uring_disabled sysctl "
                "or a seccomp filter blocks it")
    if code == errno.ENOSYS:
        return "the kernel has no io_uring (ENOSYS)"
    if code == errno.EINVAL:
        return ("the kernel refused the ring (EINVAL): provided-buffer rings need Linux 5.19, "
                "multishot reads 6.7")
    return f"setting up the compiled io_uring engine failed: {os.strerror(code)}"
