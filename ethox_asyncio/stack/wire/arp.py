"""ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses only.

Contract:
- :meth:`ArpPacket.checked` accepts only the Ethernet/IPv4 form: hardware type
  other than 1 or protocol type other than 0x0800 raise :class:`Unsupported`;
  with those types, a hardware length other than 6 or a protocol length other
  than 4 raise :class:`Malformed`; a buffer shorter than the 28-byte packet
  raises :class:`Truncated`. Bytes after the packet (Ethernet padding) are
  ignored. After ``checked()`` every field accessor is safe.
- :meth:`ArpRepr.parse` also raises :class:`Unsupported` for operations other
  than request and reply (RARP, InARP...).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from .errors import Malformed, Truncated, Unsupported
from .ethernet import EthernetAddress, EtherType

__all__ = ["ArpOperation", "ArpPacket", "ArpRepr"]


class ArpOperation(enum.IntEnum):
    REQUEST = 1  # ares_op$REQUEST (RFC 826)
    REPLY = 2  # ares_op$REPLY


_OPERATIONS = {member.value: member for member in ArpOperation}
_HARDWARE_ETHERNET = 1  # ares_hrd$Ethernet (IANA ARP hardware type 1)

# RFC 826 "Packet format": hrd(2) pro(2) hln(1) pln(1) op(2) sha(hln) spa(pln) tha(hln) tpa(pln),
# with hln = 6 and pln = 4 for Ethernet/IPv4.
_FIXED = struct.Struct("!HHBBH")
_PACKET = struct.Struct("!HHBBH6sI6sI")
_FIXED_LEN = _FIXED.size  # 8: enough to read the types and lengths
_PACKET_LEN = _PACKET.size  # 28
_OPERATION = 6
_SHA = slice(8, 14)
_SPA = 14
_THA = slice(18, 24)
_TPA = 24
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class ArpPacket:
    """Zero-copy view of an Ethernet/IPv4 ARP packet (see the module contract)."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf)

    @classmethod
    def checked(cls, buf: bytes | bytearray | memoryview) -> ArpPacket:
        packet = cls(buf)
        length = len(packet.buf)
        if length < _FIXED_LEN:
            raise Truncated(f"ARP header needs {_FIXED_LEN} bytes, got {length}")
        hardware_type, protocol_type, hardware_len, protocol_len, _ = _FIXED.unpack_from(buf)
        if hardware_type != _HARDWARE_ETHERNET:
            raise Unsupported(f"ARP hardware type {hardware_type}")
        if protocol_type != EtherType.IPV4:
            raise Unsupported(f"ARP protocol type 0x{protocol_type:04x}")
        if hardware_len != 6 or protocol_len != 4:
            raise Malformed(f"Ethernet/IPv4 ARP with address lengths {hardware_len}/{protocol_len}")
        if length < _PACKET_LEN:
            raise Truncated(f"ARP packet needs {_PACKET_LEN} bytes, got {length}")
        return packet

    @property
    def hardware_type(self) -> int:
        return int(_U16.unpack_from(self.buf, 0)[0])

    @property
    def protocol_type(self) -> int:
        return int(_U16.unpack_from(self.buf, 2)[0])

    @property
    def hardware_len(self) -> int:
        return self.buf[4]

    @property
    def protocol_len(self) -> int:
        return self.buf[5]

    @property
    def operation(self) -> int:
        return int(_U16.unpack_from(self.buf, _OPERATION)[0])

    @operation.setter
    def operation(self, value: int) -> None:
        _U16.pack_into(self.buf, _OPERATION, value)

    @property
    def source_hardware_addr(self) -> EthernetAddress:
        return EthernetAddress(self.buf[_SHA])

    @source_hardware_addr.setter
    def source_hardware_addr(self, value: EthernetAddress) -> None:
        self.buf[_SHA] = value

    @property
    def source_protocol_addr(self) -> IPv4Address:
        return IPv4Address(_U32.unpack_from(self.buf, _SPA)[0])

    @source_protocol_addr.setter
    def source_protocol_addr(self, value: IPv4Address) -> None:
        _U32.pack_into(self.buf, _SPA, int(value))

    @property
    def target_hardware_addr(self) -> EthernetAddress:
        return EthernetAddress(self.buf[_THA])

    @target_hardware_addr.setter
    def target_hardware_addr(self, value: EthernetAddress) -> None:
        self.buf[_THA] = value

    @property
    def target_protocol_addr(self) -> IPv4Address:
        return IPv4Address(_U32.unpack_from(self.buf, _TPA)[0])

    @target_protocol_addr.setter
    def target_protocol_addr(self, value: IPv4Address) -> None:
        _U32.pack_into(self.buf, _TPA, int(value))


@dataclass(frozen=True, slots=True)
class ArpRepr:
    """An Ethernet/IPv4 ARP request or reply."""

    operation: ArpOperation
    source_hardware_addr: EthernetAddress
    source_protocol_addr: IPv4Address
    target_hardware_addr: EthernetAddress
    target_protocol_addr: IPv4Address

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | ArpPacket) -> ArpRepr:
        packet = ArpPacket.checked(data.buf if isinstance(data, ArpPacket) else data)
        _, _, _, _, operation, sha, spa, tha, tpa = _PACKET.unpack_from(packet.buf)
        kind = _OPERATIONS.get(operation)
        if kind is None:
            raise Unsupported(f"ARP operation {operation}")
        return cls(
            kind, EthernetAddress(sha), IPv4Address(spa), EthernetAddress(tha), IPv4Address(tpa)
        )

    @property
    def header_len(self) -> int:
        return _PACKET_LEN

    @property
    def buffer_len(self) -> int:
        return _PACKET_LEN

    def emit(self, buf: bytearray | memoryview) -> None:
        """Write the 28-byte packet at the start of ``buf``."""
        _PACKET.pack_into(
            buf, 0, _HARDWARE_ETHERNET, EtherType.IPV4, 6, 4, self.operation,
            self.source_hardware_addr, int(self.source_protocol_addr),
            self.target_hardware_addr, int(self.target_protocol_addr),
        )

    def __str__(self) -> str:
        if self.operation == ArpOperation.REQUEST:
            target, source = self.target_protocol_addr, self.source_protocol_addr
            return f"ARP, Request who-has {target} tell {source}"
        return f"ARP, Reply {self.source_protocol_addr} is-at {self.source_hardware_addr}"
