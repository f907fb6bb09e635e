"""The TCP segment as the connection engine sees it: plain ints, decoded options.

Contract:
- :class:`Segment` is a slotted record of one segment's header fields and
  payload (``bytes`` or a ``memoryview`` into the received frame, never copied
  here). ``window`` is the raw 16-bit field; scaling is the connection's job.
  ``ts_val``/``ts_ecr`` are both ``None`` exactly when the segment has no
  timestamps option. ``mss``/``wscale`` are ``None`` when absent; ``wscale``
  keeps the value received (the connection clamps it to 14, RFC 7323 §2.3).
- :meth:`Segment.parse` takes exactly the TCP segment (the IP payload, checksum
  already verified by the IP glue) and decodes the fixed header with one
  ``struct`` call and the options with a fast path for the ``NOP NOP TS`` block
  every Linux segment carries. Errors are the wire family: :class:`Truncated`
  (shorter than 20 bytes or than the data offset says), :class:`Malformed` (data
  offset below 5; an option length below 2 or running past the header; MSS,
  window scale, SACK-permitted or timestamps with the wrong length; a SACK
  option that is not 2 + 8n bytes with n in 1..4). EOL ends the options, NOP is
  skipped, unknown kinds are skipped by their length, a repeated kind: the last
  wins. (Linux stops parsing at a bad option instead of dropping the segment;
  we drop it, as the wire codec does, so that a bad option never half-applies.)
- Flag combinations are *not* judged here: the codec reports what is on the
  wire and the state machine decides, in RFC 9293 §3.10.7 order. So SYN+RST is
  handled as a RST (the RST check comes before the SYN check), a listener drops
  SYN+RST, SYN+FIN and bare RSTs (Linux ``tcp_rcv_state_process`` LISTEN case),
  a segment without ACK in a synchronized state is dropped (§3.10.7.4 fifth), and
  URG is ignored (urgent data is delivered in line, RFC 6093 §6).
- :meth:`Segment.emit_header` writes the header and options (Linux's layout,
  each group padded to 4 bytes with NOPs) with a zero checksum field — the IP
  glue fills it — and returns the header length. Options that cannot fit in 40
  bytes raise ``ValueError`` (our own bug; the connection never asks for them).
- :func:`reset_for` builds the RST that answers a segment for which no
  connection exists (RFC 9293 §3.10.7.1), or ``None`` for a RST.
- The hot path (host.py, header prediction) decodes the two layouts an established
  connection's segments have — no options, or exactly Linux's ``NOP NOP TS`` block —
  with :data:`HEADER` / :data:`HEADER_TS` into plain ints, without a
  :class:`Segment`; anything else goes through :meth:`Segment.parse`.
"""

from __future__ import annotations

import struct

from ..wire.errors import Malformed, Truncated
from ..wire.tcp import TcpFlags, iter_options

__all__ = [
    "ACK",
    "ALIGNED_TS_WORD",
    "FIN",
    "HEADER",
    "HEADER_LEN",
    "HEADER_TS",
    "HEADER_TS_LEN",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "Segment",
    "reset_for",
]

# Control bits as plain ints (IntFlag arithmetic is slow on the hot path).
FIN = int(TcpFlags.FIN)
SYN = int(TcpFlags.SYN)
RST = int(TcpFlags.RST)
PSH = int(TcpFlags.PSH)
ACK = int(TcpFlags.ACK)
URG = int(TcpFlags.URG)

HEADER_LEN = 20
_MAX_OPTIONS_LEN = 40
_MASK32 = 0xFFFFFFFF

# RFC 9293 §3.1: ports, seq, ack, data offset, flags, window, checksum, urgent.
_HEADER = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_TS_VALUES = struct.Struct("!II")
_SACK_BLOCK = struct.Struct("!II")
_ALIGNED_TS = b"\x01\x01\x08\x0a"  # NOP NOP TS len 10: RFC 7323 Appendix A layout
_HEADER_TS = struct.Struct("!HHIIBBHHHBBBBII")  # fixed header + NOP NOP TS

#: For the hot path (module contract): the fixed header (RFC 9293 §3.1) — ports, seq,
#: ack, data offset, flags, window, checksum, urgent pointer — and the same followed
#: by the first option word and the two timestamps (RFC 7323 Appendix A layout when
#: that word is :data:`ALIGNED_TS_WORD`: NOP NOP kind 8 length 10).
HEADER = _HEADER
HEADER_TS = struct.Struct("!HHIIBBHHHIII")
HEADER_TS_LEN = 32
ALIGNED_TS_WORD = 0x0101080A

_OPT_NOP = 1
_OPT_MSS = 2
_OPT_WSCALE = 3
_OPT_SACK_PERMITTED = 4
_OPT_SACK = 5
_OPT_TIMESTAMPS = 8

_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"))

Payload = bytes | memoryview


class Segment:
    """One TCP segment: header fields as ints, options decoded, payload by reference."""

    __slots__ = ("ack", "dst_port", "flags", "gso_size", "mss", "payload", "sack_blocks",
                 "sack_permitted", "seq", "src_port", "ts_ecr", "ts_val", "window", "wscale")

    def __init__(self, src_port: int, dst_port: int, seq: int, ack: int, flags: int,
                 window: int, payload: Payload = b"", mss: int | None = None,
                 wscale: int | None = None, sack_permitted: bool = False,
                 sack_blocks: tuple[tuple[int, int], ...] = (), ts_val: int | None = None,
                 ts_ecr: int | None = None) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack_blocks = sack_blocks
        self.ts_val = ts_val
        self.ts_ecr = ts_ecr
        # Not on the wire: with TSO, the payload bytes of each segment the device cuts
        # this one into (0: send as it is).
        self.gso_size = 0

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload + SYN + FIN (RFC 9293 §3.4)."""
        flags = self.flags
        return len(self.payload) + ((flags >> 1) & 1) + (flags & 1)

    @classmethod
    def parse(cls, data: memoryview | bytes | bytearray) -> Segment:
        """Decode the TCP segment ``data`` (exactly the IP payload); see the module contract."""
        size = len(data)
        if size < HEADER_LEN:
            raise Truncated(f"TCP header needs {HEADER_LEN} bytes, got {size}")
        header_len = (data[12] >> 4) << 2
        if header_len == 32 and size >= 32 and data[20:24] == _ALIGNED_TS:
            # The common case: NOP NOP TS, nothing else.
            (src_port, dst_port, seq, ack, _, flags, window, _, _, _, _, _, _,
             ts_val, ts_ecr) = _HEADER_TS.unpack_from(data)
            return cls(src_port, dst_port, seq, ack, flags, window,
                       memoryview(data)[32:], None, None, False, (), ts_val, ts_ecr)
        src_port, dst_port, seq, ack, _, flags, window, _, _ = _HEADER.unpack_from(data)
        if header_len < HEADER_LEN:
            raise Malformed(f"TCP data offset {header_len >> 2} is below 5")
        if header_len > size:
            raise Truncated(f"TCP header of {header_len} bytes exceeds the {size}-byte segment")
        segment = cls(src_port, dst_port, seq, ack, flags, window, memoryview(data)[header_len:])
        if header_len > HEADER_LEN:
            segment._parse_options(bytes(data[HEADER_LEN:header_len]))
        return segment

    def _parse_options(self, options: bytes) -> None:
        """RFC 9293 §3.2 option list (walked and length-checked by the wire codec's
        :func:`iter_options`); RFC 7323 §2-3, RFC 2018 §2-3 for the kinds we use."""
        for kind, start, end in iter_options(options):
            if kind == _OPT_MSS:
                self.mss = _U16.unpack_from(options, start + 2)[0]
            elif kind == _OPT_WSCALE:
                self.wscale = options[start + 2]
            elif kind == _OPT_SACK_PERMITTED:
                self.sack_permitted = True
            elif kind == _OPT_TIMESTAMPS:
                self.ts_val, self.ts_ecr = _TS_VALUES.unpack_from(options, start + 2)
            elif kind == _OPT_SACK:
                self.sack_blocks = tuple(_SACK_BLOCK.iter_unpack(options[start + 2:end]))

    def _options(self) -> bytes:
        """Options in Linux's layout: MSS, SACK-permitted/TS, NOP WS, NOP NOP SACK."""
        parts: list[bytes] = []
        if self.mss is not None:
            parts.append(bytes((_OPT_MSS, 4)) + _U16.pack(self.mss))
        if self.ts_val is not None:
            lead = bytes((_OPT_SACK_PERMITTED, 2)) if self.sack_permitted else b"\x01\x01"
            parts.append(lead + b"\x08\x0a" + _TS_VALUES.pack(self.ts_val, self.ts_ecr or 0))
        elif self.sack_permitted:
            parts.append(b"\x01\x01\x04\x02")
        if self.wscale is not None:
            parts.append(bytes((_OPT_NOP, _OPT_WSCALE, 3, self.wscale)))
        if self.sack_blocks:
            parts.append(bytes((_OPT_NOP, _OPT_NOP, _OPT_SACK, 2 + 8 * len(self.sack_blocks))))
            parts.extend(_SACK_BLOCK.pack(left, right) for left, right in self.sack_blocks)
        options = b"".join(parts)
        if len(options) > _MAX_OPTIONS_LEN:
            raise ValueError(f"TCP options need {len(options)} bytes, at most 40 fit")
        return options

    @property
    def header_len(self) -> int:
        if (self.ts_val is not None and self.mss is None and self.wscale is None
                and not self.sack_blocks and not self.sack_permitted):
            return 32
        return HEADER_LEN + len(self._options())

    def emit_header(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write header + options at ``buf[offset:]`` (checksum 0); return the header length."""
        if (self.ts_val is not None and self.mss is None and self.wscale is None
                and not self.sack_blocks and not self.sack_permitted):
            _HEADER_TS.pack_into(buf, offset, self.src_port, self.dst_port, self.seq & _MASK32,
                                 self.ack & _MASK32, 0x80, self.flags, self.window, 0, 0,
                                 1, 1, 8, 10, self.ts_val, self.ts_ecr or 0)
            return 32
        options = self._options() if (self.ts_val is not None or self.mss is not None
                                      or self.wscale is not None or self.sack_blocks
                                      or self.sack_permitted) else b""
        header_len = HEADER_LEN + len(options)
        _HEADER.pack_into(buf, offset, self.src_port, self.dst_port, self.seq & _MASK32,
                          self.ack & _MASK32, (header_len >> 2) << 4, self.flags, self.window,
                          0, 0)
        if options:
            buf[offset + HEADER_LEN:offset + header_len] = options
        return header_len

    def header_bytes(self) -> bytes:
        """The header with options as ``bytes`` (checksum field zero)."""
        buf = bytearray(self.header_len)
        self.emit_header(buf, 0)
        return bytes(buf)

    def __repr__(self) -> str:
        letters = "".join(letter for bit, letter in _LETTERS if self.flags & bit) or "none"
        text = f"Segment({self.src_port} > {self.dst_port} [{letters}] seq {self.seq}"
        if self.flags & ACK:
            text += f" ack {self.ack}"
        text += f" win {self.window} len {len(self.payload)}"
        if self.mss is not None:
            text += f" mss {self.mss}"
        if self.wscale is not None:
            text += f" wscale {self.wscale}"
        if self.sack_permitted:
            text += " sackOK"
        if self.ts_val is not None:
            text += f" TS {self.ts_val}:{self.ts_ecr}"
        if self.sack_blocks:
            text += " sack " + ",".join(f"{left}:{right}" for left, right in self.sack_blocks)
        return text + ")"


def reset_for(seg: Segment) -> Segment | None:
    """The RST answering ``seg`` when no connection exists (RFC 9293 §3.10.7.1).

    Never answers a RST. With ACK: ``<SEQ=SEG.ACK><CTL=RST>``; without:
    ``<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>``. Ports are swapped.
    """
    flags = seg.flags
    if flags & RST:
        return None
    if flags & ACK:
        return Segment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
    return Segment(seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & _MASK32,
                   RST | ACK, 0)
