"""TCP segment headers and options (RFC 9293 §3.1, RFC 7323, RFC 2018).

Contract:
- The TCP header has no length field: the segment is exactly the buffer given,
  so callers pass the IP payload (IPv4 total length / IPv6 payload length
  already applied), and the pseudo-header length is ``len(data)``.
- :class:`TcpSegment` is a view over a ``memoryview``; :meth:`TcpSegment.checked`
  raises :class:`Malformed` for a data offset below 5 and :class:`Truncated`
  when the buffer is shorter than 20 bytes or than the data offset says.
- :meth:`TcpRepr.parse` checks lengths, then (if ``caps.verify``) the checksum
  over the IPv4 or IPv6 pseudo-header chosen by the address type (raises
  :class:`BadChecksum`), then the options. Options: EOL ends the list, NOP is
  skipped, MSS / window scale / SACK-permitted / SACK / timestamps are decoded,
  unknown kinds are skipped by their length. A length byte below 2, an option
  running past the header, a known kind with the wrong length or a SACK option
  with other than 1..4 blocks is :class:`Malformed`. When a kind repeats, the
  last occurrence wins.
- Window scale: :attr:`TcpRepr.window_scale` keeps the value received;
  :attr:`TcpRepr.window_shift` is the one to use, clamped to 14 (RFC 7323 §2.3).
- Sequence and acknowledgment numbers are raw u32 ints (no modular arithmetic
  here). ``TcpRepr.ack`` is ``None`` exactly when the ACK flag is clear. The
  urgent pointer is kept as received whether or not URG is set.
- :meth:`TcpRepr.emit` writes header and options in front of a payload already
  at ``buf[header_len:buffer_len]`` (zero-copy) and computes the checksum over
  header and payload. Options are laid out as Linux does, each group padded to a
  4-byte boundary with NOPs; options needing more than 40 bytes raise
  ``ValueError`` (our own bug, never remote input).
- :func:`parse_tcp_fast` decodes the fixed header with one ``struct`` call for
  the established-data path; it skips options and checksum.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
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

__all__ = [
    "HEADER_LEN",
    "MAX_HEADER_LEN",
    "MAX_WINDOW_SHIFT",
    "TcpFlags",
    "TcpOption",
    "TcpRepr",
    "TcpSegment",
    "iter_options",
    "parse_tcp_fast",
]

# RFC 9293 §3.1 fixed header: ports, sequence, acknowledgment, data offset +
# reserved, control bits, window, checksum, urgent pointer.
_HEADER = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
HEADER_LEN = 20
MAX_HEADER_LEN = 60  # data offset is 4 bits of 32-bit words
_MAX_OPTIONS_LEN = MAX_HEADER_LEN - HEADER_LEN
_SRC_PORT = 0
_DST_PORT = 2
_SEQ = 4
_ACK = 8
_DATA_OFFSET = 12
_FLAGS = 13
_WINDOW = 14
_CHECKSUM = 16
_URGENT = 18
MAX_WINDOW_SHIFT = 14  # RFC 7323 §2.3

_Buffer = bytes | bytearray | memoryview
_WritableBuffer = bytearray | memoryview
_Address = IPv4Address | IPv6Address
_PROTOCOL = int(IpProtocol.TCP)


class TcpFlags(enum.IntFlag):
    """Control bits of byte 13 (RFC 9293 §3.1; ECE/CWR from RFC 3168 §6.1)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# IntFlag construction and operators are slow: the hot paths look flags up by
# byte value and test bits on plain ints.
_ACK_BIT = int(TcpFlags.ACK)
_FLAGS_BY_BYTE = tuple(TcpFlags(value) for value in range(256))
# tcpdump's letters, in tcpdump's order.
_FLAG_LETTERS = (
    (TcpFlags.FIN, "F"),
    (TcpFlags.SYN, "S"),
    (TcpFlags.RST, "R"),
    (TcpFlags.PSH, "P"),
    (TcpFlags.ACK, "."),
    (TcpFlags.URG, "U"),
    (TcpFlags.ECE, "E"),
    (TcpFlags.CWR, "W"),
)


class TcpOption(enum.IntEnum):
    """Option kinds this codec understands (IANA "TCP Option Kind Numbers")."""

    EOL = 0  # RFC 9293 §3.2
    NOP = 1  # RFC 9293 §3.2
    MSS = 2  # RFC 9293 §3.2, §3.7.1
    WINDOW_SCALE = 3  # RFC 7323 §2.2
    SACK_PERMITTED = 4  # RFC 2018 §2
    SACK = 5  # RFC 2018 §3
    TIMESTAMPS = 8  # RFC 7323 §3.2


# Total option length (kind and length bytes included) of the fixed-size kinds.
_FIXED_OPTION_LEN: dict[int, int] = {
    int(TcpOption.MSS): 4,
    int(TcpOption.WINDOW_SCALE): 3,
    int(TcpOption.SACK_PERMITTED): 2,
    int(TcpOption.TIMESTAMPS): 10,
}
# The option kinds iter_options() tests, as plain ints (an IntEnum member costs a
# class attribute lookup and an enum comparison per option).
_EOL = int(TcpOption.EOL)
_NOP = int(TcpOption.NOP)
_SACK = int(TcpOption.SACK)
_MAX_SACK_BLOCKS = 4  # RFC 2018 §3: 2 + 8n bytes must fit in 40

_MSS_OPTION = struct.Struct("!BBH")
_WINDOW_SCALE_OPTION = struct.Struct("!BBBB")  # NOP, kind, length, shift
# NOP NOP (or SACK-permitted), kind, length, tsval, tsecr
_TIMESTAMPS_OPTION = struct.Struct("!BBBBII")
_SACK_OPTION_HEAD = struct.Struct("!BBBB")  # NOP, NOP, kind, length
_SACK_BLOCK = struct.Struct("!II")
_TIMESTAMP_VALUES = struct.Struct("!II")
# NOP NOP TS: what an established Linux connection sends on every segment.
_ALIGNED_TIMESTAMPS_PREFIX = bytes((TcpOption.NOP, TcpOption.NOP, TcpOption.TIMESTAMPS, 10))
_NOP_NOP_SACK_PERMITTED = bytes(
    (TcpOption.NOP, TcpOption.NOP, TcpOption.SACK_PERMITTED, 2)
)


def iter_options(options: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield ``(kind, start, end)`` per option up to EOL (RFC 9293 §3.2), NOPs included.

    ``options[start:end]`` is the whole option. Raises :class:`Malformed` on a
    bad length; remote bytes cannot make it raise anything else.
    """
    size = len(options)
    offset = 0
    while offset < size:
        kind = options[offset]
        if kind == _EOL:
            return  # the rest is padding
        if kind == _NOP:
            yield kind, offset, offset + 1
            offset += 1
            continue
        if offset + 1 >= size:
            raise Malformed(f"TCP option kind {kind} has no length byte")
        length = options[offset + 1]
        if length < 2:
            raise Malformed(f"TCP option kind {kind} has length {length} < 2")
        end = offset + length
        if end > size:
            raise Malformed(f"TCP option kind {kind} of length {length} runs past the header")
        expected = _FIXED_OPTION_LEN.get(kind)
        if expected is not None and length != expected:
            raise Malformed(f"TCP option kind {kind} has length {length}, expected {expected}")
        if kind == _SACK and (
            (length - 2) % 8 or not 1 <= (length - 2) // 8 <= _MAX_SACK_BLOCKS
        ):
            raise Malformed(f"TCP SACK option length {length} is not 2 + 8n with n in 1..4")
        yield kind, offset, end
        offset = end


def _describe_options(options: bytes) -> str:
    """tcpdump's option list, e.g. ``mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7``,
    for options laid out by :meth:`TcpRepr._encode_options` (no EOL, no unknown kinds)."""
    words = []
    for kind, start, end in iter_options(options):
        if kind == TcpOption.NOP:
            words.append("nop")
        elif kind == TcpOption.MSS:
            words.append(f"mss {_U16.unpack_from(options, start + 2)[0]}")
        elif kind == TcpOption.WINDOW_SCALE:
            words.append(f"wscale {options[start + 2]}")
        elif kind == TcpOption.SACK_PERMITTED:
            words.append("sackOK")
        elif kind == TcpOption.TIMESTAMPS:
            tsval, tsecr = _TIMESTAMP_VALUES.unpack_from(options, start + 2)
            words.append(f"TS val {tsval} ecr {tsecr}")
        elif kind == TcpOption.SACK:
            blocks = "".join(
                f"{{{left}:{right}}}"
                for left, right in _SACK_BLOCK.iter_unpack(options[start + 2 : end])
            )
            words.append(f"sack {(end - start - 2) // 8} {blocks}")
    return ",".join(words)


def _flag_letters(flags: int) -> str:
    return "".join(letter for flag, letter in _FLAG_LETTERS if flags & flag) or "none"


def parse_tcp_fast(data: _Buffer) -> tuple[int, int, int, int, int, int, int]:
    """``(src_port, dst_port, seq, ack, flags, window, header_len)`` with one unpack.

    For the established-data hot path: checks lengths like
    :meth:`TcpSegment.checked` but neither the checksum nor the options
    (``data[20:header_len]``); ``flags`` is the raw byte and ``ack`` is returned
    even when the ACK flag is clear.
    """
    if len(data) < HEADER_LEN:
        raise Truncated(f"TCP header needs {HEADER_LEN} bytes, got {len(data)}")
    src_port, dst_port, seq, ack, offset_byte, flags, window, _, _ = _HEADER.unpack_from(data)
    header_len = (offset_byte >> 4) * 4
    if header_len < HEADER_LEN:
        raise Malformed(f"TCP data offset {offset_byte >> 4} is below 5")
    if header_len > len(data):
        raise Truncated(f"TCP header of {header_len} bytes exceeds the {len(data)}-byte buffer")
    return src_port, dst_port, seq, ack, flags, window, header_len


class TcpSegment:
    """Zero-copy view of a TCP segment; ``__init__`` does no checks, use :meth:`checked`."""

    __slots__ = ("buf",)

    def __init__(self, buf: _Buffer) -> None:
        self.buf = memoryview(buf)

    @classmethod
    def checked(cls, buf: _Buffer) -> TcpSegment:
        segment = cls(buf)
        size = len(segment.buf)
        if size < HEADER_LEN:
            raise Truncated(f"TCP header needs {HEADER_LEN} bytes, got {size}")
        header_len = segment.header_len
        if header_len < HEADER_LEN:
            raise Malformed(f"TCP data offset {header_len // 4} is below 5")
        if header_len > size:
            raise Truncated(f"TCP header of {header_len} bytes exceeds the {size}-byte buffer")
        return segment

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
    def seq(self) -> int:
        return _U32.unpack_from(self.buf, _SEQ)[0]  # type: ignore[no-any-return]

    @seq.setter
    def seq(self, value: int) -> None:
        _U32.pack_into(self.buf, _SEQ, value)

    @property
    def ack(self) -> int:
        """The acknowledgment field, meaningful only when the ACK flag is set."""
        return _U32.unpack_from(self.buf, _ACK)[0]  # type: ignore[no-any-return]

    @ack.setter
    def ack(self, value: int) -> None:
        _U32.pack_into(self.buf, _ACK, value)

    @property
    def header_len(self) -> int:
        """Data offset in bytes (4 × the 4-bit field)."""
        return (self.buf[_DATA_OFFSET] >> 4) * 4

    @header_len.setter
    def header_len(self, value: int) -> None:
        """Set the data offset; the reserved bits are cleared."""
        if value % 4 or not HEADER_LEN <= value <= MAX_HEADER_LEN:
            raise ValueError(f"TCP header length {value} is not a multiple of 4 in 20..60")
        self.buf[_DATA_OFFSET] = (value // 4) << 4

    @property
    def flags(self) -> TcpFlags:
        return _FLAGS_BY_BYTE[self.buf[_FLAGS]]

    @flags.setter
    def flags(self, value: int) -> None:
        self.buf[_FLAGS] = value

    @property
    def window(self) -> int:
        """The raw 16-bit window field (not scaled)."""
        return _U16.unpack_from(self.buf, _WINDOW)[0]  # type: ignore[no-any-return]

    @window.setter
    def window(self, value: int) -> None:
        _U16.pack_into(self.buf, _WINDOW, value)

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self.buf, _CHECKSUM)[0]  # type: ignore[no-any-return]

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buf, _CHECKSUM, value)

    @property
    def urgent(self) -> int:
        return _U16.unpack_from(self.buf, _URGENT)[0]  # type: ignore[no-any-return]

    @urgent.setter
    def urgent(self, value: int) -> None:
        _U16.pack_into(self.buf, _URGENT, value)

    @property
    def options(self) -> memoryview:
        return self.buf[HEADER_LEN : self.header_len]

    @property
    def payload(self) -> memoryview:
        return self.buf[self.header_len :]

    def fill_checksum(self, src: int, dst: int) -> None:
        """Compute and store the checksum; ``src``/``dst`` are ``int(address)`` of either family."""
        self.checksum = 0
        self.checksum = checksum(self.buf, pseudo_header(src, dst, _PROTOCOL, len(self.buf)))

    def verify_checksum(self, src: int, dst: int) -> bool:
        return ones_sum(self.buf, pseudo_header(src, dst, _PROTOCOL, len(self.buf))) == 0xFFFF


@dataclass(frozen=True, slots=True)
class TcpRepr:
    """A TCP header with its decoded options; the payload stays in the buffer.

    ``ack`` is ``None`` exactly when ``flags`` lacks ACK (checked on creation).
    ``sack_blocks`` holds up to 4 ``(left edge, right edge)`` pairs and
    ``timestamp`` is ``(tsval, tsecr)``.
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int | None
    flags: TcpFlags
    window: int
    mss: int | None = None
    window_scale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None
    urgent: int = 0
    payload_len: int = 0

    def __post_init__(self) -> None:
        if (self.ack is None) == bool(int(self.flags) & _ACK_BIT):
            raise ValueError(f"TcpRepr ack={self.ack} disagrees with flags {self.flags!r}")
        if len(self.sack_blocks) > _MAX_SACK_BLOCKS:
            raise ValueError(f"{len(self.sack_blocks)} SACK blocks, at most 4 fit")

    @classmethod
    def parse(
        cls,
        data: _Buffer | TcpSegment,
        src: _Address,
        dst: _Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> TcpRepr:
        """Validate and decode ``data`` (exactly the IP payload) sent from ``src`` to ``dst``."""
        buf = data.buf if isinstance(data, TcpSegment) else data
        size = len(buf)
        if size < HEADER_LEN:
            raise Truncated(f"TCP header needs {HEADER_LEN} bytes, got {size}")
        src_port, dst_port, seq, ack, offset_byte, flag_byte, window, stored, urgent = (
            _HEADER.unpack_from(buf)
        )
        header_len = (offset_byte >> 4) * 4
        if header_len < HEADER_LEN:
            raise Malformed(f"TCP data offset {offset_byte >> 4} is below 5")
        if header_len > size:
            raise Truncated(f"TCP header of {header_len} bytes exceeds the {size}-byte buffer")
        pseudo = pseudo_header(int(src), int(dst), _PROTOCOL, size)
        if caps.verify and ones_sum(buf, pseudo) != 0xFFFF:
            raise BadChecksum(f"TCP checksum 0x{stored:04x} does not verify")
        flags = _FLAGS_BY_BYTE[flag_byte]
        acknowledged = ack if flag_byte & _ACK_BIT else None
        payload_len = size - header_len
        if header_len == HEADER_LEN:
            return cls(src_port, dst_port, seq, acknowledged, flags, window,
                       urgent=urgent, payload_len=payload_len)
        options = bytes(buf[HEADER_LEN:header_len])
        if len(options) == 12 and options.startswith(_ALIGNED_TIMESTAMPS_PREFIX):
            # Fast path: NOP NOP TS, as on every segment of a Linux connection.
            return cls(src_port, dst_port, seq, acknowledged, flags, window,
                       timestamp=_TIMESTAMP_VALUES.unpack_from(options, 4),
                       urgent=urgent, payload_len=payload_len)
        mss: int | None = None
        window_scale: int | None = None
        timestamp: tuple[int, int] | None = None
        sack_permitted = False
        sack_blocks: tuple[tuple[int, int], ...] = ()
        for kind, start, end in iter_options(options):
            if kind == TcpOption.MSS:
                mss = _U16.unpack_from(options, start + 2)[0]
            elif kind == TcpOption.WINDOW_SCALE:
                window_scale = options[start + 2]
            elif kind == TcpOption.SACK_PERMITTED:
                sack_permitted = True
            elif kind == TcpOption.TIMESTAMPS:
                timestamp = _TIMESTAMP_VALUES.unpack_from(options, start + 2)
            elif kind == TcpOption.SACK:
                sack_blocks = tuple(_SACK_BLOCK.iter_unpack(options[start + 2 : end]))
        return cls(src_port, dst_port, seq, acknowledged, flags, window, mss, window_scale,
                   sack_permitted, sack_blocks, timestamp, urgent, payload_len)

    @property
    def window_shift(self) -> int:
        """The window scale to apply: the received value clamped to 14 (RFC 7323 §2.3),
        0 when the option is absent."""
        if self.window_scale is None:
            return 0
        return min(self.window_scale, MAX_WINDOW_SHIFT)

    def _encode_options(self) -> bytes:
        """The option bytes in Linux's layout, every group a multiple of 4 bytes."""
        parts = []
        if self.mss is not None:
            parts.append(_MSS_OPTION.pack(TcpOption.MSS, 4, self.mss))
        if self.timestamp is not None:
            # RFC 7323 Appendix A layout; Linux puts SACK-permitted in the NOP NOP slot.
            first, second = (
                (TcpOption.SACK_PERMITTED, 2) if self.sack_permitted
                else (TcpOption.NOP, TcpOption.NOP)
            )
            tsval, tsecr = self.timestamp
            parts.append(
                _TIMESTAMPS_OPTION.pack(first, second, TcpOption.TIMESTAMPS, 10, tsval, tsecr)
            )
        elif self.sack_permitted:
            parts.append(_NOP_NOP_SACK_PERMITTED)
        if self.window_scale is not None:
            parts.append(_WINDOW_SCALE_OPTION.pack(
                TcpOption.NOP, TcpOption.WINDOW_SCALE, 3, self.window_scale
            ))
        if self.sack_blocks:
            parts.append(_SACK_OPTION_HEAD.pack(
                TcpOption.NOP, TcpOption.NOP, TcpOption.SACK, 2 + 8 * len(self.sack_blocks)
            ))
            parts.extend(_SACK_BLOCK.pack(left, right) for left, right in self.sack_blocks)
        return b"".join(parts)

    def _header_options(self) -> bytes:
        """:meth:`_encode_options`, refusing what does not fit in a 60-byte header.

        A parsed Repr can hold options that fit on the wire only without our NOP
        alignment (e.g. MSS + TS + 3 SACK blocks packed in 40 bytes).
        """
        options = self._encode_options()
        if len(options) > _MAX_OPTIONS_LEN:
            raise ValueError(
                f"TCP options need {len(options)} bytes, more than the {_MAX_OPTIONS_LEN} "
                "a 60-byte header allows"
            )
        return options

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self._header_options())

    @property
    def buffer_len(self) -> int:
        return self.header_len + self.payload_len

    def emit(
        self,
        buf: _WritableBuffer,
        src: _Address,
        dst: _Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        """Write header and options at ``buf[:header_len]``, in front of the payload
        already at ``buf[header_len:buffer_len]``, and fill the checksum per ``caps``."""
        options = self._header_options()
        header_len = HEADER_LEN + len(options)
        flags = self.flags
        ack = 0 if self.ack is None else self.ack
        _HEADER.pack_into(buf, 0, self.src_port, self.dst_port, self.seq, ack,
                          (header_len // 4) << 4, flags, self.window, 0, self.urgent)
        buf[HEADER_LEN:header_len] = options
        tx = caps.tx
        if tx is TxChecksum.NONE:
            return
        length = header_len + self.payload_len
        pseudo = pseudo_header(int(src), int(dst), _PROTOCOL, length)
        if tx is TxChecksum.FULL:
            _U16.pack_into(buf, _CHECKSUM, checksum(memoryview(buf)[:length], pseudo))
        else:
            _U16.pack_into(buf, _CHECKSUM, fold(pseudo))

    def __str__(self) -> str:
        text = f"TCP {self.src_port} > {self.dst_port} [{_flag_letters(self.flags)}]"
        text += f", seq {self.seq}"
        if self.ack is not None:
            text += f", ack {self.ack}"
        text += f", win {self.window}"
        if self.flags & TcpFlags.URG:
            text += f", urg {self.urgent}"
        options = self._encode_options()
        if options:
            text += f", options [{_describe_options(options)}]"
        return f"{text}, length {self.payload_len}"
