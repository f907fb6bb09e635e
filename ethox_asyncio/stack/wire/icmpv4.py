"""ICMPv4 (RFC 792): echo, destination unreachable, time exceeded, parameter problem.

Contract:
- :class:`Icmpv4Packet` is a view over one whole ICMP message (the IPv4 payload);
  ``checked()`` guarantees only that the 8-octet header is present.
- :func:`parse_icmpv4` verifies the checksum when ``caps.verify`` (RFC 792: the
  ones' complement sum of the whole message; ICMPv4 has no pseudo-header) and
  returns one of the Reprs in :data:`Icmpv4Repr`. Other types (redirect,
  timestamp, ...) raise :class:`Unsupported`. Any input gives a Repr or a
  ``WireError``.
- Each Repr's ``emit(buf, caps)`` writes ``buffer_len`` octets at offset 0. The
  checksum is computed for ``TxChecksum.FULL`` and left 0 otherwise: with no
  pseudo-header, the "pseudo-header sum" that ``PARTIAL`` stores is 0.
- Error messages carry ``quoted``, the start of the offending datagram: its IPv4
  header and at least 8 payload octets (RFC 792, RFC 1122 §3.2.2).
  :func:`parse_quoted_ipv4` reads addresses, protocol and ports from it so the
  stack can hand the error to the socket that caused it.
- :meth:`Icmpv4Packet.echo_request_to_reply` answers a ping inside the received
  buffer, updating the checksum incrementally (RFC 1624).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import ClassVar, NamedTuple

from .checksum import CHECKSUM_SOFTWARE, ChecksumCaps, TxChecksum, checksum, update16, verify
from .errors import BadChecksum, Malformed, Truncated, Unsupported
from .icmp_header import HEADER_LEN, IcmpHeaderView
from .ip import IpProtocol, protocol_name

__all__ = [
    "HEADER_LEN",
    "MAX_QUOTED_LEN",
    "Icmpv4DestUnreachable",
    "Icmpv4DestUnreachableCode",
    "Icmpv4EchoReply",
    "Icmpv4EchoRequest",
    "Icmpv4Packet",
    "Icmpv4ParamProblem",
    "Icmpv4Repr",
    "Icmpv4TimeExceeded",
    "Icmpv4TimeExceededCode",
    "Icmpv4Type",
    "QuotedIpv4Header",
    "parse_icmpv4",
    "parse_quoted_ipv4",
]

WritableBuffer = bytearray | memoryview

# RFC 792: type(1) code(1) checksum(2), then 4 octets whose meaning depends on
# the type ("rest of header"), then the data.
_HEADER = struct.Struct("!BBHI")
_U16 = struct.Struct("!H")
_POINTER_OFFSET = 4  # RFC 792 Parameter Problem: pointer
_NEXT_HOP_MTU_OFFSET = 6  # RFC 1191 §4: low 16 bits of the "unused" field

# RFC 1812 §4.3.2.3: an ICMP error should quote as much of the original
# datagram as fits in 576 octets: 576 - 20 (IPv4 header) - 8 (ICMP header).
MAX_QUOTED_LEN = 548


class Icmpv4Type(enum.IntEnum):
    """ICMPv4 message types (RFC 792); unknown types stay ``int``."""

    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    REDIRECT = 5  # recognised by name only: parse raises Unsupported
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12


class Icmpv4DestUnreachableCode(enum.IntEnum):
    """Codes of Destination Unreachable (RFC 792; 4 from RFC 1191, 6-15 from RFC 1812 §5.2.7.1)."""

    NET_UNREACHABLE = 0
    HOST_UNREACHABLE = 1
    PROTOCOL_UNREACHABLE = 2
    PORT_UNREACHABLE = 3
    FRAG_NEEDED = 4  # "fragmentation needed and DF set"; carries the next-hop MTU
    SOURCE_ROUTE_FAILED = 5
    DEST_NET_UNKNOWN = 6
    DEST_HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_UNREACHABLE_FOR_TOS = 11
    HOST_UNREACHABLE_FOR_TOS = 12
    ADMIN_PROHIBITED = 13
    HOST_PRECEDENCE_VIOLATION = 14
    PRECEDENCE_CUTOFF = 15


class Icmpv4TimeExceededCode(enum.IntEnum):
    """Codes of Time Exceeded (RFC 792)."""

    TTL_EXCEEDED = 0  # "time to live exceeded in transit"
    REASSEMBLY_TIME_EXCEEDED = 1  # "fragment reassembly time exceeded"


class Icmpv4Packet(IcmpHeaderView):
    """A view over one ICMPv4 message, for field access and in-place edits."""

    __slots__ = ()

    @classmethod
    def checked(cls, buf: bytes | bytearray | memoryview) -> Icmpv4Packet:
        packet = cls(buf)
        if len(packet.buf) < HEADER_LEN:
            raise Truncated(f"ICMPv4 message of {len(packet.buf)} octets, header needs 8")
        return packet

    @property
    def next_hop_mtu(self) -> int:
        """The MTU of a "fragmentation needed" message (RFC 1191 §4); 0 from old routers."""
        value: int = _U16.unpack_from(self.buf, _NEXT_HOP_MTU_OFFSET)[0]
        return value

    @next_hop_mtu.setter
    def next_hop_mtu(self, value: int) -> None:
        _U16.pack_into(self.buf, _NEXT_HOP_MTU_OFFSET, value)

    @property
    def pointer(self) -> int:
        """The octet offset of the faulty field in a Parameter Problem (RFC 792)."""
        return self.buf[_POINTER_OFFSET]

    def verify_checksum(self) -> bool:
        return verify(self.buf)

    def fill_checksum(self, tx: TxChecksum = TxChecksum.FULL) -> None:
        """Write the checksum over the whole message, or 0 unless ``tx`` is FULL."""
        self.checksum = 0
        if tx is TxChecksum.FULL:
            self.checksum = checksum(self.buf)

    def echo_request_to_reply(self) -> None:
        """Turn this echo request into its echo reply, in place (RFC 792 Echo).

        The reply repeats the request's identifier, sequence number and data
        (RFC 1122 §3.2.2.6), so only the type changes and the checksum is
        updated incrementally (RFC 1624 eqn. 3) instead of summing the data
        again. The received checksum must be correct (verified by
        :func:`parse_icmpv4` or by the device); the result is then a complete
        checksum, so send the reply without checksum offload. Swapping the IPv4
        addresses is the caller's job.
        """
        if self.msg_type != Icmpv4Type.ECHO_REQUEST:
            raise Malformed(f"not an ICMPv4 echo request: type {self.msg_type}")
        old_word = self.msg_type << 8 | self.code
        self.msg_type = Icmpv4Type.ECHO_REPLY
        new_word = self.msg_type << 8 | self.code
        # update16 returns -0 as 0xFFFF, so an all-zero reply still verifies.
        self.checksum = update16(self.checksum, old_word, new_word)


def _emit_message(
    buf: WritableBuffer, msg_type: int, code: int, rest_of_header: int, body: bytes,
    caps: ChecksumCaps,
) -> None:
    """Write header and body at offset 0 of ``buf``, then the checksum ``caps`` asks for."""
    view = memoryview(buf)[: HEADER_LEN + len(body)]
    _HEADER.pack_into(view, 0, msg_type, code, 0, rest_of_header)
    view[HEADER_LEN:] = body
    Icmpv4Packet(view).fill_checksum(caps.tx)


class QuotedIpv4Header(NamedTuple):
    """What an ICMP error tells about the datagram that caused it."""

    src_addr: IPv4Address
    dst_addr: IPv4Address
    protocol: int
    src_port: int | None  # TCP/UDP only, and only when the quote reaches the ports
    dst_port: int | None


# RFC 791 §3.1: version/IHL, TOS, total length, identification, flags/fragment
# offset, TTL, protocol, header checksum, source, destination.
_QUOTED_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_PORTS = struct.Struct("!HH")  # TCP and UDP both start with source and destination port
_FRAGMENT_OFFSET_MASK = 0x1FFF


def parse_quoted_ipv4(quoted: bytes | bytearray | memoryview) -> QuotedIpv4Header | None:
    """Read the IPv4 header (and TCP/UDP ports) quoted by an ICMP error.

    Returns ``None`` if the quote does not start with a whole IPv4 header: the
    ICMP message is still valid, it just cannot be matched to a socket.
    """
    if len(quoted) < _QUOTED_IPV4.size:
        return None
    version_ihl, _, _, _, flags_fragment, _, protocol, _, src, dst = _QUOTED_IPV4.unpack_from(
        quoted
    )
    header_len = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header_len < _QUOTED_IPV4.size or len(quoted) < header_len:
        return None
    src_port = dst_port = None
    first_fragment = flags_fragment & _FRAGMENT_OFFSET_MASK == 0
    if (
        protocol in (IpProtocol.TCP, IpProtocol.UDP)
        and first_fragment
        and len(quoted) >= header_len + _PORTS.size
    ):
        src_port, dst_port = _PORTS.unpack_from(quoted, header_len)
    return QuotedIpv4Header(IPv4Address(src), IPv4Address(dst), protocol, src_port, dst_port)


class _QuotesIpv4:
    """Mixin for the error Reprs, which all carry a ``quoted`` datagram."""

    __slots__ = ()
    quoted: bytes

    def quoted_ipv4_header(self) -> QuotedIpv4Header | None:
        return parse_quoted_ipv4(self.quoted)


@dataclass(frozen=True, slots=True)
class _Icmpv4Echo:
    """RFC 792 Echo / Echo Reply; the two differ only in type."""

    ident: int
    seq_no: int
    data: bytes = b""

    _MSG_TYPE: ClassVar[Icmpv4Type]
    _NAME: ClassVar[str]

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.data)

    def emit(self, buf: WritableBuffer, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> None:
        rest_of_header = self.ident << 16 | self.seq_no
        _emit_message(buf, self._MSG_TYPE, 0, rest_of_header, self.data, caps)

    def __str__(self) -> str:
        return (
            f"ICMP {self._NAME}, id {self.ident}, seq {self.seq_no}, length {self.buffer_len}"
        )


@dataclass(frozen=True, slots=True)
class Icmpv4EchoRequest(_Icmpv4Echo):
    """Echo (type 8): a ping."""

    _MSG_TYPE = Icmpv4Type.ECHO_REQUEST
    _NAME = "echo request"


@dataclass(frozen=True, slots=True)
class Icmpv4EchoReply(_Icmpv4Echo):
    """Echo Reply (type 0): the answer to a ping."""

    _MSG_TYPE = Icmpv4Type.ECHO_REPLY
    _NAME = "echo reply"


# tcpdump's wording (print-icmp.c), keyed by code; {dst} is the quoted destination.
_UNREACHABLE_FORMATS: dict[int, str] = {
    Icmpv4DestUnreachableCode.NET_UNREACHABLE: "net {dst} unreachable",
    Icmpv4DestUnreachableCode.HOST_UNREACHABLE: "host {dst} unreachable",
    Icmpv4DestUnreachableCode.PROTOCOL_UNREACHABLE: "{dst} protocol {protocol} unreachable",
    Icmpv4DestUnreachableCode.PORT_UNREACHABLE: "{dst} {protocol} port {port} unreachable",
    Icmpv4DestUnreachableCode.FRAG_NEEDED: "{dst} unreachable - need to frag (mtu {mtu})",
    Icmpv4DestUnreachableCode.SOURCE_ROUTE_FAILED: "{dst} unreachable - source route failed",
    Icmpv4DestUnreachableCode.ADMIN_PROHIBITED: "{dst} unreachable - admin prohibited filter",
}


@dataclass(frozen=True, slots=True)
class Icmpv4DestUnreachable(_QuotesIpv4):
    """Destination Unreachable (type 3).

    ``next_hop_mtu`` is meaningful only with ``FRAG_NEEDED`` (RFC 1191 §4,
    path MTU discovery); it is 0 otherwise and from pre-RFC 1191 routers.
    """

    code: Icmpv4DestUnreachableCode | int
    quoted: bytes = b""
    next_hop_mtu: int = 0

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(self, buf: WritableBuffer, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> None:
        # RFC 1191 §4: the high 16 bits of the unused field stay zero.
        _emit_message(
            buf, Icmpv4Type.DEST_UNREACHABLE, self.code, self.next_hop_mtu, self.quoted, caps
        )

    def __str__(self) -> str:
        header = self.quoted_ipv4_header()
        fmt = _UNREACHABLE_FORMATS.get(self.code)
        if header is None or fmt is None:
            text = f"unreachable, code {int(self.code)}"
            if header is not None:
                text = f"{header.dst_addr} {text}"
        else:
            text = fmt.format(
                dst=header.dst_addr,
                protocol=protocol_name(header.protocol),
                port=header.dst_port if header.dst_port is not None else "?",
                mtu=self.next_hop_mtu,
            )
        return f"ICMP {text}, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class Icmpv4TimeExceeded(_QuotesIpv4):
    """Time Exceeded (type 11): TTL reached zero, or reassembly timed out."""

    code: Icmpv4TimeExceededCode | int
    quoted: bytes = b""

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(self, buf: WritableBuffer, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> None:
        _emit_message(buf, Icmpv4Type.TIME_EXCEEDED, self.code, 0, self.quoted, caps)

    def __str__(self) -> str:
        if self.code == Icmpv4TimeExceededCode.TTL_EXCEEDED:
            text = "time exceeded in-transit"
        elif self.code == Icmpv4TimeExceededCode.REASSEMBLY_TIME_EXCEEDED:
            text = "ip reassembly time exceeded"
        else:
            text = f"time exceeded, code {int(self.code)}"
        return f"ICMP {text}, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class Icmpv4ParamProblem(_QuotesIpv4):
    """Parameter Problem (type 12): ``pointer`` is the offset of the bad octet."""

    pointer: int
    quoted: bytes = b""
    code: int = 0

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(self, buf: WritableBuffer, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> None:
        # RFC 792: the pointer is the first octet of the rest of the header.
        _emit_message(
            buf, Icmpv4Type.PARAMETER_PROBLEM, self.code, self.pointer << 24, self.quoted, caps
        )

    def __str__(self) -> str:
        return f"ICMP parameter problem - octet {self.pointer}, length {self.buffer_len}"


Icmpv4Repr = (
    Icmpv4EchoRequest
    | Icmpv4EchoReply
    | Icmpv4DestUnreachable
    | Icmpv4TimeExceeded
    | Icmpv4ParamProblem
)


def _dest_unreachable_code(value: int) -> Icmpv4DestUnreachableCode | int:
    try:
        return Icmpv4DestUnreachableCode(value)
    except ValueError:
        return value


def _time_exceeded_code(value: int) -> Icmpv4TimeExceededCode | int:
    try:
        return Icmpv4TimeExceededCode(value)
    except ValueError:
        return value


def parse_icmpv4(
    data: bytes | bytearray | memoryview | Icmpv4Packet, caps: ChecksumCaps = CHECKSUM_SOFTWARE
) -> Icmpv4Repr:
    """Parse one ICMPv4 message (the whole IPv4 payload) into its Repr.

    Echo codes other than 0 are accepted and dropped; data and quotes are copied.
    """
    packet = Icmpv4Packet.checked(data.buf if isinstance(data, Icmpv4Packet) else data)
    if caps.verify and not packet.verify_checksum():
        raise BadChecksum("ICMPv4 checksum")
    msg_type = packet.msg_type
    body = bytes(packet.payload)
    if msg_type == Icmpv4Type.ECHO_REQUEST:
        return Icmpv4EchoRequest(packet.echo_ident, packet.echo_seq_no, body)
    if msg_type == Icmpv4Type.ECHO_REPLY:
        return Icmpv4EchoReply(packet.echo_ident, packet.echo_seq_no, body)
    if msg_type == Icmpv4Type.DEST_UNREACHABLE:
        code = _dest_unreachable_code(packet.code)
        return Icmpv4DestUnreachable(code, body, packet.next_hop_mtu)
    if msg_type == Icmpv4Type.TIME_EXCEEDED:
        return Icmpv4TimeExceeded(_time_exceeded_code(packet.code), body)
    if msg_type == Icmpv4Type.PARAMETER_PROBLEM:
        return Icmpv4ParamProblem(packet.pointer, body, packet.code)
    raise Unsupported(f"ICMPv4 type {msg_type}")
