"""The virtio-net header that TAP (``IFF_VNET_HDR``) and AF_PACKET (``PACKET_VNET_HDR``) use.

Contract: on a device whose ``capabilities.vnet_header`` is true, every frame —
received and transmitted — starts with a :data:`VNET_HDR_LEN`-byte
``struct virtio_net_hdr`` (Linux ``include/uapi/linux/virtio_net.h``; virtio 1.x
spec §5.1.6) followed by the Ethernet frame. The fields are little-endian
(``IFF_VNET_LE`` semantics; this package supports little-endian hosts only,
checked at import). :class:`VnetHeader` reads and writes it in place;
:data:`NO_OFFLOAD` is the header of a frame that needs nothing from the kernel.

Receive: ``NEEDS_CSUM`` means the L4 checksum holds only the pseudo-header sum
(the kernel trusted its own sender); ``DATA_VALID`` means the kernel verified it;
``gso_type != NONE`` means a super-frame of up to ~64 KB whose TCP payload the
sender would have cut into ``gso_size`` pieces. Transmit: write ``NEEDS_CSUM``
with ``csum_start``/``csum_offset`` and the pseudo-header sum in the checksum
field, and ``GSO_TCPV4``/``GSO_TCPV6`` with ``gso_size``/``hdr_len`` for the
kernel to segment (PLATFORM.md, TAP facts).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

__all__ = [
    "FLAG_DATA_VALID",
    "FLAG_NEEDS_CSUM",
    "GSO_ECN",
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "GSO_UDP_L4",
    "NO_OFFLOAD",
    "VNET_HDR_LEN",
    "VnetHeader",
]

if sys.byteorder != "little":  # pragma: no cover - no big-endian machine here
    raise ImportError("ethox_asyncio's virtio-net header code assumes a little-endian host")

VNET_HDR_LEN = 10
_HEADER = struct.Struct("<BBHHHH")  # flags gso_type hdr_len gso_size csum_start csum_offset

FLAG_NEEDS_CSUM = 1  # VIRTIO_NET_HDR_F_NEEDS_CSUM
FLAG_DATA_VALID = 2  # VIRTIO_NET_HDR_F_DATA_VALID
GSO_NONE = 0  # VIRTIO_NET_HDR_GSO_NONE
GSO_TCPV4 = 1
GSO_UDP = 3  # UFO, obsolete
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80  # flag bit on gso_type: the segments carry ECN CE / CWR


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """``struct virtio_net_hdr`` (10 bytes, no ``num_buffers``)."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> VnetHeader:
        if len(buf) < VNET_HDR_LEN:
            raise ValueError(f"virtio-net header needs {VNET_HDR_LEN} bytes, got {len(buf)}")
        return cls(*_HEADER.unpack_from(buf, 0))

    def emit(self, buf: bytearray | memoryview) -> None:
        _HEADER.pack_into(buf, 0, self.flags, self.gso_type, self.hdr_len, self.gso_size,
                          self.csum_start, self.csum_offset)

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & FLAG_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & FLAG_DATA_VALID)

    @property
    def is_gso(self) -> bool:
        return (self.gso_type & ~GSO_ECN) != GSO_NONE

    def pack(self) -> bytes:
        return _HEADER.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size,
                            self.csum_start, self.csum_offset)


#: The header of a frame that needs no offload work (plain, fully checksummed).
NO_OFFLOAD = bytes(VNET_HDR_LEN)
