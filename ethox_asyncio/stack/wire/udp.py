"""UDP datagrams (RFC 768) over IPv4 and IPv6 (RFC 8200 §8.1).

Contract:
- :class:`UdpPacket` is a view over a ``memoryview``; :meth:`UdpPacket.checked`
  raises :class:`Truncated` when the buffer is shorter than 8 bytes or than the
  length field, and :class:`Malformed` when the length field is below 8. The
  payload is sliced by the length field: bytes after it (link padding) are
  ignored.
- :meth:`UdpRepr.parse` takes the IP source and destination as
  ``IPv4Address``/``IPv6Address``; the pseudo-header family follows their type.
  A zero checksum means "not computed" and is accepted over IPv4 (RFC 768);
  over IPv6 it is :class:`Malformed` whatever ``caps.verify`` says
  (RFC 8200 §8.1). Otherwise, if ``caps.verify``, a wrong checksum raises
  :class:`BadChecksum`.
- :meth:`UdpRepr.emit_header` writes the 8-byte header in front of a payload
  the caller already placed at ``buf[8:8 + payload_len]`` (zero-copy);
  :meth:`UdpRepr.emit` copies the payload there first. With ``TxChecksum.FULL``
  a computed checksum of 0 is sent as 0xFFFF (RFC 768); ``PARTIAL`` stores the
  folded pseudo-header sum, not complemented (virtio-net ``NEEDS_CSUM``);
  ``NONE`` writes 0.
- IPv6 jumbograms (RFC 2675, length field 0) are not supported: Malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from .checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    checksum,
    fold,
    ones_sum,
    pseudo_header,
)
from .errors import BadChecksum, Malformed, Truncated
from .ip import IpProtocol

__all__ = ["HEADER_LEN", "UdpPacket", "UdpRepr"]

# RFC 768 header: source port, destination port, length, checksum.
_HEADER = struct.Struct("!HHHH")
_U16 = struct.Struct("!H")
HEADER_LEN = 8
_SRC_PORT = 0
_DST_PORT = 2
_LENGTH = 4
_CHECKSUM = 6
_MAX_LENGTH = 0xFFFF

_Buffer = bytes | bytearray | memoryview
_WritableBuffer = bytearray | memoryview
_Address = IPv4Address | IPv6Address
_PROTOCOL = int(IpProtocol.UDP)


class UdpPacket:
    """Zero-copy view of a UDP datagram; ``__init__`` does no checks, use :meth:`checked`."""

    __slots__ = ("buf",)

    def __init__(self, buf: _Buffer) -> None:
        self.buf = memoryview(buf)

    @classmethod
    def checked(cls, buf: _Buffer) -> UdpPacket:
        packet = cls(buf)
        size = len(packet.buf)
        if size < HEADER_LEN:
            raise Truncated(f"UDP header needs {HEADER_LEN} bytes, got {size}")
        length = packet.length
        if length < HEADER_LEN:
            raise Malformed(f"UDP length field {length} is below the header size")
        if length > size:
            raise Truncated(f"UDP length field {length} exceeds the {size}-byte buffer")
        return packet

    @property
    def src_port(self) -> int:
        return _U16.unpack_from(self.buf, _SRC_PORT)[0]  # type: ignore[no-any-return]

    @src_port.setter
    def src_port(self, value: int) -> None:
        _U16.pack_into(self.buf, _SRC_PORT, value)

    @property
    def dst_port(self) -> int:
        return _U16.unpack_from(self.buf, _DST_PORT)[0]  # type: ignore[no-any-return]

    @dst_port.setter
    def dst_port(self, value: int) -> None:
        _U16.pack_into(self.buf, _DST_PORT, value)

    @property
    def length(self) -> int:
        """Header plus payload, from the length field."""
        return _U16.unpack_from(self.buf, _LENGTH)[0]  # type: ignore[no-any-return]

    @length.setter
    def length(self, value: int) -> None:
        _U16.pack_into(self.buf, _LENGTH, value)

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self.buf, _CHECKSUM)[0]  # type: ignore[no-any-return]

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buf, _CHECKSUM, value)

    @property
    def payload(self) -> memoryview:
        """The payload as far as the length field says (padding excluded)."""
        return self.buf[HEADER_LEN : self.length]

    def fill_checksum(self, src: int, dst: int) -> None:
        """Compute and store the checksum; ``src``/``dst`` are ``int(address)`` of either
        family. A result of 0 is stored as 0xFFFF (RFC 768).
        """
        length = self.length
        self.checksum = 0
        value = checksum(self.buf[:length], pseudo_header(src, dst, _PROTOCOL, length))
        self.checksum = value or 0xFFFF

    def verify_checksum(self, src: int, dst: int) -> bool:
        """True if the stored checksum verifies. A zero field ("no checksum",
        IPv4 only) is not special-cased here: :meth:`UdpRepr.parse` applies that rule.
        """
        length = self.length
        return ones_sum(self.buf[:length], pseudo_header(src, dst, _PROTOCOL, length)) == 0xFFFF


@dataclass(frozen=True, slots=True)
class UdpRepr:
    """A UDP header; the payload stays in the buffer (see :attr:`UdpPacket.payload`)."""

    src_port: int
    dst_port: int
    payload_len: int

    @classmethod
    def parse(
        cls,
        data: _Buffer | UdpPacket,
        src: _Address,
        dst: _Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> UdpRepr:
        """Validate and decode ``data`` (the IP payload) received from ``src`` to ``dst``."""
        buf = data.buf if isinstance(data, UdpPacket) else data
        size = len(buf)
        if size < HEADER_LEN:
            raise Truncated(f"UDP header needs {HEADER_LEN} bytes, got {size}")
        src_port, dst_port, length, stored = _HEADER.unpack_from(buf)
        if length < HEADER_LEN:
            raise Malformed(f"UDP length field {length} is below the header size")
        if length > size:
            raise Truncated(f"UDP length field {length} exceeds the {size}-byte buffer")
        if stored == 0:
            # RFC 768: zero means the sender computed no checksum. RFC 8200 §8.1:
            # over IPv6 the checksum is mandatory and a zero one must be discarded.
            if src.version == 6:
                raise Malformed("UDP over IPv6 with a zero checksum")
        elif caps.verify and ones_sum(
            memoryview(buf)[:length], pseudo_header(int(src), int(dst), _PROTOCOL, length)
        ) != 0xFFFF:
            raise BadChecksum(f"UDP checksum 0x{stored:04x} does not verify")
        return cls(src_port, dst_port, length - HEADER_LEN)

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + self.payload_len

    def emit_header(
        self,
        buf: _WritableBuffer,
        src: _Address,
        dst: _Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        """Write the header at ``buf[:8]``; the payload must already be at ``buf[8:buffer_len]``."""
        length = HEADER_LEN + self.payload_len
        if length > _MAX_LENGTH:
            raise ValueError(f"UDP datagram of {length} bytes exceeds the 16-bit length field")
        _HEADER.pack_into(buf, 0, self.src_port, self.dst_port, length, 0)
        tx = caps.tx
        pseudo = pseudo_header(int(src), int(dst), _PROTOCOL, length)
        if tx is TxChecksum.FULL:
            value = checksum(memoryview(buf)[:length], pseudo)
            # RFC 768: an all-zero computed checksum is transmitted as all ones.
            _U16.pack_into(buf, _CHECKSUM, value or 0xFFFF)
        elif tx is TxChecksum.PARTIAL:
            _U16.pack_into(buf, _CHECKSUM, fold(pseudo))

    def emit(
        self,
        buf: _WritableBuffer,
        src: _Address,
        dst: _Address,
        payload: _Buffer,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        """Copy ``payload`` to ``buf[8:]`` and write the header in front of it."""
        if len(payload) != self.payload_len:
            raise ValueError(f"payload is {len(payload)} bytes, UdpRepr says {self.payload_len}")
        buf[HEADER_LEN : HEADER_LEN + self.payload_len] = payload
        self.emit_header(buf, src, dst, caps)

    def __str__(self) -> str:
        # Like tcpdump, "length" is the payload length.
        return f"UDP {self.src_port} > {self.dst_port}, length {self.payload_len}"
