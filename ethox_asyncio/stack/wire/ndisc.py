"""IPv6 Neighbor Discovery (RFC 4861): router/neighbor solicitation and advertisement.

Contract:
- NDP messages are ICMPv6 messages: :func:`.icmpv6.parse_icmpv6` checks the
  checksum and hands types 133-136 to :func:`parse_ndisc`, which returns one of
  :data:`NdiscRepr`. Each Repr's ``emit(buf, src, dst, caps)`` writes
  ``buffer_len`` octets at offset 0, checksum included, exactly like the
  ICMPv6 Reprs.
- Options (RFC 4861 §4.6) understood: source and target link-layer address
  (Ethernet only, RFC 2464 §6), prefix information and MTU. Unknown options, and
  link-layer options of a length other than Ethernet's, are skipped by their
  length; of a repeated single-valued option the first one counts. An option of
  length 0 raises :class:`Malformed`, one running past the message
  :class:`Truncated`.
  Skipped options are not kept, so a parsed Repr's ``buffer_len`` (and the
  length in its ``__str__``) is that of the message it would emit.
- The receive validity checks of RFC 4861 §6.1 and §7.1 that need only the
  message and its addresses raise :class:`Malformed` (code not 0, multicast
  target, ...). The IPv6 hop limit must be 255; checking it is the caller's job,
  as the codec does not see the IPv6 header.
- Redirect (137) is not parsed: :func:`.icmpv6.parse_icmpv6` raises
  :class:`Unsupported` for it.
- Helpers: :func:`solicited_node_multicast` (RFC 4291 §2.7.1) and
  :func:`link_local_from_mac` (modified EUI-64, RFC 4291 §2.5.1, RFC 2464 §4-5).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from .checksum import CHECKSUM_SOFTWARE, ChecksumCaps
from .errors import Malformed, Truncated, Unsupported
from .ethernet import EthernetAddress
from .icmpv6 import Icmpv6Packet, Icmpv6Type

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "INFINITE_LIFETIME",
    "NdiscOptionType",
    "NdiscRepr",
    "NeighborAdvert",
    "NeighborSolicit",
    "PrefixInformation",
    "RouterAdvert",
    "RouterSolicit",
    "link_local_from_mac",
    "parse_ndisc",
    "solicited_node_multicast",
]

WritableBuffer = bytearray | memoryview

# RFC 4291 §2.7.1: link-local scope all-nodes and all-routers groups.
ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
# RFC 4291 §2.7.1: FF02:0:0:0:0:1:FFXX:XXXX, the low 24 bits taken from a unicast address.
_SOLICITED_NODE_PREFIX = IPv6Network("ff02::1:ff00:0/104")
_LINK_LOCAL_PREFIX = IPv6Network("fe80::/64")  # RFC 4291 §2.5.6

# RFC 4861 §4.6.2: all ones means the prefix lifetime never ends.
INFINITE_LIFETIME = 0xFFFFFFFF


class NdiscOptionType(enum.IntEnum):
    """NDP option type numbers (RFC 4861 §4.6)."""

    SOURCE_LLADDR = 1
    TARGET_LLADDR = 2
    PREFIX_INFORMATION = 3
    MTU = 5


# Fixed parts of each message, ICMPv6 header included (RFC 4861 §4.1-§4.4).
_ROUTER_SOLICIT = struct.Struct("!BBHI")  # type code checksum reserved
_ROUTER_ADVERT = struct.Struct("!BBHBBHII")  # ... hop limit, M/O flags, lifetime, timers
_NEIGHBOR_MESSAGE = struct.Struct("!BBHI16s")  # ... flags/reserved, target address
_ROUTER_ADVERT_MANAGED = 0x80  # M: addresses from DHCPv6
_ROUTER_ADVERT_OTHER = 0x40  # O: other configuration from DHCPv6
_NEIGHBOR_ADVERT_ROUTER = 0x80 << 24  # R
_NEIGHBOR_ADVERT_SOLICITED = 0x40 << 24  # S
_NEIGHBOR_ADVERT_OVERRIDE = 0x20 << 24  # O

# Options (RFC 4861 §4.6): type(1), length(1) in units of 8 octets, then data.
_OPTION_HEADER_LEN = 2
_OPTION_UNIT = 8
_LLADDR_OPTION = struct.Struct("!BB6s")  # §4.6.1, 8 octets on Ethernet (RFC 2464 §6)
_PREFIX_OPTION = struct.Struct("!BBBBIII16s")  # §4.6.2, 32 octets
_MTU_OPTION = struct.Struct("!BBHI")  # §4.6.4, 8 octets
_PREFIX_ON_LINK = 0x80  # L
_PREFIX_AUTONOMOUS = 0x40  # A


@dataclass(frozen=True, slots=True)
class PrefixInformation:
    """A prefix information option (RFC 4861 §4.6.2).

    Bits of the prefix past its length are ignored on receive (and so come back
    as zero) and sent as zero.
    """

    prefix: IPv6Network
    on_link: bool = True
    autonomous: bool = True  # usable for stateless autoconfiguration (RFC 4862)
    valid_lifetime: int = INFINITE_LIFETIME  # seconds
    preferred_lifetime: int = INFINITE_LIFETIME  # seconds

    def __str__(self) -> str:
        return str(self.prefix)


@dataclass(slots=True)
class _Options:
    """The options found in one message, before the message picks those it uses."""

    source_lladdr: EthernetAddress | None = None
    target_lladdr: EthernetAddress | None = None
    mtu: int | None = None
    prefixes: list[PrefixInformation] = field(default_factory=list)


def _parse_prefix(option: memoryview) -> PrefixInformation:
    if len(option) != _PREFIX_OPTION.size:
        raise Malformed(f"prefix information option of {len(option)} octets, not 32")
    _, _, prefix_len, flags, valid, preferred, _, prefix = _PREFIX_OPTION.unpack(option)
    if prefix_len > 128:
        raise Malformed(f"prefix length {prefix_len}")
    network = IPv6Network((IPv6Address(prefix), prefix_len), strict=False)
    return PrefixInformation(
        network, bool(flags & _PREFIX_ON_LINK), bool(flags & _PREFIX_AUTONOMOUS), valid, preferred
    )


def _parse_options(options: memoryview) -> _Options:
    found = _Options()
    offset = 0
    while offset < len(options):
        if len(options) - offset < _OPTION_HEADER_LEN:
            raise Truncated("NDP option header runs past the message")
        option_type = options[offset]
        length = options[offset + 1] * _OPTION_UNIT
        if length == 0:
            raise Malformed("NDP option of length 0")  # RFC 4861 §4.6: must be discarded
        if offset + length > len(options):
            raise Truncated(f"NDP option of {length} octets runs past the message")
        option = options[offset : offset + length]
        # Ethernet addresses fill exactly one unit (RFC 2464 §6); other lengths are
        # another link type's and skipped. Repeats are ignored, as Linux does.
        is_lladdr = length == _LLADDR_OPTION.size
        if option_type == NdiscOptionType.SOURCE_LLADDR and is_lladdr:
            if found.source_lladdr is None:
                found.source_lladdr = EthernetAddress(option[2:])
        elif option_type == NdiscOptionType.TARGET_LLADDR and is_lladdr:
            if found.target_lladdr is None:
                found.target_lladdr = EthernetAddress(option[2:])
        elif option_type == NdiscOptionType.PREFIX_INFORMATION:
            found.prefixes.append(_parse_prefix(option))
        elif option_type == NdiscOptionType.MTU:
            if length != _MTU_OPTION.size:
                raise Malformed(f"MTU option of {length} octets, not 8")
            if found.mtu is None:
                found.mtu = _MTU_OPTION.unpack(option)[3]
        offset += length
    return found


def _options_len(
    lladdr: EthernetAddress | None,
    mtu: int | None = None,
    prefixes: tuple[PrefixInformation, ...] = (),
) -> int:
    length = _LLADDR_OPTION.size if lladdr is not None else 0
    if mtu is not None:
        length += _MTU_OPTION.size
    return length + _PREFIX_OPTION.size * len(prefixes)


def _write_options(
    view: memoryview, offset: int, lladdr_type: int, lladdr: EthernetAddress | None,
    mtu: int | None = None, prefixes: tuple[PrefixInformation, ...] = (),
) -> None:
    """Write a link-layer address, MTU and prefix options, in that order, from ``offset``."""
    if lladdr is not None:
        _LLADDR_OPTION.pack_into(view, offset, lladdr_type, 1, lladdr)
        offset += _LLADDR_OPTION.size
    if mtu is not None:
        # §4.6.4: 16 reserved bits between the length and the MTU.
        _MTU_OPTION.pack_into(view, offset, NdiscOptionType.MTU, 1, 0, mtu)
        offset += _MTU_OPTION.size
    for info in prefixes:
        flags = (_PREFIX_ON_LINK if info.on_link else 0) | (
            _PREFIX_AUTONOMOUS if info.autonomous else 0
        )
        _PREFIX_OPTION.pack_into(
            view, offset, NdiscOptionType.PREFIX_INFORMATION, 4, info.prefix.prefixlen, flags,
            info.valid_lifetime, info.preferred_lifetime, 0, info.prefix.network_address.packed,
        )
        offset += _PREFIX_OPTION.size


def _finish(view: memoryview, src: IPv6Address, dst: IPv6Address, caps: ChecksumCaps) -> None:
    Icmpv6Packet(view).fill_checksum(src, dst, caps.tx)


@dataclass(frozen=True, slots=True)
class RouterSolicit:
    """Router Solicitation (type 133, RFC 4861 §4.1): asks routers to advertise now."""

    source_lladdr: EthernetAddress | None = None

    @property
    def header_len(self) -> int:
        return _ROUTER_SOLICIT.size

    @property
    def buffer_len(self) -> int:
        return _ROUTER_SOLICIT.size + _options_len(self.source_lladdr)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        view = memoryview(buf)[: self.buffer_len]
        _ROUTER_SOLICIT.pack_into(view, 0, Icmpv6Type.ROUTER_SOLICIT, 0, 0, 0)
        _write_options(view, _ROUTER_SOLICIT.size, NdiscOptionType.SOURCE_LLADDR,
                       self.source_lladdr)
        _finish(view, src, dst, caps)

    def __str__(self) -> str:
        return f"ICMP6, router solicitation, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class RouterAdvert:
    """Router Advertisement (type 134, RFC 4861 §4.2).

    ``hop_limit`` 0, ``reachable_time`` 0 and ``retrans_time`` 0 mean
    "unspecified"; ``router_lifetime`` 0 means "not a default router". Times
    are in seconds (lifetime) and milliseconds (the two timers).
    """

    hop_limit: int = 0
    managed: bool = False  # M flag
    other_config: bool = False  # O flag
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_time: int = 0
    source_lladdr: EthernetAddress | None = None
    mtu: int | None = None
    prefixes: tuple[PrefixInformation, ...] = ()

    @property
    def header_len(self) -> int:
        return _ROUTER_ADVERT.size

    @property
    def buffer_len(self) -> int:
        return _ROUTER_ADVERT.size + _options_len(self.source_lladdr, self.mtu, self.prefixes)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        view = memoryview(buf)[: self.buffer_len]
        flags = (_ROUTER_ADVERT_MANAGED if self.managed else 0) | (
            _ROUTER_ADVERT_OTHER if self.other_config else 0
        )
        _ROUTER_ADVERT.pack_into(
            view, 0, Icmpv6Type.ROUTER_ADVERT, 0, 0, self.hop_limit, flags,
            self.router_lifetime, self.reachable_time, self.retrans_time,
        )
        _write_options(view, _ROUTER_ADVERT.size, NdiscOptionType.SOURCE_LLADDR,
                       self.source_lladdr, self.mtu, self.prefixes)
        _finish(view, src, dst, caps)

    def __str__(self) -> str:
        parts = [f"hop limit {self.hop_limit}", f"lifetime {self.router_lifetime}s"]
        flags = [name for name, on in (("managed", self.managed), ("other", self.other_config))
                 if on]
        if flags:
            parts.append(f"flags [{', '.join(flags)}]")
        parts.extend(f"prefix {info}" for info in self.prefixes)
        if self.mtu is not None:
            parts.append(f"mtu {self.mtu}")
        return f"ICMP6, router advertisement, {', '.join(parts)}, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class NeighborSolicit:
    """Neighbor Solicitation (type 135, RFC 4861 §4.3): "who has ``target_addr``?".

    Sent without ``source_lladdr`` from :: for duplicate address detection
    (RFC 4862 §5.4.2).
    """

    target_addr: IPv6Address
    source_lladdr: EthernetAddress | None = None

    @property
    def header_len(self) -> int:
        return _NEIGHBOR_MESSAGE.size

    @property
    def buffer_len(self) -> int:
        return _NEIGHBOR_MESSAGE.size + _options_len(self.source_lladdr)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        view = memoryview(buf)[: self.buffer_len]
        _NEIGHBOR_MESSAGE.pack_into(
            view, 0, Icmpv6Type.NEIGHBOR_SOLICIT, 0, 0, 0, self.target_addr.packed
        )
        _write_options(view, _NEIGHBOR_MESSAGE.size, NdiscOptionType.SOURCE_LLADDR,
                       self.source_lladdr)
        _finish(view, src, dst, caps)

    def __str__(self) -> str:
        return f"ICMP6, neighbor solicitation, who has {self.target_addr}, length {self.buffer_len}"


@dataclass(frozen=True, slots=True)
class NeighborAdvert:
    """Neighbor Advertisement (type 136, RFC 4861 §4.4): "``target_addr`` is at ...".

    Flags: ``router`` (R), ``solicited`` (S, answers a solicitation; never to a
    multicast destination), ``override`` (O, replace a cached link-layer address).
    """

    target_addr: IPv6Address
    target_lladdr: EthernetAddress | None = None
    router: bool = False
    solicited: bool = False
    override: bool = False

    @property
    def header_len(self) -> int:
        return _NEIGHBOR_MESSAGE.size

    @property
    def buffer_len(self) -> int:
        return _NEIGHBOR_MESSAGE.size + _options_len(self.target_lladdr)

    def emit(
        self, buf: WritableBuffer, src: IPv6Address, dst: IPv6Address,
        caps: ChecksumCaps = CHECKSUM_SOFTWARE,
    ) -> None:
        view = memoryview(buf)[: self.buffer_len]
        flags = (
            (_NEIGHBOR_ADVERT_ROUTER if self.router else 0)
            | (_NEIGHBOR_ADVERT_SOLICITED if self.solicited else 0)
            | (_NEIGHBOR_ADVERT_OVERRIDE if self.override else 0)
        )
        _NEIGHBOR_MESSAGE.pack_into(
            view, 0, Icmpv6Type.NEIGHBOR_ADVERT, 0, 0, flags, self.target_addr.packed
        )
        _write_options(view, _NEIGHBOR_MESSAGE.size, NdiscOptionType.TARGET_LLADDR,
                       self.target_lladdr)
        _finish(view, src, dst, caps)

    def __str__(self) -> str:
        return f"ICMP6, neighbor advertisement, tgt is {self.target_addr}, length {self.buffer_len}"


NdiscRepr = RouterSolicit | RouterAdvert | NeighborSolicit | NeighborAdvert


def _parse_router_solicit(buf: memoryview, src: IPv6Address) -> RouterSolicit:
    options = _parse_options(buf[_ROUTER_SOLICIT.size :])
    if src.is_unspecified and options.source_lladdr is not None:
        raise Malformed("router solicitation from :: with a source link-layer address")  # §6.1.1
    return RouterSolicit(options.source_lladdr)


def _parse_router_advert(buf: memoryview, src: IPv6Address) -> RouterAdvert:
    if len(buf) < _ROUTER_ADVERT.size:
        raise Truncated(f"router advertisement of {len(buf)} octets, needs 16")
    if not src.is_link_local:
        raise Malformed(f"router advertisement from non-link-local {src}")  # §6.1.2
    _, _, _, hop_limit, flags, lifetime, reachable, retrans = _ROUTER_ADVERT.unpack_from(buf)
    options = _parse_options(buf[_ROUTER_ADVERT.size :])
    return RouterAdvert(
        hop_limit,
        bool(flags & _ROUTER_ADVERT_MANAGED),
        bool(flags & _ROUTER_ADVERT_OTHER),
        lifetime,
        reachable,
        retrans,
        options.source_lladdr,
        options.mtu,
        tuple(options.prefixes),
    )


def _parse_target(buf: memoryview, name: str) -> tuple[int, IPv6Address]:
    """The flags word and target address of a neighbor message (RFC 4861 §4.3, §4.4)."""
    if len(buf) < _NEIGHBOR_MESSAGE.size:
        raise Truncated(f"{name} of {len(buf)} octets, needs 24")
    _, _, _, flags, target = _NEIGHBOR_MESSAGE.unpack_from(buf)
    target_addr = IPv6Address(target)
    if target_addr.is_multicast:
        raise Malformed(f"{name} for multicast target {target_addr}")  # §7.1.1, §7.1.2
    return flags, target_addr


def _parse_neighbor_solicit(
    buf: memoryview, src: IPv6Address, dst: IPv6Address
) -> NeighborSolicit:
    _, target_addr = _parse_target(buf, "neighbor solicitation")
    options = _parse_options(buf[_NEIGHBOR_MESSAGE.size :])
    # §7.1.1: duplicate address detection (from ::) goes to a solicited-node
    # group and carries no source link-layer address.
    if src.is_unspecified and (
        dst not in _SOLICITED_NODE_PREFIX or options.source_lladdr is not None
    ):
        raise Malformed("neighbor solicitation from :: not shaped for address detection")
    return NeighborSolicit(target_addr, options.source_lladdr)


def _parse_neighbor_advert(buf: memoryview, dst: IPv6Address) -> NeighborAdvert:
    flags, target_addr = _parse_target(buf, "neighbor advertisement")
    solicited = bool(flags & _NEIGHBOR_ADVERT_SOLICITED)
    if solicited and dst.is_multicast:
        raise Malformed("solicited neighbor advertisement to a multicast address")  # §7.1.2
    options = _parse_options(buf[_NEIGHBOR_MESSAGE.size :])
    return NeighborAdvert(
        target_addr,
        options.target_lladdr,
        router=bool(flags & _NEIGHBOR_ADVERT_ROUTER),
        solicited=solicited,
        override=bool(flags & _NEIGHBOR_ADVERT_OVERRIDE),
    )


def parse_ndisc(packet: Icmpv6Packet, src: IPv6Address, dst: IPv6Address) -> NdiscRepr:
    """Parse an NDP message whose ICMPv6 checksum was already checked.

    ``packet`` must come from ``Icmpv6Packet.checked``. Called by
    :func:`.icmpv6.parse_icmpv6`; use that on received bytes.
    """
    if packet.code != 0:
        raise Malformed(f"NDP message with ICMP code {packet.code}")  # §6.1, §7.1: code is 0
    msg_type = packet.msg_type
    if msg_type == Icmpv6Type.ROUTER_SOLICIT:
        return _parse_router_solicit(packet.buf, src)
    if msg_type == Icmpv6Type.ROUTER_ADVERT:
        return _parse_router_advert(packet.buf, src)
    if msg_type == Icmpv6Type.NEIGHBOR_SOLICIT:
        return _parse_neighbor_solicit(packet.buf, src, dst)
    if msg_type == Icmpv6Type.NEIGHBOR_ADVERT:
        return _parse_neighbor_advert(packet.buf, dst)
    raise Unsupported(f"ICMPv6 type {msg_type} is not a Neighbor Discovery message")


def solicited_node_multicast(addr: IPv6Address) -> IPv6Address:
    """The solicited-node multicast group of ``addr`` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX."""
    return IPv6Address(int(_SOLICITED_NODE_PREFIX.network_address) | (int(addr) & 0xFFFFFF))


def link_local_from_mac(mac: EthernetAddress) -> IPv6Address:
    """The fe80::/64 address whose interface identifier is ``mac``'s modified EUI-64.

    RFC 2464 §4 / RFC 4291 §2.5.1 and appendix A: insert FF FE between the two
    halves of the MAC and invert the universal/local bit; RFC 2464 §5 puts the
    result under the link-local prefix.
    """
    interface_id = bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
    return IPv6Address(_LINK_LOCAL_PREFIX.network_address.packed[:8] + interface_id)
