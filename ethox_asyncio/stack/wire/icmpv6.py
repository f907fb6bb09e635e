"""ICMPv6 (RFC 4443): echo, the four error messages, and dispatch of NDP to ``ndisc``.

Contract:
- :class:`Icmpv6Packet` is a view over one whole ICMPv6 message (the upper-layer
  payload of the IPv6 packet); ``checked()`` guarantees only the 8-octet header.
- The checksum covers the message and the IPv6 pseudo-header (RFC 4443 §2.3,
  RFC 8200 §8.1), so parsing and emitting take the packet's source and
  destination addresses.
- :func:`parse_icmpv6` verifies the checksum when ``caps.verify`` and returns a
  Repr from :data:`Icmpv6Repr`, or for Neighbor Discovery (types 133-136) one of
  ``ndisc.NdiscRepr``. Other types (redirect, MLD, ...) raise
  :class:`Unsupported`. Any input gives a Repr or a ``WireError``. MLDv2
  reports (type 143) have a codec of their own, ``mld.Mldv2Report``, for
  decoding captures; ``parse_icmpv6`` does not call it, so the stack, which does
  not take part in MLD, keeps dropping them as ``Unsupported``.
- Each Repr's ``emit(buf, src, dst, caps)`` writes ``buffer_len`` octets at
  offset 0, with the checksum computed (``FULL``), set to the folded
  pseudo-header sum (``PARTIAL``, for the device to finish) or left 0 (``NONE``).
- Error messages carry ``quoted``: as much of the offending packet as fits
  (RFC 4443 §2.4 (c)). :func:`parse_quoted_ipv6` reads addresses, next header and
  ports from it so the stack can hand the error to the socket that caused it.
- :meth:`Icmpv6Packet.echo_request_to_reply` answers a ping inside the received
  buffer, updating the checksum incrementally (RFC 1624).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from .checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    checksum,
    fold,
    pseudo_header,
    update16,
    verify,
)
from .errors import BadChecksum, Malformed, Truncated, Unsupported
from .icmp_header import HEADER_LEN, IcmpHeaderView
from .ip import IpProtocol, protocol_name

if TYPE_CHECKING:
    from .ndisc import NdiscRepr

__all__ = [
    "HEADER_LEN",
    "MAX_QUOTED_LEN",
    "Icmpv6DestUnreachable",
    "Icmpv6DestUnreachableCode",
    "Icmpv6EchoReply",
    "Icmpv6EchoRequest",
    "Icmpv6Packet",
    "Icmpv6PacketTooBig",
    "Icmpv6ParamProblem",
    "Icmpv6ParamProblemCode",
    "Icmpv6Repr",
    "Icmpv6TimeExceeded",
    "Icmpv6TimeExceededCode",
    "Icmpv6Type",
    "QuotedIpv6Header",
    "parse_icmpv6",
    "parse_quoted_ipv6",
    "pseudo_header_sum",
]

WritableBuffer = bytearray | memoryview

# RFC 4443 §2.1: type(1) code(1) checksum(2), then a 4-octet field whose meaning
# depends on the type, then the message body.
_HEADER = struct.Struct("!BBHI")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_MTU_OFFSET = 4  # RFC 4443 §3.2: Packet Too Big MTU
_POINTER_OFFSET = 4  # RFC 4443 §3.4: Parameter Problem pointer

# RFC 4443 §2.4 (c): an error message must not exceed the minimum IPv6 MTU:
# 1280 - 40 (IPv6 header) - 8 (ICMPv6 header) octets of quote.
MAX_QUOTED_LEN = 1232


class Icmpv6Type(enum.IntEnum):
    """ICMPv6 message types (RFC 4443 §2.1, RFC 4861 §4, RFC 3810 §5); unknown stay ``int``."""

    DEST_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAM_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    MLD_QUERY = 130  # RFC 2710 §3, RFC 3810 §5.1: recognised by name only
    MLD_REPORT = 131  # RFC 2710 §3 (MLDv1): recognised by name only
    MLD_DONE = 132  # RFC 2710 §3: recognised by name only
    ROUTER_SOLICIT = 133
    ROUTER_ADVERT = 134
    NEIGHBOR_SOLICIT = 135
    NEIGHBOR_ADVERT = 136
    REDIRECT = 137  # recognised by name only: parse raises Unsupported
    MLDV2_REPORT = 143  # RFC 3810 §5.2: parse_icmpv6 raises Unsupported; see mld.py


class Icmpv6DestUnreachableCode(enum.IntEnum):
    """Codes of Destination Unreachable (RFC 4443 §3.1)."""

    NO_ROUTE = 0
    ADMIN_PROHIBITED = 1
    BEYOND_SCOPE = 2
    ADDRESS_UNREACHABLE = 3
    PORT_UNREACHABLE = 4
    SOURCE_POLICY_FAILED = 5
    REJECT_ROUTE = 6


class Icmpv6TimeExceededCode(enum.IntEnum):
    """Codes of Time Exceeded (RFC 4443 §3.3)."""

    HOP_LIMIT_EXCEEDED = 0
    REASSEMBLY_TIME_EXCEEDED = 1


class Icmpv6ParamProblemCode(enum.IntEnum):
    """Codes of Parameter Problem (RFC 4443 §3.4)."""

    ERRONEOUS_HEADER_FIELD = 0
    UNRECOGNIZED_NEXT_HEADER = 1
    UNRECOGNIZED_OPTION = 2


def pseudo_header_sum(src: IPv6Address, dst: IPv6Address, length: int) -> int:
    """Unfolded sum of the RFC 8200 §8.1 pseudo-header of an ICMPv6 message."""
    return pseudo_header(int(src), int(dst), IpProtocol.ICMPV6, length)


class Icmpv6Packet(IcmpHeaderView):
    """A view over one ICMPv6 message, for field access and in-place edits."""

    __slots__ = ()

    @classmethod
    def checked(cls, buf: bytes | bytearray | memoryview) -> Icmpv6Packet:
        packet = cls(buf)
        if len(packet.buf) < HEADER_LEN:
            raise Truncated(f"ICMPv6 message of {len(packet.buf)} octets, header needs 8")
        return packet

    @property
    def mtu(self) -> int:
        """The next-hop link MTU of a Packet Too Big (RFC 4443 §3.2)."""
        value: int = _U32.unpack_from(self.buf, _MTU_OFFSET)[0]
        return value

    @property
    def pointer(self) -> int:
        """The octet offset of the faulty field in a Parameter Problem (RFC 4443 §3.4)."""
        value: int = _U32.unpack_from(self.buf, _POINTER_OFFSET)[0]
        return value

    def verify_checksum(self, src: IPv6Address, dst: IPv6Address) -> bool:
        return verify(self.buf, pseudo_header_sum(src, dst, len(self.buf)))

    def fill_checksum(
        self, src: IPv6Address, dst: IPv6Address, tx: TxChecksum = TxChecksum.FULL
    ) -> None:
        """Write the checksum field as ``tx`` says (see the module docstring)."""
        self.checksum = 0
        if tx is TxChecksum.FULL:
            self.checksum = checksum(self.buf, pseudo_header_sum(src, dst, len(self.buf)))
        elif tx is TxChecksum.PARTIAL:
            self.checksum = fold(pseudo_header_sum(src, dst, len(self.buf)))

    def echo_request_to_reply(self) -> None:
        """Turn this echo request into its echo reply, in place (RFC 4443 §4.2).

        The reply repeats identifier, sequence number and data, so only the type
        changes and the checksum is updated incrementally (RFC 1624 eqn. 3).
        The pseudo-header sum is unchanged when the reply's addresses are the
        request's swapped (addition commutes), which is the unicast case. A
        request to a multicast or anycast address is answered from a unicast
        source (RFC 4443 §4.2), which changes the sum: call
        :meth:`fill_checksum` with the reply's addresses after this instead.
        The received checksum must be correct (verified by :func:`parse_icmpv6`
        or by the device); the result is a complete checksum, so send the reply
        without checksum offload.
        """
        if self.msg_type != Icmpv6Type.ECHO_REQUEST:
            raise Malformed(f"not an ICMPv6 echo request: type {self.msg_type}")
        old_word = self.msg_type << 8 | self.code
        self.msg_type = Icmpv6Type.ECHO_REPLY
        new_word = self.msg_type << 8 | self.code
        # The new type word is nonzero, so eqn. 3 cannot hit its all-zero corner case.
        self.checksum = update16(self.checksum, old_word, new_word)


def _emit_message(
    buf: WritableBuffer, msg_type: int, code: int, rest_of_header: int, body: bytes,
    src: IPv6Address, dst: IPv6Address, caps: ChecksumCaps,
) -> None:
    """Write header and body at offset 0 of ``buf``, then the checksum ``caps`` asks for."""
    view = memoryview(buf)[: HEADER_LEN + len(body)]
    _HEADER.pack_into(view, 0, msg_type, code, 0, rest_of_header)
    view[HEADER_LEN:] = body
    Icmpv6Packet(view).fill_checksum(src, dst, caps.tx)


class QuotedIpv6Header(NamedTuple):
    """What an ICMPv6 error tells about the packet that caused it."""

    src_addr: IPv6Address
    dst_addr: IPv6Address
    next_header: int
    src_port: int | None  # only when TCP/UDP directly follows the fixed header
    dst_port: int | None


# RFC 8200 §3: version/traffic class/flow label, payload length, next header,
# hop limit, source, destination.
_QUOTED_IPV6 = struct.Struct("!IHBB16s16s")
_PORTS = struct.Struct("!HH")  # TCP and UDP both start with source and destination port


def parse_quoted_ipv6(quoted: bytes | bytearray | memoryview) -> QuotedIpv6Header | None:
    """Read the IPv6 header (and TCP/UDP ports) quoted by an ICMPv6 error.

    Extension headers are not walked (yet): ports are found only when TCP or UDP
    is the first next header. Returns ``None`` if the quote does not start with
    a whole IPv6 header.
    """
    if len(quoted) < _QUOTED_IPV6.size:
        return None
    version_class_flow, _, next_header, _, src, dst = _QUOTED_IPV6.unpack_from(quoted)
    if version_class_flow >> 28 != 6:
        return None
    src_port = dst_port = None
    if (
        next_header in (IpProtocol.TCP, IpProtocol.UDP)
        and len(quoted) >= _QUOTED_IPV6.size + _PORTS.size
    ):
        src_port, dst_port = _PORTS.unpack_from(quoted, _QUOTED_IPV6.size)
    return QuotedIpv6Header(IPv6Address(src), IPv6Address(dst), next_header, src_port, dst_port)


class _QuotesIpv6:
    """Mixin for the error Reprs, which all carry a ``quoted`` packet."""

    __slots__ = ()
    quoted: bytes

    def quoted_ipv6_header(self) -> QuotedIpv6Header | None:
        return parse_quoted_ipv6(self.quoted)


@dataclass(frozen=True, slots=True)
class _Icmpv6Echo:
    """RFC 4443 §4.1/§4.2 Echo Request / Echo Reply; the two differ only in type."""

    ident: int
    seq_no: int
    data: bytes = b""

    _MSG_TYPE: ClassVar[Icmpv6Type]
    _NAME: ClassVar[str]

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.data)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        rest_of_header = self.ident << 16 | self.seq_no
        _emit_message(buf, self._MSG_TYPE, 0, rest_of_header, self.data, src, dst, caps)

    def __str__(self) -> str:
        return (
            f"ICMP6, {self._NAME}, id {self.ident}, seq {self.seq_no}, length {self.buffer_len}"
        )


@dataclass(frozen=True, slots=True)
class Icmpv6EchoRequest(_Icmpv6Echo):
    """Echo Request (type 128): a ping."""

    _MSG_TYPE = Icmpv6Type.ECHO_REQUEST
    _NAME = "echo request"


@dataclass(frozen=True, slots=True)
class Icmpv6EchoReply(_Icmpv6Echo):
    """Echo Reply (type 129): the answer to a ping."""

    _MSG_TYPE = Icmpv6Type.ECHO_REPLY
    _NAME = "echo reply"


# tcpdump's wording (print-icmp6.c), keyed by code.
_UNREACHABLE_NAMES: dict[int, str] = {
    Icmpv6DestUnreachableCode.NO_ROUTE: "unreachable route",
    Icmpv6DestUnreachableCode.ADMIN_PROHIBITED: "unreachable prohibited",
    Icmpv6DestUnreachableCode.BEYOND_SCOPE: "beyond scope",
    Icmpv6DestUnreachableCode.ADDRESS_UNREACHABLE: "unreachable address",
    Icmpv6DestUnreachableCode.PORT_UNREACHABLE: "unreachable port",
    Icmpv6DestUnreachableCode.SOURCE_POLICY_FAILED: "source address failed policy",
    Icmpv6DestUnreachableCode.REJECT_ROUTE: "reject route",
}


@dataclass(frozen=True, slots=True)
class Icmpv6DestUnreachable(_QuotesIpv6):
    """Destination Unreachable (type 1, RFC 4443 §3.1)."""

    code: Icmpv6DestUnreachableCode | int
    quoted: bytes = b""

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        # RFC 4443 §3.1: the 4 octets after the checksum are unused, sent as zero.
        _emit_message(
            buf, Icmpv6Type.DEST_UNREACHABLE, self.code, 0, self.quoted, src, dst, caps
        )

    def __str__(self) -> str:
        text = _UNREACHABLE_NAMES.get(self.code, f"unreachable code {int(self.code)}")
        header = self.quoted_ipv6_header()
        if header is not None:
            if self.code == Icmpv6DestUnreachableCode.PORT_UNREACHABLE:
                port = header.dst_port if header.dst_port is not None else "?"
                text += f", {header.dst_addr} {protocol_name(header.next_header)} port {port}"
            else:
                text += f" {header.dst_addr}"
        return f"ICMP6, destination unreachable, {text}, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class Icmpv6PacketTooBig(_QuotesIpv6):
    """Packet Too Big (type 2, RFC 4443 §3.2): the next hop's MTU, for path MTU discovery."""

    mtu: int
    quoted: bytes = b""

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        _emit_message(buf, Icmpv6Type.PACKET_TOO_BIG, 0, self.mtu, self.quoted, src, dst, caps)

    def __str__(self) -> str:
        return f"ICMP6, packet too big, mtu {self.mtu}, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class Icmpv6TimeExceeded(_QuotesIpv6):
    """Time Exceeded (type 3, RFC 4443 §3.3): hop limit reached zero, or reassembly timed out."""

    code: Icmpv6TimeExceededCode | int
    quoted: bytes = b""

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        # RFC 4443 §3.3: the 4 octets after the checksum are unused, sent as zero.
        _emit_message(buf, Icmpv6Type.TIME_EXCEEDED, self.code, 0, self.quoted, src, dst, caps)

    def __str__(self) -> str:
        if self.code == Icmpv6TimeExceededCode.HOP_LIMIT_EXCEEDED:
            text = "time exceeded in-transit"
            header = self.quoted_ipv6_header()
            if header is not None:
                text += f" for {header.dst_addr}"
        elif self.code == Icmpv6TimeExceededCode.REASSEMBLY_TIME_EXCEEDED:
            text = "ip6 reassembly time exceeded"
        else:
            text = f"time exceeded, code {int(self.code)}"
        return f"ICMP6, {text}, length {self.buffer_len}"


_PARAM_PROBLEM_NAMES: dict[int, str] = {
    Icmpv6ParamProblemCode.ERRONEOUS_HEADER_FIELD: "erroneous header field",
    Icmpv6ParamProblemCode.UNRECOGNIZED_NEXT_HEADER: "unrecognized next header",
    Icmpv6ParamProblemCode.UNRECOGNIZED_OPTION: "unrecognized option",
}


@dataclass(frozen=True, slots=True)
class Icmpv6ParamProblem(_QuotesIpv6):
    """Parameter Problem (type 4, RFC 4443 §3.4): ``pointer`` is the offset of the bad octet."""

    code: Icmpv6ParamProblemCode | int
    pointer: int
    quoted: bytes = b""

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    @property
    def buffer_len(self) -> int:
        return HEADER_LEN + len(self.quoted)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        _emit_message(
            buf, Icmpv6Type.PARAM_PROBLEM, self.code, self.pointer, self.quoted, src, dst, caps
        )

    def __str__(self) -> str:
        text = _PARAM_PROBLEM_NAMES.get(self.code, f"code {int(self.code)}")
        return f"ICMP6, parameter problem, {text} - octet {self.pointer}, length {self.buffer_len}"


Icmpv6Repr = (
    Icmpv6EchoRequest
    | Icmpv6EchoReply
    | Icmpv6DestUnreachable
    | Icmpv6PacketTooBig
    | Icmpv6TimeExceeded
    | Icmpv6ParamProblem
)

_NDISC_TYPES = frozenset(
    {
        Icmpv6Type.ROUTER_SOLICIT,
        Icmpv6Type.ROUTER_ADVERT,
        Icmpv6Type.NEIGHBOR_SOLICIT,
        Icmpv6Type.NEIGHBOR_ADVERT,
    }
)


def _dest_unreachable_code(value: int) -> Icmpv6DestUnreachableCode | int:
    try:
        return Icmpv6DestUnreachableCode(value)
    except ValueError:
        return value


def _time_exceeded_code(value: int) -> Icmpv6TimeExceededCode | int:
    try:
        return Icmpv6TimeExceededCode(value)
    except ValueError:
        return value


def _param_problem_code(value: int) -> Icmpv6ParamProblemCode | int:
    try:
        return Icmpv6ParamProblemCode(value)
    except ValueError:
        return value


def parse_icmpv6(
    data: bytes | bytearray | memoryview | Icmpv6Packet,
    src: IPv6Address,
    dst: IPv6Address,
    caps: ChecksumCaps = CHECKSUM_SOFTWARE,
) -> Icmpv6Repr | NdiscRepr:
    """Parse one ICMPv6 message sent from ``src`` to ``dst`` into its Repr.

    Echo codes other than 0 are accepted and dropped; data and quotes are copied.
    """
    packet = Icmpv6Packet.checked(data.buf if isinstance(data, Icmpv6Packet) else data)
    if caps.verify and not packet.verify_checksum(src, dst):
        raise BadChecksum("ICMPv6 checksum")
    msg_type = packet.msg_type
    if msg_type in _NDISC_TYPES:
        # ndisc builds on this module's view and types; importing it at the top
        # would be circular.
        from .ndisc import parse_ndisc

        return parse_ndisc(packet, src, dst)
    body = bytes(packet.payload)
    if msg_type == Icmpv6Type.ECHO_REQUEST:
        return Icmpv6EchoRequest(packet.echo_ident, packet.echo_seq_no, body)
    if msg_type == Icmpv6Type.ECHO_REPLY:
        return Icmpv6EchoReply(packet.echo_ident, packet.echo_seq_no, body)
    if msg_type == Icmpv6Type.DEST_UNREACHABLE:
        return Icmpv6DestUnreachable(_dest_unreachable_code(packet.code), body)
    if msg_type == Icmpv6Type.PACKET_TOO_BIG:
        return Icmpv6PacketTooBig(packet.mtu, body)
    if msg_type == Icmpv6Type.TIME_EXCEEDED:
        return Icmpv6TimeExceeded(_time_exceeded_code(packet.code), body)
    if msg_type == Icmpv6Type.PARAM_PROBLEM:
        return Icmpv6ParamProblem(_param_problem_code(packet.code), packet.pointer, body)
    raise Unsupported(f"ICMPv6 type {msg_type}")
