"""Classic libpcap capture files: write, read, and record a device's traffic.

Contract:

- ``PcapWriter`` writes the classic format (not pcapng): a little-endian global header
  with magic ``0xa1b2c3d4`` (microsecond timestamps), version 2.4, then one record per
  frame. Frames longer than ``snaplen`` are cut to ``snaplen`` and keep their original
  length in the record. Files written here open in tcpdump, tshark and Wireshark.
- ``read_pcap`` / ``PcapReader`` read microsecond (``0xa1b2c3d4``) and nanosecond
  (``0xa1b23c4d``) files in either byte order. Anything else — a pcapng file, a
  truncated header or record, an absurd record length — raises ``PcapFormatError``
  naming the offset, never a bare ``struct.error``.
- ``PcapDevice(inner, path)`` is a Device that forwards to ``inner`` and records every
  frame ``inner`` receives and every frame it accepts for transmission, stamped with
  ``clock()`` once per batch. (DESIGN.md calls this wrapper ``PcapWriter(dev, path)``;
  here ``PcapWriter`` is the file writer it uses.) Frames are recorded as the inner
  device hands them over: with ``capabilities.vnet_header`` they carry that header.
  A gathered frame (a tuple of buffers) is recorded as its pieces joined.

Format reference: https://www.tcpdump.org/manpages/pcap-savefile.5.html and
draft-ietf-opsawg-pcap.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

from .base import ClosesOnExit, Device, DeviceCapabilities, Frame, frame_bytes

__all__ = [
    "LINKTYPE_ETHERNET",
    "PcapDevice",
    "PcapFormatError",
    "PcapReader",
    "PcapRecord",
    "PcapWriter",
    "read_pcap",
]

LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 65535

MAGIC_MICROSECONDS = 0xA1B2C3D4
MAGIC_NANOSECONDS = 0xA1B23C4D
_PCAPNG_MAGIC = 0x0A0D0D0A  # section header block type: the file is pcapng
_VERSION_MAJOR = 2
_VERSION_MINOR = 4
# libpcap refuses records larger than this unless the snaplen says otherwise
# (MAXIMUM_SNAPLEN in pcap-int.h): protects against reading a garbage length.
_MAX_RECORD_LEN = 262144

# Global header: magic, version major, minor, thiszone, sigfigs, snaplen, linktype.
_GLOBAL_HEADER_LE = struct.Struct("<IHHiIII")
_GLOBAL_HEADER_BE = struct.Struct(">IHHiIII")
# Record header: seconds, sub-second (µs or ns), captured length, original length.
_RECORD_HEADER_LE = struct.Struct("<IIII")
_RECORD_HEADER_BE = struct.Struct(">IIII")

PathOrBinaryFile: TypeAlias = str | os.PathLike[str] | BinaryIO


class PcapFormatError(ValueError):
    """The data is not a classic pcap file this module can read."""


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured frame: ``timestamp`` in seconds since the epoch, the captured
    ``data`` (possibly cut to the snaplen) and the frame's ``orig_len`` on the wire."""

    timestamp: float
    data: bytes
    orig_len: int


class PcapWriter(ClosesOnExit):
    """Writes frames to a classic pcap file (see module doc).

    Given a path it opens, owns and closes the file; given a binary file object it
    writes to it and leaves closing it to the caller (``close()`` only flushes).
    """

    def __init__(
        self,
        path_or_binary_file: PathOrBinaryFile,
        snaplen: int = DEFAULT_SNAPLEN,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        if snaplen < 1:
            raise ValueError(f"snaplen must be positive, got {snaplen}")
        self.snaplen = snaplen
        self.linktype = linktype
        self._owns_file = isinstance(path_or_binary_file, (str, os.PathLike))
        self._file: BinaryIO = (
            open(path_or_binary_file, "wb")  # noqa: SIM115 - closed by close()
            if isinstance(path_or_binary_file, (str, os.PathLike))
            else path_or_binary_file
        )
        self._closed = False
        self._file.write(
            _GLOBAL_HEADER_LE.pack(
                MAGIC_MICROSECONDS, _VERSION_MAJOR, _VERSION_MINOR, 0, 0, snaplen, linktype
            )
        )

    def write(self, frame: Frame, timestamp: float) -> None:
        """Append one record; ``timestamp`` is seconds since the epoch (>= 0). A gathered
        ``frame`` (a tuple of buffers) is recorded joined."""
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        if timestamp < 0:
            raise ValueError(f"pcap timestamps cannot be negative, got {timestamp}")
        data = memoryview(frame_bytes(frame) if isinstance(frame, tuple) else frame).cast("B")
        orig_len = len(data)
        captured = data[: self.snaplen]
        seconds, microseconds = divmod(round(timestamp * 1_000_000), 1_000_000)
        self._file.write(_RECORD_HEADER_LE.pack(seconds, microseconds, len(captured), orig_len))
        self._file.write(captured)

    def flush(self) -> None:
        if not self._closed:
            self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it. Idempotent."""
        if self._closed:
            return
        self._file.flush()
        self._closed = True
        if self._owns_file:
            self._file.close()


class PcapReader(ClosesOnExit):
    """Iterates over the records of a classic pcap file (see module doc).

    The global header is read and checked on construction, so ``linktype``,
    ``snaplen`` and ``nanosecond_timestamps`` are available before iterating.
    Given a path it owns the file: use it as a context manager or call ``close()``.
    """

    def __init__(self, path_or_binary_file: PathOrBinaryFile) -> None:
        self._owns_file = isinstance(path_or_binary_file, (str, os.PathLike))
        self._file: BinaryIO = (
            open(path_or_binary_file, "rb")  # noqa: SIM115 - closed by close()
            if isinstance(path_or_binary_file, (str, os.PathLike))
            else path_or_binary_file
        )
        self._offset = 0
        try:
            self._read_global_header()
        except BaseException:
            self.close()
            raise

    def _read_global_header(self) -> None:
        header = self._read_exact(_GLOBAL_HEADER_LE.size, "global header")
        (magic,) = struct.unpack_from("<I", header)
        if magic in (MAGIC_MICROSECONDS, MAGIC_NANOSECONDS):
            global_struct, self._record_header = _GLOBAL_HEADER_LE, _RECORD_HEADER_LE
        elif _byte_swapped(magic) in (MAGIC_MICROSECONDS, MAGIC_NANOSECONDS):
            global_struct, self._record_header = _GLOBAL_HEADER_BE, _RECORD_HEADER_BE
        elif magic == _PCAPNG_MAGIC:
            raise PcapFormatError(
                "pcapng files are not supported; convert with `editcap -F pcap in out`"
            )
        else:
            raise PcapFormatError(
                f"not a pcap file: starts with {header[:4].hex()} (expected the magic "
                f"0x{MAGIC_MICROSECONDS:08x} or 0x{MAGIC_NANOSECONDS:08x} in either byte order)"
            )
        magic, major, minor, _, _, snaplen, linktype = global_struct.unpack(header)
        if major != _VERSION_MAJOR:
            raise PcapFormatError(f"unsupported pcap version {major}.{minor} (expected 2.x)")
        self.big_endian = global_struct is _GLOBAL_HEADER_BE
        self.nanosecond_timestamps = magic == MAGIC_NANOSECONDS
        self.snaplen: int = snaplen
        # The upper 16 bits may carry FCS information (pcap-savefile(5)); keep the type.
        self.linktype: int = linktype & 0xFFFF

    def __iter__(self) -> Iterator[PcapRecord]:
        divisor = 1_000_000_000 if self.nanosecond_timestamps else 1_000_000
        max_record_len = max(self.snaplen, _MAX_RECORD_LEN)
        while True:
            record_offset = self._offset
            header = self._read_exact(self._record_header.size, "record header", eof_ok=True)
            if not header:
                return
            seconds, fraction, captured_len, orig_len = self._record_header.unpack(header)
            if captured_len > max_record_len:
                raise PcapFormatError(
                    f"record at offset {record_offset} claims {captured_len} captured bytes "
                    f"(more than {max_record_len}): corrupt file"
                )
            if fraction >= divisor:
                raise PcapFormatError(
                    f"record at offset {record_offset} has a sub-second field of {fraction} "
                    f"(must be below {divisor}): corrupt file"
                )
            data = self._read_exact(captured_len, "record data")
            yield PcapRecord(seconds + fraction / divisor, data, orig_len)

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def _read_exact(self, size: int, what: str, eof_ok: bool = False) -> bytes:
        """``size`` bytes; ``b""`` at the end of the file if ``eof_ok``; else an error."""
        data = self._file.read(size)
        if eof_ok and not data:
            return data
        if len(data) != size:
            raise PcapFormatError(
                f"truncated file: {what} at offset {self._offset} needs {size} bytes, "
                f"only {len(data)} left"
            )
        self._offset += size
        return data


def _byte_swapped(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little"), "big")


def read_pcap(
    path_or_binary_file: PathOrBinaryFile, linktype: int | None = LINKTYPE_ETHERNET
) -> Iterator[PcapRecord]:
    """Yield the records of a classic pcap file.

    Raises ``PcapFormatError`` if the file is malformed or its link type is not
    ``linktype`` (pass ``None`` to accept any link type).
    """
    with PcapReader(path_or_binary_file) as reader:
        if linktype is not None and reader.linktype != linktype:
            raise PcapFormatError(
                f"link type {reader.linktype} where {linktype} was expected "
                f"({LINKTYPE_ETHERNET} is Ethernet)"
            )
        yield from reader


class PcapDevice:
    """A Device that forwards to ``inner`` and records its traffic to a pcap file.

    Received frames are recorded as ``receive()`` returns them; transmitted frames
    only when ``inner`` accepted them. ``close()`` closes the capture and ``inner``.
    """

    def __init__(
        self,
        inner: Device,
        path_or_binary_file: PathOrBinaryFile,
        clock: Callable[[], float] = time.time,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        self.inner = inner
        self.writer = PcapWriter(path_or_binary_file, snaplen=snaplen)
        self._clock = clock

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self.inner.capabilities

    def fileno(self) -> int:
        return self.inner.fileno()

    def poll_at(self) -> float | None:
        """The inner device's deadline, if it holds timed work (e.g. a FaultInjector)."""
        poll_at = getattr(self.inner, "poll_at", None)
        return poll_at() if poll_at is not None else None

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        frames = self.inner.receive(max_frames)
        if frames:
            self._record(frames)
        return frames

    def transmit(self, frames: Sequence[Frame]) -> int:
        accepted = self.inner.transmit(frames)
        if accepted:
            self._record(frames[:accepted])
        return accepted

    def flush(self) -> None:
        """Push recorded frames to the file (e.g. before reading it while running)."""
        self.writer.flush()

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.inner.close()

    def _record(self, frames: Sequence[Frame]) -> None:
        now = self._clock()
        for frame in frames:
            self.writer.write(frame, now)
