"""IPv6 packets and extension headers (RFC 8200).

Contract:
- :meth:`Ipv6Packet.checked` raises :class:`Truncated` when the buffer ends
  before the 40-byte header or before ``40 + payload_len``, and :class:`Malformed`
  for a version other than 6. The buffer may be longer (Ethernet padding):
  ``payload`` is sliced by ``payload_len``. Jumbograms (RFC 2675) are not
  supported: a zero ``payload_len`` means an empty payload.
- :func:`walk_extension_headers` (also :meth:`Ipv6Packet.header_chain`) walks
  hop-by-hop, routing, fragment and destination options headers and returns an
  :class:`Ipv6HeaderChain`: the upper-layer protocol, its offset in the IPv6
  payload and the parsed headers. Any other next-header value (including 59,
  "no next header", and AH/ESP) ends the walk. It raises :class:`Truncated` when
  a header runs past the payload and :class:`Malformed` when hop-by-hop is not
  first, when there are more than :data:`MAX_EXTENSION_HEADERS` headers, when an
  option TLV overruns its header, when a header holds more than
  :data:`MAX_OPTIONS` options or when more than 7 consecutive padding bytes
  appear (as Linux does), so a crafted chain costs bounded work.
- A fragment header that is not atomic (offset or M flag set, RFC 6946) ends
  the walk: what follows is fragment data, to be walked again after reassembly
  starting from the fragment header's ``next_header``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from .errors import Malformed, Truncated
from .ip import IpProtocol, protocol_name

__all__ = [
    "MAX_EXTENSION_HEADERS",
    "MAX_OPTIONS",
    "Ipv6ExtensionHeader",
    "Ipv6FragmentRepr",
    "Ipv6HeaderChain",
    "Ipv6Option",
    "Ipv6OptionAction",
    "Ipv6OptionsRepr",
    "Ipv6Packet",
    "Ipv6Repr",
    "Ipv6RoutingRepr",
    "walk_extension_headers",
]

MAX_EXTENSION_HEADERS = 8
MAX_OPTIONS = 8  # non-padding options per options header (Linux max_hbh_opts_number)
_MAX_PADDING = 7  # longest legitimate alignment run (RFC 8200 §4.2, Linux ip6_parse_tlv)

# RFC 8200 §3 header: version(4) traffic class(8) flow label(20), payload length,
# next header, hop limit, source address, destination address.
_HEADER = struct.Struct("!IHBB16s16s")
_HEADER_LEN = _HEADER.size  # 40
_PAYLOAD_LEN = 4
_NEXT_HEADER = 6
_HOP_LIMIT = 7
_SRC = slice(8, 24)
_DST = slice(24, 40)
_MAX_PAYLOAD_LEN = 0xFFFF
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

# RFC 8200 §4.5 fragment header: next header, reserved, offset(13)|res(2)|M(1), identification.
_FRAGMENT = struct.Struct("!BBHI")
_FRAGMENT_LEN = _FRAGMENT.size  # 8
_FRAG_MORE = 0x0001
_FRAG_OFFSET_MASK = 0xFFF8  # the 13-bit offset in 8-octet units, already multiplied by 8
_PAD1 = 0  # RFC 8200 §4.2
_PADN = 1

_KNOWN_PROTOCOLS: dict[int, int] = {member.value: member for member in IpProtocol}
_EXTENSION_HEADERS = frozenset(
    (IpProtocol.HOPOPT, IpProtocol.IPV6_ROUTE, IpProtocol.IPV6_FRAG, IpProtocol.IPV6_OPTS)
)


class Ipv6OptionAction(enum.IntEnum):
    """RFC 8200 §4.2: what to do with an option whose type is not recognised."""

    SKIP = 0
    DISCARD = 1
    DISCARD_SEND_ICMP = 2
    DISCARD_SEND_ICMP_UNLESS_MULTICAST = 3


@dataclass(frozen=True, slots=True)
class Ipv6Option:
    """One option TLV; ``offset`` is its type byte's offset in the IPv6 payload.

    Add 40 to ``offset`` for an ICMPv6 Parameter Problem pointer (RFC 4443 §3.4).
    """

    option_type: int
    data: bytes
    offset: int

    @property
    def action_if_unrecognised(self) -> Ipv6OptionAction:
        return Ipv6OptionAction(self.option_type >> 6)

    @property
    def may_change_en_route(self) -> bool:
        return bool(self.option_type & 0x20)


@dataclass(frozen=True, slots=True)
class Ipv6OptionsRepr:
    """A hop-by-hop (RFC 8200 §4.3) or destination options (§4.6) header.

    ``header_type`` is ``IpProtocol.HOPOPT`` or ``IpProtocol.IPV6_OPTS``; Pad1 and
    PadN are left out of ``options``.
    """

    header_type: int
    next_header: int
    options: tuple[Ipv6Option, ...]


@dataclass(frozen=True, slots=True)
class Ipv6RoutingRepr:
    """A routing header (RFC 8200 §4.4); ``data`` is the type-specific part, uninterpreted."""

    next_header: int
    routing_type: int
    segments_left: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Ipv6FragmentRepr:
    """A fragment header (RFC 8200 §4.5); ``frag_offset`` in bytes (a multiple of 8)."""

    next_header: int
    frag_offset: int
    more_frags: bool
    ident: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Ipv6FragmentRepr:
        return _parse_fragment(memoryview(data), 0)

    @property
    def header_len(self) -> int:
        return _FRAGMENT_LEN

    @property
    def is_atomic(self) -> bool:
        """Offset 0 and no more fragments: a whole packet (RFC 6946)."""
        return not self.frag_offset and not self.more_frags

    def emit(self, buf: bytearray | memoryview) -> None:
        """Write the 8-byte header (reserved fields zero) at the start of ``buf``."""
        if self.frag_offset & ~_FRAG_OFFSET_MASK:
            raise ValueError(f"IPv6 fragment offset {self.frag_offset} is not a multiple of 8")
        offset_flags = self.frag_offset | (_FRAG_MORE if self.more_frags else 0)
        _FRAGMENT.pack_into(buf, 0, self.next_header, 0, offset_flags, self.ident)

    def __str__(self) -> str:
        more = ", more" if self.more_frags else ""
        return (
            f"frag id 0x{self.ident:08x}, offset {self.frag_offset}{more},"
            f" next-header {protocol_name(self.next_header)} ({self.next_header})"
        )


Ipv6ExtensionHeader = Ipv6OptionsRepr | Ipv6RoutingRepr | Ipv6FragmentRepr


@dataclass(frozen=True, slots=True)
class Ipv6HeaderChain:
    """Result of :func:`walk_extension_headers`.

    ``protocol`` is the upper-layer protocol (59 when there is none; the
    fragmented protocol after a non-atomic fragment header) and ``offset`` where
    its header (or the fragment data) starts, counted from the IPv6 payload.
    """

    protocol: int
    offset: int
    headers: tuple[Ipv6ExtensionHeader, ...]

    @property
    def fragment(self) -> Ipv6FragmentRepr | None:
        for header in self.headers:
            if isinstance(header, Ipv6FragmentRepr):
                return header
        return None


def walk_extension_headers(
    next_header: int, payload: bytes | bytearray | memoryview
) -> Ipv6HeaderChain:
    """Walk the extension headers of an IPv6 payload whose first header is ``next_header``."""
    if next_header not in _EXTENSION_HEADERS:
        return Ipv6HeaderChain(_KNOWN_PROTOCOLS.get(next_header, next_header), 0, ())
    data = memoryview(payload)
    headers: list[Ipv6ExtensionHeader] = []
    offset = 0
    while next_header in _EXTENSION_HEADERS:
        if len(headers) == MAX_EXTENSION_HEADERS:
            raise Malformed(f"more than {MAX_EXTENSION_HEADERS} IPv6 extension headers")
        header, offset = _parse_extension(next_header, data, offset, first=not headers)
        headers.append(header)
        next_header = header.next_header
        if isinstance(header, Ipv6FragmentRepr) and not header.is_atomic:
            break
    return Ipv6HeaderChain(_KNOWN_PROTOCOLS.get(next_header, next_header), offset, tuple(headers))


def _parse_extension(
    header_type: int, data: memoryview, offset: int, *, first: bool
) -> tuple[Ipv6ExtensionHeader, int]:
    """Parse one extension header at ``offset``; return it and the offset after it."""
    if header_type == IpProtocol.HOPOPT and not first:
        # RFC 8200 §4.1: hop-by-hop options must immediately follow the IPv6 header.
        raise Malformed(f"IPv6 hop-by-hop options header at payload offset {offset}, not first")
    if header_type == IpProtocol.IPV6_FRAG:
        return _parse_fragment(data, offset), offset + _FRAGMENT_LEN
    end = offset + _extension_len(data, offset)
    if header_type == IpProtocol.IPV6_ROUTE:
        return _parse_routing(data, offset, end), end
    return _parse_options(header_type, data, offset, end), end


def _extension_len(data: memoryview, offset: int) -> int:
    """Length of a header with a "Hdr Ext Len" field: 8-octet units after the first 8."""
    if len(data) < offset + 2:
        raise Truncated(f"IPv6 extension header at payload offset {offset}")
    length = (data[offset + 1] + 1) * 8
    if len(data) < offset + length:
        raise Truncated(f"IPv6 extension header of {length} bytes at payload offset {offset}")
    return length


def _parse_fragment(data: memoryview, offset: int) -> Ipv6FragmentRepr:
    if len(data) < offset + _FRAGMENT_LEN:
        raise Truncated(f"IPv6 fragment header at payload offset {offset}")
    next_header, _, offset_flags, ident = _FRAGMENT.unpack_from(data, offset)
    return Ipv6FragmentRepr(
        _KNOWN_PROTOCOLS.get(next_header, next_header),
        offset_flags & _FRAG_OFFSET_MASK,
        bool(offset_flags & _FRAG_MORE),
        ident,
    )


def _parse_routing(data: memoryview, offset: int, end: int) -> Ipv6RoutingRepr:
    # RFC 8200 §4.4: next header, hdr ext len, routing type, segments left, type-specific data.
    next_header = data[offset]
    return Ipv6RoutingRepr(
        _KNOWN_PROTOCOLS.get(next_header, next_header),
        data[offset + 2],
        data[offset + 3],
        bytes(data[offset + 4 : end]),
    )


def _parse_options(header_type: int, data: memoryview, offset: int, end: int) -> Ipv6OptionsRepr:
    """RFC 8200 §4.2 option TLVs: type, data length, data; Pad1 is a lone zero byte."""
    options: list[Ipv6Option] = []
    padding = 0
    position = offset + 2
    while position < end:
        option_type = data[position]
        if option_type == _PAD1:
            option_end = position + 1
        else:
            if position + 2 > end or position + 2 + data[position + 1] > end:
                raise Malformed(f"IPv6 option at payload offset {position} overruns its header")
            option_end = position + 2 + data[position + 1]
        if option_type in (_PAD1, _PADN):
            padding += option_end - position
            if padding > _MAX_PADDING:
                raise Malformed(f"more than {_MAX_PADDING} bytes of IPv6 option padding")
        else:
            if len(options) == MAX_OPTIONS:
                raise Malformed(f"more than {MAX_OPTIONS} options in an IPv6 options header")
            option_data = bytes(data[position + 2 : option_end])
            options.append(Ipv6Option(option_type, option_data, position))
            padding = 0
        position = option_end
    next_header = data[offset]
    return Ipv6OptionsRepr(
        _KNOWN_PROTOCOLS.get(header_type, header_type),
        _KNOWN_PROTOCOLS.get(next_header, next_header),
        tuple(options),
    )


class Ipv6Packet:
    """Zero-copy view of an IPv6 packet (see the module contract)."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf)

    @classmethod
    def checked(cls, buf: bytes | bytearray | memoryview) -> Ipv6Packet:
        packet = cls(buf)
        length = len(packet.buf)
        if length < _HEADER_LEN:
            raise Truncated(f"IPv6 header needs {_HEADER_LEN} bytes, got {length}")
        if packet.version != 6:
            raise Malformed(f"IP version {packet.version} in an IPv6 packet")
        if _HEADER_LEN + packet.payload_len > length:
            raise Truncated(f"IPv6 payload length {packet.payload_len} > {length - _HEADER_LEN}")
        return packet

    @property
    def version(self) -> int:
        return self.buf[0] >> 4

    @property
    def traffic_class(self) -> int:
        return int(_U32.unpack_from(self.buf, 0)[0] >> 20) & 0xFF

    @property
    def flow_label(self) -> int:
        return int(_U32.unpack_from(self.buf, 0)[0] & 0xFFFFF)

    @property
    def header_len(self) -> int:
        return _HEADER_LEN

    @property
    def payload_len(self) -> int:
        return int(_U16.unpack_from(self.buf, _PAYLOAD_LEN)[0])

    @property
    def next_header(self) -> int:
        return self.buf[_NEXT_HEADER]

    @property
    def hop_limit(self) -> int:
        return self.buf[_HOP_LIMIT]

    @hop_limit.setter
    def hop_limit(self, value: int) -> None:
        self.buf[_HOP_LIMIT] = value

    @property
    def src_int(self) -> int:
        """Source address as an integer (for pseudo-header sums without an IPv6Address)."""
        return int.from_bytes(self.buf[_SRC], "big")

    @property
    def src(self) -> IPv6Address:
        return IPv6Address(self.src_int)

    @src.setter
    def src(self, value: IPv6Address) -> None:
        self.buf[_SRC] = value.packed

    @property
    def dst_int(self) -> int:
        return int.from_bytes(self.buf[_DST], "big")

    @property
    def dst(self) -> IPv6Address:
        return IPv6Address(self.dst_int)

    @dst.setter
    def dst(self, value: IPv6Address) -> None:
        self.buf[_DST] = value.packed

    @property
    def payload(self) -> memoryview:
        return self.buf[_HEADER_LEN : _HEADER_LEN + self.payload_len]

    def header_chain(self) -> Ipv6HeaderChain:
        """The extension headers and upper-layer protocol (see :func:`walk_extension_headers`)."""
        return walk_extension_headers(self.next_header, self.payload)


@dataclass(frozen=True, slots=True)
class Ipv6Repr:
    """The fixed IPv6 header; ``traffic_class`` < 256, ``flow_label`` < 2**20."""

    src: IPv6Address
    dst: IPv6Address
    next_header: int
    payload_len: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | Ipv6Packet) -> Ipv6Repr:
        packet = Ipv6Packet.checked(data.buf if isinstance(data, Ipv6Packet) else data)
        first_word, payload_len, next_header, hop_limit, src, dst = _HEADER.unpack_from(packet.buf)
        return cls(
            src=IPv6Address(src),
            dst=IPv6Address(dst),
            next_header=_KNOWN_PROTOCOLS.get(next_header, next_header),
            payload_len=payload_len,
            hop_limit=hop_limit,
            traffic_class=(first_word >> 20) & 0xFF,
            flow_label=first_word & 0xFFFFF,
        )

    @property
    def header_len(self) -> int:
        return _HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return _HEADER_LEN + self.payload_len

    def emit(self, buf: bytearray | memoryview) -> None:
        """Write the 40-byte header at the start of ``buf``."""
        if self.payload_len > _MAX_PAYLOAD_LEN:
            raise ValueError(f"IPv6 payload length {self.payload_len} needs a jumbogram")
        first_word = (6 << 28) | (self.traffic_class << 20) | self.flow_label
        _HEADER.pack_into(
            buf, 0, first_word, self.payload_len, self.next_header, self.hop_limit,
            self.src.packed, self.dst.packed,
        )

    def __str__(self) -> str:
        line = (
            f"IP6 {self.src} > {self.dst}: next-header {protocol_name(self.next_header)}"
            f" ({self.next_header}), payload length {self.payload_len}, hlim {self.hop_limit}"
        )
        if self.traffic_class:
            line += f", class 0x{self.traffic_class:02x}"
        if self.flow_label:
            line += f", flowlabel 0x{self.flow_label:05x}"
        return line
