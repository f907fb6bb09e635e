"""The Device protocol: what the loop needs from anything that moves Ethernet frames.

Contract:

- ``receive(max_frames)`` returns at most ``max_frames`` (and at most
  ``capabilities.max_batch``) frames that are ready *now*, never blocking; an empty
  sequence means nothing is pending. The returned views may be writable (so the stack
  can answer in place) and stay valid only until the next ``receive()`` call: a device
  may reuse their buffers. Whoever keeps data longer copies it.
- ``transmit(frames)`` hands a batch to the device and returns how many frames, from
  the start of the batch, it accepted; the rest were not sent (the queue is full) and
  may be retried. The device is done with the caller's buffers when it returns. A
  frame is one contiguous buffer or a tuple of buffers that, concatenated in order,
  make the frame (*gathered*: e.g. the headers the stack just built, then the payload
  still in the application's buffer); devices gather it without joining where the
  system call allows (``writev``, ``sendmsg``) and otherwise copy the pieces once into
  their own buffer. Limits apply to the whole frame (:func:`frame_len`).
- ``fileno()`` is a descriptor that polls readable while ``receive()`` has frames to
  give, so an event loop can ``add_reader`` it.
- ``close()`` releases the device; it is idempotent. Any other call afterwards raises
  ``DeviceClosed``.

Errors are ``DeviceError`` (an ``OSError``) with a meaningful ``errno``:
``DeviceClosed`` (EBADF), ``FrameTooLarge`` (EMSGSIZE), ``DeviceNotFound`` (ENODEV:
no such interface when opening), ``DeviceGone`` (ENODEV: the interface vanished while
in use) and ``DevicePermissionError`` (EPERM: opening needs CAP_NET_ADMIN).

Devices know file descriptors and bytes, not protocols: this package never imports
``ethox_asyncio.stack``.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, TypeAlias, runtime_checkable

__all__ = [
    "ETHERNET_HEADER_LEN",
    "VLAN_TAG_LEN",
    "Buffer",
    "ClosesOnExit",
    "Device",
    "DeviceCapabilities",
    "DeviceClosed",
    "DeviceError",
    "DeviceGone",
    "DeviceNotFound",
    "DevicePermissionError",
    "Frame",
    "FrameTooLarge",
    "frame_bytes",
    "frame_len",
]

#: Destination MAC, source MAC, EtherType (IEEE 802.3 clause 3.1.1).
ETHERNET_HEADER_LEN = 14
#: One IEEE 802.1Q tag (TPID + TCI) between the source MAC and the EtherType.
VLAN_TAG_LEN = 4

#: One contiguous piece of a frame.
Buffer: TypeAlias = bytes | bytearray | memoryview
#: What ``transmit()`` accepts as one frame: a contiguous buffer, or the buffers that
#: concatenated in order make it (gathered, see the module contract).
Frame: TypeAlias = Buffer | tuple[Buffer, ...]


def frame_len(frame: Frame) -> int:
    """The length in bytes of a frame, contiguous or gathered."""
    if type(frame) is tuple:
        return sum(map(len, frame))
    return len(frame)


def frame_bytes(frame: Frame) -> bytes:
    """The frame as one ``bytes`` (a copy): for captures, tests and devices that store
    frames rather than write them."""
    if type(frame) is tuple:
        return b"".join(frame)
    return bytes(frame)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeviceCapabilities:
    """What a device can do, so the stack adapts instead of guessing.

    ``mtu`` is the largest IP packet (the Ethernet payload, header excluded).
    ``max_batch`` bounds the frames one ``receive()`` returns. ``checksum_offload``:
    received frames have had their L4 checksums verified and transmitted frames may
    carry only a partial (pseudo-header) checksum. ``tso``: the device accepts TCP
    super-frames larger than the MTU and segments them. ``vnet_header``: frames
    carry a ``virtio_net_hdr`` in front of the Ethernet header.
    """

    mtu: int
    max_batch: int
    checksum_offload: bool = False
    tso: bool = False
    vnet_header: bool = False


@runtime_checkable
class Device(Protocol):
    """A source and sink of Ethernet frames with a readiness descriptor (see module doc)."""

    @property
    def capabilities(self) -> DeviceCapabilities: ...

    def fileno(self) -> int: ...

    def receive(self, max_frames: int) -> Sequence[memoryview]: ...

    def transmit(self, frames: Sequence[Frame]) -> int: ...

    def close(self) -> None: ...


class ClosesOnExit:
    """Mixin: ``with thing:`` hands back ``thing`` and calls its ``close()`` on exit."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define close()")


class DeviceError(OSError):
    """Base of the errors a device raises."""


class DeviceClosed(DeviceError):
    """The device was used after ``close()``."""

    def __init__(self, what: str = "device") -> None:
        super().__init__(errno.EBADF, f"{what} is closed")


class FrameTooLarge(DeviceError):
    """A frame handed to ``transmit()`` exceeds what the link can carry."""

    def __init__(self, frame_len: int, max_frame_len: int, mtu: int) -> None:
        super().__init__(
            errno.EMSGSIZE,
            f"frame of {frame_len} bytes exceeds the link limit of {max_frame_len} bytes "
            f"(MTU {mtu} + {max_frame_len - mtu} bytes of Ethernet header)",
        )
        self.frame_len = frame_len
        self.max_frame_len = max_frame_len
        self.mtu = mtu


class DeviceNotFound(DeviceError):
    """The interface to open does not exist (in the namespace it was looked up in)."""

    def __init__(self, ifname: str, detail: str = "") -> None:
        message = f"no network interface {ifname!r}"
        if detail:
            message += f": {detail}"
        super().__init__(errno.ENODEV, message)
        self.ifname = ifname


class DevicePermissionError(DeviceError):
    """Opening or configuring the device needs a capability the process lacks."""

    def __init__(self, what: str) -> None:
        # Callers that already know which capability is missing say so themselves.
        message = what if "CAP_" in what else f"{what} needs CAP_NET_ADMIN (run as root)"
        super().__init__(errno.EPERM, message)


class DeviceGone(DeviceError):
    """The interface disappeared (deleted, or its namespace removed) while the device used it."""

    def __init__(self, ifname: str, detail: str = "") -> None:
        message = f"interface {ifname!r} disappeared while in use"
        if detail:
            message += f" ({detail})"
        super().__init__(errno.ENODEV, message)
        self.ifname = ifname
