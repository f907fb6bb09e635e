"""IPv4 packets (RFC 791).

Contract:
- :meth:`Ipv4Packet.checked` raises :class:`Truncated` when the buffer ends
  before the 20-byte fixed header, before ``header_len`` (IHL * 4) or before
  ``total_len``; :class:`Malformed` for a version other than 4, IHL < 5 or
  ``total_len < header_len``; :class:`BadChecksum` when the header checksum does
  not verify. The buffer may be longer than ``total_len`` (Ethernet padding):
  ``payload`` is sliced by ``total_len``, never by the buffer length.
- Options (IHL > 5) are kept as raw bytes (``options``) and not interpreted.
- Field setters edit in place and do not touch the checksum: call
  :meth:`Ipv4Packet.fill_checksum` after editing.
- :meth:`Ipv4Repr.emit` writes a 20-byte header without options, checksum filled.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from .checksum import checksum, verify
from .errors import BadChecksum, Malformed, Truncated
from .ip import IpProtocol, protocol_name

__all__ = ["Ipv4Packet", "Ipv4Repr"]

# RFC 791 §3.1 header: version/IHL, type of service (DSCP/ECN per RFC 2474 §3 and
# RFC 3168 §5), total length, identification, flags/fragment offset, TTL, protocol,
# header checksum, source address, destination address.
_HEADER = struct.Struct("!BBHHHBBHII")
_MIN_HEADER_LEN = _HEADER.size  # 20
_TOTAL_LEN = 2
_IDENT = 4
_FLAGS_FRAG = 6
_TTL = 8
_PROTOCOL = 9
_CHECKSUM = 10
_SRC = 12
_DST = 16
_FLAG_DONT_FRAG = 0x4000
_FLAG_MORE_FRAGS = 0x2000
_FRAG_OFFSET_MASK = 0x1FFF  # in 8-octet units
_MAX_FRAG_OFFSET = _FRAG_OFFSET_MASK * 8
_MAX_TOTAL_LEN = 0xFFFF
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_KNOWN_PROTOCOLS: dict[int, int] = {member.value: member for member in IpProtocol}


class Ipv4Packet:
    """Zero-copy view of an IPv4 packet (see the module contract)."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf)

    @classmethod
    def checked(cls, buf: bytes | bytearray | memoryview) -> Ipv4Packet:
        packet = cls(buf)
        length = len(packet.buf)
        if length < _MIN_HEADER_LEN:
            raise Truncated(f"IPv4 header needs {_MIN_HEADER_LEN} bytes, got {length}")
        if packet.version != 4:
            raise Malformed(f"IP version {packet.version} in an IPv4 packet")
        header_len = packet.header_len
        if header_len < _MIN_HEADER_LEN:
            raise Malformed(f"IPv4 IHL {packet.ihl} < 5")
        if length < header_len:
            raise Truncated(f"IPv4 header with options needs {header_len} bytes, got {length}")
        total_len = packet.total_len
        if total_len < header_len:
            raise Malformed(f"IPv4 total length {total_len} < header length {header_len}")
        if total_len > length:
            raise Truncated(f"IPv4 total length {total_len} > buffer length {length}")
        if not packet.verify_checksum():
            raise BadChecksum("IPv4 header checksum")
        return packet

    @property
    def version(self) -> int:
        return self.buf[0] >> 4

    @property
    def ihl(self) -> int:
        """Header length in 32-bit words (RFC 791 §3.1 "IHL")."""
        return self.buf[0] & 0x0F

    @property
    def header_len(self) -> int:
        return (self.buf[0] & 0x0F) * 4

    @property
    def dscp(self) -> int:
        return self.buf[1] >> 2

    @property
    def ecn(self) -> int:
        return self.buf[1] & 0x03

    @property
    def total_len(self) -> int:
        return int(_U16.unpack_from(self.buf, _TOTAL_LEN)[0])

    @property
    def ident(self) -> int:
        return int(_U16.unpack_from(self.buf, _IDENT)[0])

    @property
    def dont_frag(self) -> bool:
        return bool(_U16.unpack_from(self.buf, _FLAGS_FRAG)[0] & _FLAG_DONT_FRAG)

    @property
    def more_frags(self) -> bool:
        return bool(_U16.unpack_from(self.buf, _FLAGS_FRAG)[0] & _FLAG_MORE_FRAGS)

    @property
    def frag_offset(self) -> int:
        """Fragment offset in bytes (the wire field counts 8-byte units)."""
        return int(_U16.unpack_from(self.buf, _FLAGS_FRAG)[0] & _FRAG_OFFSET_MASK) * 8

    @property
    def ttl(self) -> int:
        return self.buf[_TTL]

    @ttl.setter
    def ttl(self, value: int) -> None:
        self.buf[_TTL] = value

    @property
    def protocol(self) -> int:
        return self.buf[_PROTOCOL]

    @property
    def checksum(self) -> int:
        return int(_U16.unpack_from(self.buf, _CHECKSUM)[0])

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buf, _CHECKSUM, value)

    @property
    def src_int(self) -> int:
        """Source address as an integer (for pseudo-header sums without an IPv4Address)."""
        return int(_U32.unpack_from(self.buf, _SRC)[0])

    @property
    def src(self) -> IPv4Address:
        return IPv4Address(self.src_int)

    @src.setter
    def src(self, value: IPv4Address) -> None:
        _U32.pack_into(self.buf, _SRC, int(value))

    @property
    def dst_int(self) -> int:
        return int(_U32.unpack_from(self.buf, _DST)[0])

    @property
    def dst(self) -> IPv4Address:
        return IPv4Address(self.dst_int)

    @dst.setter
    def dst(self, value: IPv4Address) -> None:
        _U32.pack_into(self.buf, _DST, int(value))

    @property
    def options(self) -> memoryview:
        """Raw option bytes (RFC 791 §3.1 "Options"), empty when IHL is 5."""
        return self.buf[_MIN_HEADER_LEN : self.header_len]

    @property
    def payload(self) -> memoryview:
        return self.buf[self.header_len : self.total_len]

    def verify_checksum(self) -> bool:
        return verify(self.buf[: self.header_len])

    def fill_checksum(self) -> None:
        """Recompute the header checksum (RFC 791 §3.1) after in-place edits."""
        header_len = self.header_len
        _U16.pack_into(self.buf, _CHECKSUM, 0)
        _U16.pack_into(self.buf, _CHECKSUM, checksum(self.buf[:header_len]))


@dataclass(frozen=True, slots=True)
class Ipv4Repr:
    """An IPv4 header without options; ``frag_offset`` is in bytes (a multiple of 8)."""

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    payload_len: int
    ttl: int = 64
    dscp: int = 0
    ecn: int = 0
    ident: int = 0
    dont_frag: bool = True
    more_frags: bool = False
    frag_offset: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | Ipv4Packet) -> Ipv4Repr:
        packet = Ipv4Packet.checked(data.buf if isinstance(data, Ipv4Packet) else data)
        version_ihl, tos, total_len, ident, flags_frag, ttl, protocol, _, src, dst = (
            _HEADER.unpack_from(packet.buf)
        )
        return cls(
            src=IPv4Address(src),
            dst=IPv4Address(dst),
            protocol=_KNOWN_PROTOCOLS.get(protocol, protocol),
            payload_len=total_len - (version_ihl & 0x0F) * 4,
            ttl=ttl,
            dscp=tos >> 2,
            ecn=tos & 0x03,
            ident=ident,
            dont_frag=bool(flags_frag & _FLAG_DONT_FRAG),
            more_frags=bool(flags_frag & _FLAG_MORE_FRAGS),
            frag_offset=(flags_frag & _FRAG_OFFSET_MASK) * 8,
        )

    @property
    def header_len(self) -> int:
        return _MIN_HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return _MIN_HEADER_LEN + self.payload_len

    def emit(self, buf: bytearray | memoryview) -> None:
        """Write the 20-byte header, checksum included, at the start of ``buf``."""
        if self.frag_offset & 7 or not 0 <= self.frag_offset <= _MAX_FRAG_OFFSET:
            raise ValueError(f"IPv4 fragment offset {self.frag_offset} is not a multiple of 8")
        if self.buffer_len > _MAX_TOTAL_LEN:
            raise ValueError(f"IPv4 total length {self.buffer_len} exceeds {_MAX_TOTAL_LEN}")
        flags_frag = self.frag_offset // 8
        if self.dont_frag:
            flags_frag |= _FLAG_DONT_FRAG
        if self.more_frags:
            flags_frag |= _FLAG_MORE_FRAGS
        _HEADER.pack_into(
            buf, 0, 0x45, (self.dscp << 2) | self.ecn, self.buffer_len, self.ident, flags_frag,
            self.ttl, self.protocol, 0, int(self.src), int(self.dst),
        )
        _U16.pack_into(buf, _CHECKSUM, checksum(buf[:_MIN_HEADER_LEN]))

    def __str__(self) -> str:
        line = (
            f"IP {self.src} > {self.dst}: proto {protocol_name(self.protocol)} ({self.protocol}),"
            f" length {self.buffer_len}, ttl {self.ttl}"
        )
        if self.dscp or self.ecn:
            line += f", tos 0x{(self.dscp << 2) | self.ecn:02x}"
        if self.ident:
            line += f", id {self.ident}"
        if self.frag_offset:
            line += f", offset {self.frag_offset}"
        flags = ("DF" if self.dont_frag else "") + ("+" if self.more_frags else "")
        if flags:
            line += f", flags [{flags}]"
        return line
