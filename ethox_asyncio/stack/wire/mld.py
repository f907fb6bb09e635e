"""Multicast Listener Discovery version 2 reports (RFC 3810 §5.2).

Contract:
- A report is an ICMPv6 message of type 143, sent to ff02::16 (§5.2.14) whenever
  a node's listening state changes (Linux sends some on every link-up, joining
  the solicited-node groups of its addresses) and in answer to queries.
  :meth:`Mldv2Report.parse` takes the whole ICMPv6 message and the IPv6
  addresses it came with, verifies the checksum when ``caps.verify``
  (:class:`BadChecksum`) and raises :class:`Malformed` for any other ICMPv6 type.
  :func:`.icmpv6.parse_icmpv6` does not hand type 143 to it: the stack does not
  take part in MLD and drops reports as ``Unsupported``; ``describe`` calls this
  codec directly.
- :class:`Truncated` when the message ends before its 8-octet header, before one
  of the records the header counts, or inside a record's sources or auxiliary
  data. Octets after the last record are ignored (§5.2.11) and not kept, so a
  parsed Repr's ``buffer_len`` is that of the message it would emit. Reserved
  fields and the ICMP code are ignored on receive and sent as zero. Unknown
  record types stay ``int``. Work is linear in the message length.
- Not checked, because the codec does not see the IPv6 header: hop limit 1, the
  Router Alert option, a link-local or unspecified source (RFC 3810 §5, §5.2.13).
  That is the caller's job, as for NDP's hop limit.
- ``emit(buf, src, dst, caps)`` writes ``buffer_len`` octets at offset 0 with the
  checksum ``caps.tx`` asks for, exactly like the ICMPv6 Reprs.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from .checksum import CHECKSUM_SOFTWARE, ChecksumCaps
from .errors import BadChecksum, Malformed, Truncated
from .icmpv6 import Icmpv6Packet, Icmpv6Type

__all__ = [
    "MLDV2_ROUTERS",
    "Mldv2AddressRecord",
    "Mldv2RecordType",
    "Mldv2Report",
]

WritableBuffer = bytearray | memoryview

# RFC 3810 §5.2.14: reports go to all MLDv2-capable routers.
MLDV2_ROUTERS = IPv6Address("ff02::16")

# RFC 3810 §5.2: type(1) reserved(1) checksum(2) reserved(2), then the number of
# multicast address records M(2); the records follow.
_REPORT = struct.Struct("!BBHHH")
_REPORT_LEN = _REPORT.size  # 8
# RFC 3810 §5.2 (record format), §5.2.5-§5.2.8: record type(1), aux data len(1) in
# 32-bit words (§5.2.6), number of sources N(2), multicast address(16); then N
# source addresses (§5.2.9) and the auxiliary data (§5.2.10).
_RECORD = struct.Struct("!BBH16s")
_RECORD_LEN = _RECORD.size  # 20
_ADDRESS_LEN = 16
_AUX_UNIT = 4
_MAX_COUNT = 0xFFFF  # M and N are 16-bit fields
_MAX_AUX_LEN = 0xFF * _AUX_UNIT


class Mldv2RecordType(enum.IntEnum):
    """Multicast address record types (RFC 3810 §5.2.12)."""

    MODE_IS_INCLUDE = 1
    MODE_IS_EXCLUDE = 2
    CHANGE_TO_INCLUDE_MODE = 3
    CHANGE_TO_EXCLUDE_MODE = 4
    ALLOW_NEW_SOURCES = 5
    BLOCK_OLD_SOURCES = 6


# tcpdump's wording (print-icmp6.c, mldv2report2str).
_RECORD_NAMES: dict[int, str] = {
    Mldv2RecordType.MODE_IS_INCLUDE: "is_in",
    Mldv2RecordType.MODE_IS_EXCLUDE: "is_ex",
    Mldv2RecordType.CHANGE_TO_INCLUDE_MODE: "to_in",
    Mldv2RecordType.CHANGE_TO_EXCLUDE_MODE: "to_ex",
    Mldv2RecordType.ALLOW_NEW_SOURCES: "allow",
    Mldv2RecordType.BLOCK_OLD_SOURCES: "block",
}


def _record_type(value: int) -> Mldv2RecordType | int:
    try:
        return Mldv2RecordType(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class Mldv2AddressRecord:
    """One multicast address record (RFC 3810 §5.2.4-§5.2.10).

    ``aux_data`` is kept as bytes, a multiple of 4 octets; MLDv2 itself defines
    none (§5.2.10), so senders leave it empty.
    """

    record_type: Mldv2RecordType | int
    address: IPv6Address
    sources: tuple[IPv6Address, ...] = ()
    aux_data: bytes = b""

    @property
    def buffer_len(self) -> int:
        return _RECORD_LEN + _ADDRESS_LEN * len(self.sources) + len(self.aux_data)

    def _emit_at(self, view: memoryview, offset: int) -> int:
        """Write the record at ``offset``; return the offset after it."""
        if len(self.sources) > _MAX_COUNT:
            raise ValueError(f"{len(self.sources)} sources do not fit one MLDv2 record")
        if len(self.aux_data) % _AUX_UNIT or len(self.aux_data) > _MAX_AUX_LEN:
            raise ValueError(f"MLDv2 auxiliary data of {len(self.aux_data)} octets")
        _RECORD.pack_into(view, offset, self.record_type, len(self.aux_data) // _AUX_UNIT,
                          len(self.sources), self.address.packed)
        offset += _RECORD_LEN
        for source in self.sources:
            view[offset : offset + _ADDRESS_LEN] = source.packed
            offset += _ADDRESS_LEN
        view[offset : offset + len(self.aux_data)] = self.aux_data
        return offset + len(self.aux_data)

    def __str__(self) -> str:
        name = _RECORD_NAMES.get(self.record_type, f"type {int(self.record_type)}")
        return f"gaddr {self.address} {name}, {len(self.sources)} source(s)"


def _parse_record(buf: memoryview, offset: int, index: int) -> tuple[Mldv2AddressRecord, int]:
    """Parse record ``index`` (from 1) at ``offset``; return it and the offset after it."""
    if len(buf) < offset + _RECORD_LEN:
        raise Truncated(f"MLDv2 record {index} at octet {offset} runs past the message")
    record_type, aux_words, n_sources, address = _RECORD.unpack_from(buf, offset)
    sources_at = offset + _RECORD_LEN
    aux_at = sources_at + _ADDRESS_LEN * n_sources
    end = aux_at + aux_words * _AUX_UNIT
    if len(buf) < end:
        raise Truncated(f"MLDv2 record {index} with {n_sources} sources and {aux_words * 4} "
                        f"octets of auxiliary data runs past the message")
    sources = tuple(
        IPv6Address(bytes(buf[at : at + _ADDRESS_LEN]))
        for at in range(sources_at, aux_at, _ADDRESS_LEN)
    )
    record = Mldv2AddressRecord(
        _record_type(record_type), IPv6Address(address), sources, bytes(buf[aux_at:end])
    )
    return record, end


@dataclass(frozen=True, slots=True)
class Mldv2Report:
    """Version 2 Multicast Listener Report (ICMPv6 type 143, RFC 3810 §5.2)."""

    records: tuple[Mldv2AddressRecord, ...] = ()

    @classmethod
    def parse(
        cls,
        data: bytes | bytearray | memoryview | Icmpv6Packet,
        src: IPv6Address,
        dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> Mldv2Report:
        packet = Icmpv6Packet.checked(data.buf if isinstance(data, Icmpv6Packet) else data)
        if packet.msg_type != Icmpv6Type.MLDV2_REPORT:
            raise Malformed(f"not an MLDv2 report: ICMPv6 type {packet.msg_type}")
        # §5.2.11: the checksum covers the whole message, octets after the records too.
        if caps.verify and not packet.verify_checksum(src, dst):
            raise BadChecksum("ICMPv6 checksum")
        buf = packet.buf
        n_records = _REPORT.unpack_from(buf)[4]
        # Every record is at least 20 octets: refuse a count the message cannot hold
        # before parsing any, so a forged M costs nothing.
        if len(buf) < _REPORT_LEN + _RECORD_LEN * n_records:
            raise Truncated(f"MLDv2 report of {len(buf)} octets cannot hold "
                            f"{n_records} record(s)")
        records: list[Mldv2AddressRecord] = []
        offset = _REPORT_LEN
        for index in range(1, n_records + 1):
            record, offset = _parse_record(buf, offset, index)
            records.append(record)
        return cls(tuple(records))

    @property
    def header_len(self) -> int:
        return _REPORT_LEN

    @property
    def buffer_len(self) -> int:
        return _REPORT_LEN + sum(record.buffer_len for record in self.records)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        if len(self.records) > _MAX_COUNT:
            raise ValueError(f"{len(self.records)} records do not fit one MLDv2 report")
        view = memoryview(buf)[: self.buffer_len]
        _REPORT.pack_into(view, 0, Icmpv6Type.MLDV2_REPORT, 0, 0, 0, len(self.records))
        offset = _REPORT_LEN
        for record in self.records:
            offset = record._emit_at(view, offset)
        Icmpv6Packet(view).fill_checksum(src, dst, caps.tx)

    def __str__(self) -> str:
        records = "".join(f" [{record}]" for record in self.records)
        return (f"ICMP6, multicast listener report v2, {len(self.records)} group record(s)"
                f"{records}, length {self.buffer_len}")
