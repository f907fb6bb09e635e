"""Ethernet II frames (IEEE 802.3 with EtherType), 802.1Q/802.1ad tags, MAC addresses.

Contract:
- :class:`EthernetAddress` is an immutable 6-byte value.
- :class:`EthernetFrame` is a view over a buffer that starts at the destination
  address and ends where the device says the frame ends (no FCS). Up to two
  stacked VLAN tags (TPID 0x8100 or 0x88A8, IEEE 802.1Q §9.6) are recognised:
  ``header_len`` is 14, 18 or 22, ``ethertype`` is the EtherType of the payload
  (after the tags) and ``payload`` starts after the tags. ``checked()`` raises
  :class:`Truncated` if the buffer ends inside the header and :class:`Unsupported`
  for a third stacked tag.
- :class:`EthernetRepr` additionally rejects IEEE 802.3 length-field (LLC) frames
  (EtherType < 0x0600) with :class:`Unsupported`.
- The codec neither adds nor strips the 60-byte minimum-frame padding: the
  payload is everything after the header, and the upper layer (IPv4/IPv6/ARP)
  slices it by its own length field.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from .errors import Malformed, Truncated, Unsupported

__all__ = [
    "BROADCAST",
    "EtherType",
    "EthernetAddress",
    "EthernetFrame",
    "EthernetRepr",
    "VlanTag",
    "ipv4_multicast_mac",
    "ipv6_multicast_mac",
]


class EthernetAddress(bytes):
    """A 48-bit MAC address: ``bytes`` of length 6 with helpers.

    Subclassing ``bytes`` keeps it hashable, comparable and directly writable
    into a frame buffer without conversion.
    """

    __slots__ = ()

    def __new__(cls, value: bytes | bytearray | memoryview | str) -> EthernetAddress:
        if isinstance(value, str):
            parts = value.replace("-", ":").split(":")
            if len(parts) != 6:
                raise ValueError(f"not a MAC address: {value!r}")
            try:
                raw = bytes(int(p, 16) for p in parts)
            except ValueError:
                raise ValueError(f"not a MAC address: {value!r}") from None
        else:
            raw = bytes(value)
            if len(raw) != 6:
                raise Malformed(f"MAC address must be 6 bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @property
    def is_broadcast(self) -> bool:
        return self == BROADCAST

    @property
    def is_multicast(self) -> bool:
        """Group bit set (IEEE 802 I/G bit); broadcast is multicast too."""
        return bool(self[0] & 0x01)

    @property
    def is_unicast(self) -> bool:
        return not self[0] & 0x01

    @property
    def is_local(self) -> bool:
        """Locally administered (U/L bit set)."""
        return bool(self[0] & 0x02)

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self)

    def __repr__(self) -> str:
        return f"EthernetAddress('{self}')"


BROADCAST = EthernetAddress(b"\xff" * 6)


class EtherType(enum.IntEnum):
    """IEEE 802 EtherType values this stack knows (IANA "ieee-802-numbers")."""

    IPV4 = 0x0800
    ARP = 0x0806
    IPV6 = 0x86DD
    VLAN = 0x8100  # IEEE 802.1Q customer tag (C-TAG)
    QINQ = 0x88A8  # IEEE 802.1ad service tag (S-TAG)


_ETHERTYPE_NAMES: dict[int, str] = {
    EtherType.IPV4: "IPv4",
    EtherType.ARP: "ARP",
    EtherType.IPV6: "IPv6",
    EtherType.VLAN: "802.1Q",
    EtherType.QINQ: "802.1Q-QinQ",
}
_KNOWN_ETHERTYPES: dict[int, int] = {member.value: member for member in EtherType}
_VLAN_TPIDS = frozenset((EtherType.VLAN.value, EtherType.QINQ.value))
_MIN_ETHERTYPE = 0x0600  # IEEE 802.3 §3.2.6: smaller values are a length (LLC frame)

# Ethernet II header: destination, source, EtherType (IEEE 802.3 §3.1.1).
_DST = slice(0, 6)
_SRC = slice(6, 12)
_ETHERTYPE_OFFSET = 12
_HEADER_LEN = 14
# An 802.1Q tag (IEEE 802.1Q §9.6) is inserted before the EtherType: TPID, TCI.
_TAG_LEN = 4
_MAX_TAGS = 2
_U16 = struct.Struct("!H")
_TAG = struct.Struct("!HH")  # TPID, TCI


@dataclass(frozen=True, slots=True)
class VlanTag:
    """One 802.1Q tag: VLAN id, priority code point, drop eligible indicator, TPID.

    ``tpid`` is 0x8100 for a C-TAG and 0x88A8 for an 802.1ad S-TAG (the outer tag
    of a QinQ frame); it is kept so that parse followed by emit gives the same bytes.
    """

    vlan_id: int
    pcp: int = 0
    dei: bool = False
    tpid: int = EtherType.VLAN

    @classmethod
    def from_tci(cls, tpid: int, tci: int) -> VlanTag:
        # TCI (IEEE 802.1Q §9.6): PCP (3 bits) | DEI (1 bit) | VID (12 bits).
        return cls(tci & 0x0FFF, tci >> 13, bool(tci & 0x1000), _KNOWN_ETHERTYPES.get(tpid, tpid))

    @property
    def tci(self) -> int:
        return (self.pcp << 13) | (self.dei << 12) | self.vlan_id

    def __str__(self) -> str:
        dei = ", DEI" if self.dei else ""
        return f"vlan {self.vlan_id}, p {self.pcp}{dei}"


class EthernetFrame:
    """Zero-copy view of an Ethernet II frame (see the module contract)."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf)

    @classmethod
    def checked(cls, buf: bytes | bytearray | memoryview) -> EthernetFrame:
        frame = cls(buf)
        length = len(frame.buf)
        offset = _ETHERTYPE_OFFSET
        for _ in range(_MAX_TAGS + 1):
            if length < offset + 2:
                raise Truncated(f"Ethernet header needs {offset + 2} bytes, got {length}")
            if _U16.unpack_from(frame.buf, offset)[0] not in _VLAN_TPIDS:
                return frame
            offset += _TAG_LEN
        raise Unsupported(f"more than {_MAX_TAGS} stacked VLAN tags")

    @property
    def tag_count(self) -> int:
        """Number of VLAN tags (0, 1 or 2) before the payload EtherType."""
        buf = self.buf
        if _U16.unpack_from(buf, _ETHERTYPE_OFFSET)[0] not in _VLAN_TPIDS:
            return 0
        if _U16.unpack_from(buf, _ETHERTYPE_OFFSET + _TAG_LEN)[0] not in _VLAN_TPIDS:
            return 1
        return 2

    @property
    def header_len(self) -> int:
        return _HEADER_LEN + _TAG_LEN * self.tag_count

    @property
    def dst(self) -> EthernetAddress:
        return EthernetAddress(self.buf[_DST])

    @dst.setter
    def dst(self, value: EthernetAddress) -> None:
        self.buf[_DST] = value

    @property
    def src(self) -> EthernetAddress:
        return EthernetAddress(self.buf[_SRC])

    @src.setter
    def src(self, value: EthernetAddress) -> None:
        self.buf[_SRC] = value

    @property
    def ethertype(self) -> int:
        """EtherType of the payload: the field after the last VLAN tag."""
        return int(_U16.unpack_from(self.buf, self.header_len - 2)[0])

    @ethertype.setter
    def ethertype(self, value: int) -> None:
        _U16.pack_into(self.buf, self.header_len - 2, value)

    @property
    def vlan_tags(self) -> tuple[VlanTag, ...]:
        """The VLAN tags, outermost first (empty when the frame is untagged)."""
        return tuple(
            VlanTag.from_tci(*_TAG.unpack_from(self.buf, _ETHERTYPE_OFFSET + _TAG_LEN * index))
            for index in range(self.tag_count)
        )

    @property
    def payload(self) -> memoryview:
        return self.buf[self.header_len :]


@dataclass(frozen=True, slots=True)
class EthernetRepr:
    """An Ethernet II header; ``vlan`` is ``None`` (untagged) or 1-2 tags, outermost first."""

    src: EthernetAddress
    dst: EthernetAddress
    ethertype: int
    vlan: tuple[VlanTag, ...] | None = None

    def __post_init__(self) -> None:
        if self.vlan is not None and not 1 <= len(self.vlan) <= _MAX_TAGS:
            raise ValueError(f"vlan must be None or 1..{_MAX_TAGS} tags, got {self.vlan!r}")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | EthernetFrame) -> EthernetRepr:
        frame = EthernetFrame.checked(data.buf if isinstance(data, EthernetFrame) else data)
        ethertype = frame.ethertype
        if ethertype < _MIN_ETHERTYPE:
            raise Unsupported(f"IEEE 802.3 length field {ethertype} (LLC frame)")
        return cls(
            src=frame.src,
            dst=frame.dst,
            ethertype=_KNOWN_ETHERTYPES.get(ethertype, ethertype),
            vlan=frame.vlan_tags or None,
        )

    @property
    def header_len(self) -> int:
        return _HEADER_LEN + _TAG_LEN * len(self.vlan or ())

    def emit(self, buf: bytearray | memoryview) -> None:
        """Write the header (``header_len`` bytes) at the start of ``buf``."""
        buf[_DST] = self.dst
        buf[_SRC] = self.src
        offset = _ETHERTYPE_OFFSET
        for tag in self.vlan or ():
            _TAG.pack_into(buf, offset, tag.tpid, tag.tci)
            offset += _TAG_LEN
        _U16.pack_into(buf, offset, self.ethertype)

    def __str__(self) -> str:
        tags = "".join(f"{tag}, " for tag in self.vlan or ())
        name = _ETHERTYPE_NAMES.get(self.ethertype, "Unknown")
        return f"{self.src} > {self.dst}, {tags}ethertype {name} (0x{self.ethertype:04x})"


def ipv4_multicast_mac(group: IPv4Address) -> EthernetAddress:
    """RFC 1112 §6.4: 01:00:5e followed by the low 23 bits of the group address."""
    if not group.is_multicast:
        raise ValueError(f"{group} is not an IPv4 multicast address")
    return EthernetAddress(b"\x01\x00\x5e" + (int(group) & 0x7FFFFF).to_bytes(3, "big"))


def ipv6_multicast_mac(group: IPv6Address) -> EthernetAddress:
    """RFC 2464 §7: 33:33 followed by the low 32 bits of the group address."""
    if not group.is_multicast:
        raise ValueError(f"{group} is not an IPv6 multicast address")
    return EthernetAddress(b"\x33\x33" + group.packed[12:])
