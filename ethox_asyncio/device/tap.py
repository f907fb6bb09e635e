"""A TAP interface (``/dev/net/tun``) as a Device, driven by io_uring or plain read/write.

Contract:

- ``TapDevice(name, netns=…)`` opens ``/dev/net/tun`` inside network namespace
  ``netns`` (the calling thread switches there and back; the event loop stays where it
  is) and attaches to TAP ``name`` with ``TUNSETIFF`` (``IFF_TAP | IFF_NO_PI``). A TAP
  that does not exist is created and vanishes again when the device closes; a
  persistent one (``ip tuntap add mode tap``) is attached to and survives. Attaching
  replaces the persistent TAP's ``vnet_hdr`` setting with ours (measured), so both
  ``offload`` settings attach to any single-queue TAP. A TUN, a multi-queue TAP or a
  link of another kind with that name is refused with EINVAL, and a TAP some other
  descriptor already holds with EBUSY: both raise a ``DeviceError`` saying so.
- ``offload=True``: ``IFF_VNET_HDR``, ``TUNSETVNETHDRSZ`` 10 and
  ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)``. Every frame, in both
  directions, starts with the 10-byte ``virtio_net_hdr`` (``device/vnet.py``); the
  kernel hands over TCP super-frames of up to 64 KiB with checksums left partial, and
  accepts the same (capabilities ``vnet_header``, ``checksum_offload``, ``tso``).
  ``offload=False``: plain Ethernet frames, and ``TUNSETOFFLOAD(0)`` so the kernel
  segments and checksums everything itself (a persistent TAP may remember offloads).
- The link is configured with ioctls on a socket made in the namespace (netdevice(7)):
  MTU (``SIOCSIFMTU``), ``txqueuelen`` if given (``SIOCSIFTXQLEN``; the TAP drops
  bursts beyond it), then up (``SIOCSIFFLAGS``), then waits (at most 2 s) until the
  kernel reports it running, so no frame the kernel sends is lost to its deferred
  queue activation. No subprocess.
- ``engine``: ``"uring"`` (``rx_buffers`` receive buffers, ``max_batch`` send
  buffers, ``fileno()`` is the engine's eventfd), ``"plain"`` (the fd made
  non-blocking, ``FileIO.readinto`` into ``max_batch`` preallocated buffers, one
  ``os.write`` per frame — ``os.writev`` of its pieces for a gathered frame, never
  joined — ``fileno()`` is the TAP fd), or ``"auto"``. io_uring comes in two
  implementations, ``uring_impl``: ``"compiled"`` (``device/uring_batch.py`` over the
  C helper ``_uring_batch``: one call per batch, provided-buffer ring, multishot
  read) and ``"python"`` (``device/uring.py`` on the PyPI binding); ``"auto"`` takes
  the compiled one when it was built. ``engine="uring"`` uses io_uring or raises
  ``UringUnavailable``; ``engine="auto"`` uses the compiled io_uring engine and
  otherwise plain — not the pure-Python io_uring engine, which is measured slower
  than plain (docs/performance.md) — unless ``uring_impl="python"`` asks for it.
  One log line says which engine runs and why (a warning when auto fell back):
  ``engine_name`` is ``"uring"`` or ``"plain"``, ``engine_detail`` the
  implementation, ``fallback_reason`` why auto fell back (else ``None``).
- ``transmit()`` refuses, with ``FrameTooLarge`` and before sending anything, a batch
  holding a frame (a gathered one counts all its pieces, as do the ``tx_bytes``
  stats) longer than ``max_frame_len``: MTU + 18 bytes (Ethernet header and
  one VLAN tag), or with offload a maximal IPv6 super-packet (65535 + 40 bytes) plus
  those 18 and the 10-byte vnet header. It sends the whole batch, whatever its size
  against an io_uring engine's ``max_batch`` send slots (they come back within the
  call), and returns how many frames went: fewer only when the TAP queue is full
  (EAGAIN).
- The TAP deleted while open (``ip link del``, or its namespace removed): the kernel
  fails reads and writes on the fd with EBADFD (measured), and ``receive()`` /
  ``transmit()`` raise ``DeviceGone``.
- Errors when opening: ``DevicePermissionError`` without CAP_NET_ADMIN,
  ``DeviceNotFound`` when ``netns`` does not exist, ``DeviceError(ENOENT)`` without
  ``/dev/net/tun``, ``ValueError`` for a name Linux cannot take (over 15 bytes, ``/``,
  whitespace, ``.``/``..``) and for bad arguments.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import socket
import struct
import time
from collections.abc import Sequence
from typing import Final, Protocol

from .base import (
    ETHERNET_HEADER_LEN,
    VLAN_TAG_LEN,
    ClosesOnExit,
    DeviceCapabilities,
    DeviceClosed,
    DeviceError,
    DeviceGone,
    DeviceNotFound,
    DevicePermissionError,
    Frame,
    FrameTooLarge,
    frame_len,
)
from .nsenter import NetnsError, in_netns
from .uring import DEVICE_GONE_ERRNOS, EngineStats, UringEngine, UringUnavailable
from .uring_batch import BatchUringEngine
from .vnet import VNET_HDR_LEN

__all__ = ["ENGINES", "IFNAME_MAX_LEN", "URING_IMPLS", "PlainEngine", "TapDevice"]

log = logging.getLogger("ethox_asyncio.device")

#: The ``engine`` argument's choices.
ENGINES: Final = ("auto", "uring", "plain")
#: The ``uring_impl`` argument's choices.
URING_IMPLS: Final = ("auto", "compiled", "python")
#: IFNAMSIZ (16) minus the terminating NUL.
IFNAME_MAX_LEN: Final = 15

_TUN_PATH: Final = "/dev/net/tun"
# include/uapi/linux/if_tun.h
_TUNSETIFF: Final = 0x400454CA
_TUNSETOFFLOAD: Final = 0x400454D0
_TUNSETVNETHDRSZ: Final = 0x400454D8
_IFF_TAP: Final = 0x0002
_IFF_NO_PI: Final = 0x1000
_IFF_VNET_HDR: Final = 0x4000
_TUN_F_CSUM: Final = 0x01
_TUN_F_TSO4: Final = 0x02
_TUN_F_TSO6: Final = 0x04
# include/uapi/linux/sockios.h, if.h
_SIOCGIFFLAGS: Final = 0x8913
_SIOCSIFFLAGS: Final = 0x8914
_SIOCSIFMTU: Final = 0x8922
_SIOCSIFTXQLEN: Final = 0x8943
_IFF_UP: Final = 0x1
_IFF_RUNNING: Final = 0x40  # operational state up (RFC 2863), set by link-watch
_RUNNING_TIMEOUT: Final = 2.0  # link-watch defers events by at most about 1 s
# struct ifreq: 16-byte name, then a 24-byte union of which we use one short or int.
_IFREQ_SHORT: Final = struct.Struct("16sh22x")
_IFREQ_INT: Final = struct.Struct("16si20x")

_MIN_MTU: Final = 68  # RFC 791: every IPv4 host must take 68-byte packets (ETH_MIN_MTU)
# With TSO the kernel sends IPv6 packets with a full 65535-byte payload plus header.
_SUPER_PACKET_LEN: Final = 65535 + 40


def _check_ifname(name: str) -> None:
    """Linux's dev_valid_name() (net/core/dev.c), with the limit spelled out."""
    encoded_len = len(name.encode())
    if encoded_len > IFNAME_MAX_LEN:
        raise ValueError(f"TAP name {name!r} is {encoded_len} bytes long; Linux interface "
                         f"names have at most {IFNAME_MAX_LEN} (IFNAMSIZ - 1)")
    if not name or name in (".", "..") or "/" in name or ":" in name or any(
            char.isspace() for char in name):
        raise ValueError(f"{name!r} is not a valid interface name (non-empty, no '/', ':' "
                         "or whitespace, not '.' or '..')")


def _check_options(engine: str, *, mtu: int, max_batch: int, rx_buffers: int,
                   txqueuelen: int | None, uring_impl: str = "auto") -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if uring_impl not in URING_IMPLS:
        raise ValueError(f"uring_impl must be one of {', '.join(URING_IMPLS)}, "
                         f"got {uring_impl!r}")
    minimums = [("mtu", mtu, _MIN_MTU), ("max_batch", max_batch, 1),
                ("rx_buffers", rx_buffers, 1)]
    if txqueuelen is not None:
        minimums.append(("txqueuelen", txqueuelen, 0))
    for option, value, minimum in minimums:
        if value < minimum:
            raise ValueError(f"{option} must be at least {minimum}, got {value}")


def _ifreq_short(name: str, value: int = 0) -> bytes:
    return _IFREQ_SHORT.pack(name.encode(), value)


def _attach_tap(fd: int, name: str, offload: bool) -> None:
    """TUNSETIFF, then the offload ioctls; raise a DeviceError that says what went wrong."""
    flags = _IFF_TAP | _IFF_NO_PI | (_IFF_VNET_HDR if offload else 0)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, _ifreq_short(name, flags))
    except PermissionError:
        raise DevicePermissionError(
            f"creating/attaching TAP {name!r} needs CAP_NET_ADMIN (run as root)") from None
    except OSError as error:
        if error.errno == errno.EBUSY:
            raise DeviceError(errno.EBUSY, f"TAP {name!r} is already attached to another "
                              "descriptor (a single-queue TAP has one)") from None
        if error.errno == errno.EINVAL:
            raise DeviceError(errno.EINVAL, f"interface {name!r} exists but is not a "
                              "single-queue TAP (a TUN, a multi-queue TAP or another kind "
                              "of link): TUNSETIFF refused to attach") from None
        raise
    if offload:
        fcntl.ioctl(fd, _TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        fcntl.ioctl(fd, _TUNSETOFFLOAD, _TUN_F_CSUM | _TUN_F_TSO4 | _TUN_F_TSO6)
    else:
        fcntl.ioctl(fd, _TUNSETOFFLOAD, 0)


def _configure_link(name: str, mtu: int, txqueuelen: int | None) -> None:
    """Set MTU and queue length and bring the link up, in the current namespace."""
    # Interface ioctls act on the namespace the socket was created in (netdevice(7)).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        try:
            fcntl.ioctl(control, _SIOCSIFMTU, _IFREQ_INT.pack(name.encode(), mtu))
        except OSError as error:
            raise DeviceError(error.errno, f"cannot set the MTU of TAP {name!r} to {mtu}: "
                              f"{error.strerror}") from None
        if txqueuelen is not None:
            fcntl.ioctl(control, _SIOCSIFTXQLEN, _IFREQ_INT.pack(name.encode(), txqueuelen))
        current = fcntl.ioctl(control, _SIOCGIFFLAGS, _ifreq_short(name))
        link_flags = _IFREQ_SHORT.unpack(current)[1]
        fcntl.ioctl(control, _SIOCSIFFLAGS, _ifreq_short(name, link_flags | _IFF_UP))
        _wait_until_running(control, name)


def _wait_until_running(control: socket.socket, name: str) -> None:
    """Wait (bounded) until the kernel reports the link operationally up.

    Attaching gives the TAP its carrier, but the kernel activates the link's
    transmit queue only when link-watch processes the event, which it may defer
    by up to a second (net/core/link_watch.c); until then the kernel silently
    drops what it sends to us, e.g. the reply to our first ARP request. IFF_RUNNING
    is set by the same link-watch step, so waiting for it makes the device usable
    the moment the constructor returns.
    """
    deadline = time.monotonic() + _RUNNING_TIMEOUT
    while time.monotonic() < deadline:
        flags = _IFREQ_SHORT.unpack(fcntl.ioctl(control, _SIOCGIFFLAGS, _ifreq_short(name)))[1]
        if flags & _IFF_RUNNING:
            return
        time.sleep(0.005)
    log.warning("TAP %r: the kernel did not report the link running within %.1f s; its first "
                "frames may be lost", name, _RUNNING_TIMEOUT)


def _open_tap(name: str, netns: str | None, *, offload: bool, mtu: int,
              txqueuelen: int | None) -> int:
    """The TAP's descriptor, attached and configured, opened inside ``netns``."""
    try:
        with in_netns(netns):
            try:
                fd = os.open(_TUN_PATH, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                raise DeviceError(errno.ENOENT, f"cannot open TAP {name!r}: {_TUN_PATH} does "
                                  "not exist (load the tun module; in a container, pass the "
                                  "device in)") from None
            except PermissionError:
                raise DevicePermissionError(
                    f"creating/attaching TAP {name!r} needs CAP_NET_ADMIN (run as root)"
                ) from None
            try:
                _attach_tap(fd, name, offload)
                _configure_link(name, mtu, txqueuelen)
            except BaseException:
                os.close(fd)
                raise
    except NetnsError as error:
        if error.errno == errno.ENOENT:
            raise DeviceNotFound(name, error.strerror or str(error)) from None
        raise DevicePermissionError(error.strerror or str(error)) from None
    return fd


class _FrameEngine(Protocol):
    @property
    def stats(self) -> EngineStats: ...

    def fileno(self) -> int: ...

    def receive(self, max_frames: int) -> list[memoryview]: ...

    def transmit(self, frames: Sequence[Frame]) -> int: ...

    def close(self) -> None: ...


class PlainEngine:
    """One non-blocking ``read``/``write`` system call per frame; ``fileno()`` is ``fd``.

    A gathered frame (a tuple of buffers) goes out with one ``writev`` of its pieces.

    Received frames land in ``max_batch`` preallocated buffers, reused by the next
    ``receive()``. ``transmit()`` stops at the first EAGAIN and reports the frames
    before it as accepted; other write errors count in ``stats.tx_errors``.
    EBADFD, EIO and ENODEV raise ``DeviceGone``.
    """

    def __init__(self, fd: int, *, name: str, buffer_len: int, max_batch: int) -> None:
        os.set_blocking(fd, False)
        self.name = name
        self.stats = EngineStats()
        self._fd = fd
        # FileIO.readinto is the fastest read from Python (PLATFORM.md) and returns
        # None instead of raising on EAGAIN.
        self._reader = io.FileIO(fd, "r", closefd=False)
        self._views = [memoryview(bytearray(buffer_len)) for _ in range(max_batch)]

    def fileno(self) -> int:
        return self._fd

    def receive(self, max_frames: int) -> list[memoryview]:
        readinto = self._reader.readinto
        views = self._views
        frames: list[memoryview] = []
        rx_bytes = 0
        for _ in range(min(max_frames, len(views))):
            view = views[len(frames)]
            try:
                length = readinto(view)
            except OSError as error:
                self._raise_if_gone(error, "read")
                self.stats.rx_errors += 1
                log.debug("%s: read failed: %s", self.name, error)
                continue
            if length is None:  # EAGAIN: nothing more queued
                break
            frames.append(view[:length])
            rx_bytes += length
        self.stats.rx_frames += len(frames)
        self.stats.rx_bytes += rx_bytes
        return frames

    def transmit(self, frames: Sequence[Frame]) -> int:
        accepted = 0
        fd = self._fd
        write, writev = os.write, os.writev
        for frame in frames:
            try:
                # A TAP write is one frame: writev() gathers the pieces into it.
                written = writev(fd, frame) if isinstance(frame, tuple) else write(fd, frame)
            except BlockingIOError:
                break  # the queue is full: the caller may retry the rest
            except OSError as error:
                self._raise_if_gone(error, "write")
                self.stats.tx_errors += 1
                log.debug("%s: write failed: %s", self.name, error)
            else:
                self._count_write(written, frame_len(frame))
            accepted += 1
        return accepted

    def close(self) -> None:
        self._reader.close()  # closefd=False: the descriptor stays open for its owner

    def _count_write(self, written: int, expected: int) -> None:
        if written == expected:
            self.stats.tx_frames += 1
            self.stats.tx_bytes += written
            return
        self.stats.tx_errors += 1
        log.error("%s: short write: %d of %d bytes (a frame write should be all or nothing)",
                  self.name, written, expected)

    def _raise_if_gone(self, error: OSError, operation: str) -> None:
        if error.errno in DEVICE_GONE_ERRNOS:
            raise DeviceGone(self.name, f"{operation} failed: {error.strerror}") from error


class TapDevice(ClosesOnExit):
    """A TAP interface as a ``Device`` (see the module doc)."""

    def __init__(
        self,
        name: str,
        *,
        netns: str | None = None,
        engine: str = "auto",
        offload: bool = True,
        mtu: int = 1500,
        max_batch: int = 64,
        rx_buffers: int = 128,
        txqueuelen: int | None = None,
        uring_impl: str = "auto",
    ) -> None:
        _check_ifname(name)
        _check_options(engine, mtu=mtu, max_batch=max_batch, rx_buffers=rx_buffers,
                       txqueuelen=txqueuelen, uring_impl=uring_impl)
        self.name = name
        self.netns = netns
        header_len = ETHERNET_HEADER_LEN + VLAN_TAG_LEN
        self._payload_limit = _SUPER_PACKET_LEN if offload else mtu
        self.max_frame_len = header_len + self._payload_limit + (
            VNET_HDR_LEN if offload else 0)
        self._capabilities = DeviceCapabilities(
            mtu=mtu, max_batch=max_batch, checksum_offload=offload, tso=offload,
            vnet_header=offload)
        self._fd = _open_tap(name, netns, offload=offload, mtu=mtu, txqueuelen=txqueuelen)
        self.fallback_reason: str | None = None
        self.engine_detail = ""
        try:
            self._engine = self._start_engine(engine, rx_buffers, uring_impl)
        except BaseException:
            os.close(self._fd)
            raise
        self.engine_name = "plain" if isinstance(self._engine, PlainEngine) else "uring"
        self._closed = False

    def _start_engine(self, engine: str, rx_buffers: int, uring_impl: str) -> _FrameEngine:
        """The engine the module contract's rules pick, with its one log line."""
        max_batch = self._capabilities.max_batch
        sizes = {"name": self.name, "buffer_len": self.max_frame_len,
                 "rx_buffers": rx_buffers, "tx_buffers": max_batch}
        reasons: list[str] = []
        if engine != "plain" and uring_impl != "python":
            try:
                compiled = BatchUringEngine(self._fd, **sizes)  # type: ignore[arg-type]
            except UringUnavailable as error:
                if uring_impl == "compiled":
                    raise
                reasons.append(error.reason)
            else:
                self.engine_detail = "io_uring, compiled helper (provided-buffer ring, " \
                                     "multishot read)"
                log.info("TAP %r: engine %s", self.name, self.engine_detail)
                return compiled
        if engine == "uring" or (engine == "auto" and uring_impl == "python"):
            try:
                python = UringEngine(self._fd, **sizes)  # type: ignore[arg-type]
            except UringUnavailable as error:
                if engine == "uring":
                    raise
                reasons.append(error.reason)
            else:
                mode = "multishot read" if python.multishot else "single reads"
                self.engine_detail = f"io_uring, pure Python on the liburing binding ({mode})"
                log.info("TAP %r: engine %s%s", self.name, self.engine_detail,
                         f" (compiled helper unavailable: {reasons[0]})" if reasons else "")
                return python
        if engine == "auto":
            # Without the compiled helper the pure-Python io_uring engine is slower than
            # plain read/write (docs/performance.md), so auto does not take it.
            self.fallback_reason = "; ".join(reasons) or "io_uring unavailable"
            log.warning("TAP %r: io_uring unavailable, using the plain read/write "
                        "engine: %s", self.name, self.fallback_reason)
        self.engine_detail = "plain read/write"
        if engine == "plain":
            log.info("TAP %r: engine %s (asked for)", self.name, self.engine_detail)
        return PlainEngine(self._fd, name=self.name, buffer_len=self.max_frame_len,
                           max_batch=max_batch)

    def __repr__(self) -> str:
        where = f" in netns {self.netns!r}" if self.netns else ""
        state = "closed" if self._closed else f"engine={self.engine_name}"
        return f"<TapDevice {self.name!r}{where}, {state}>"

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self._capabilities

    @property
    def stats(self) -> EngineStats:
        return self._engine.stats

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        self._check_open()
        return self._engine.fileno()

    def receive(self, max_frames: int) -> list[memoryview]:
        self._check_open()
        return self._engine.receive(min(max_frames, self._capabilities.max_batch))

    def transmit(self, frames: Sequence[Frame]) -> int:
        self._check_open()
        if frames:
            longest = max(map(frame_len, frames))
            if longest > self.max_frame_len:
                raise FrameTooLarge(longest, self.max_frame_len, self._payload_limit)
        engine = self._engine
        sent = engine.transmit(frames)
        # An io_uring engine takes at most its free send slots (``max_batch``) per
        # call; the TAP writes complete inside the call, so the next one has them back.
        # A batch larger than the slots is sent whole, not cut short (a plain engine's
        # EAGAIN ends it: the TAP queue is full).
        while sent and sent < len(frames):
            more = engine.transmit(frames[sent:])
            if not more:
                break
            sent += more
        return sent

    def close(self) -> None:
        """Stop the engine and close the TAP fd (a TAP we created vanishes). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._engine.close()
        finally:
            os.close(self._fd)

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed(f"TAP {self.name!r}")
