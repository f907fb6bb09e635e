"""Internet checksum (RFC 1071), incremental update (RFC 1624), pseudo-headers.

Contract:
- :func:`ones_sum` returns the ones' complement sum of ``data`` folded to 16 bits
  (not complemented). Sums compose by plain integer addition: pass one as
  ``initial`` to the next, provided each piece starts at an even offset of the
  checksummed region.
- :func:`checksum` returns the value to store in a checksum field.
- :func:`verify` is true when data that includes its checksum field sums to
  0xFFFF.
- :class:`ChecksumCaps` says what software must do for L4 checksums on a device:
  verify on receive or trust the device, and fill fully, fill only the
  pseudo-header sum (virtio-net ``NEEDS_CSUM`` offload), or leave zero.

Why ``int.from_bytes(...) % 0xFFFF``: 2**16 ≡ 1 (mod 0xFFFF), so the whole buffer
read as one big-endian integer is congruent to the sum of its 16-bit words.
It is the fastest correct pure-Python method measured on this machine
(~0.4 GB/s, see PLATFORM.md). Ones' complement has two zeros: the sum is 0x0000
only when every word is zero, otherwise a multiple of 0xFFFF is 0xFFFF.

Compiled: ``ones_sum``, ``checksum`` and ``verify`` are the C twins of
``_speedups.c`` when that extension is active (:mod:`.speedups`; it sums 64 bits at a
time), else the pure-Python reference below (``_py_ones_sum`` etc.), which the C code
also hands any input it does not take itself (a negative ``initial``, a strided view).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .speedups import compiled

__all__ = [
    "CHECKSUM_SOFTWARE",
    "ChecksumCaps",
    "TxChecksum",
    "checksum",
    "fold",
    "ones_sum",
    "pseudo_header",
    "update16",
    "verify",
]


def fold(total: int) -> int:
    """Fold a non-negative integer sum of 16-bit words to a 16-bit ones' sum."""
    folded = total % 0xFFFF
    if folded == 0 and total != 0:
        return 0xFFFF
    return folded


def _py_ones_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Ones' complement sum of ``data`` (padded with a zero byte if odd) plus ``initial``."""
    total = int.from_bytes(data, "big")
    if len(data) & 1:
        total <<= 8  # pad to a whole 16-bit word with a zero byte (RFC 1071 §4.1)
    return fold(total + initial)


def _py_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The RFC 1071 checksum of ``data`` (with its checksum field zeroed) plus ``initial``."""
    return ~_py_ones_sum(data, initial) & 0xFFFF


def _py_verify(data: bytes | bytearray | memoryview, initial: int = 0) -> bool:
    """True if ``data``, checksum field included, sums (with ``initial``) to 0xFFFF."""
    return _py_ones_sum(data, initial) == 0xFFFF


# The implementation is chosen once, at import (module docstring).
if compiled is not None:
    ones_sum = compiled.ones_sum
    checksum = compiled.checksum
    verify = compiled.verify
else:
    ones_sum = _py_ones_sum
    checksum = _py_checksum
    verify = _py_verify


def update16(old_checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for editing one 16-bit word in place.

    For a 32-bit field (an IPv4 address) call it twice, once per half.

    Eqn. 3 yields 0x0000 when the folded sum is 0xFFFF (-0). That field value
    fails verification if all other covered words are zero (e.g. an ICMP echo
    reply with id 0, seq 0 and no data), whereas 0xFFFF verifies in every case
    where 0x0000 does: so -0 is returned as 0xFFFF, as a full computation would.
    """
    total = (~old_checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF) or 0xFFFF


def pseudo_header(src: int, dst: int, protocol: int, length: int) -> int:
    """Unfolded sum of the IPv4 or IPv6 pseudo-header (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1).

    ``src``/``dst`` are the addresses as integers (``int(address)``). A 32- or
    128-bit value is congruent to the sum of its 16-bit words mod 0xFFFF, and the
    IPv6 pseudo-header's 32-bit length and zero padding sum like IPv4's 16-bit
    fields, so one expression serves both families.
    """
    return src + dst + protocol + length


class TxChecksum(enum.Enum):
    """What software writes into an L4 checksum field on transmit."""

    FULL = "full"  # compute the checksum in software
    # write only the folded pseudo-header sum; the device finishes (virtio NEEDS_CSUM)
    PARTIAL = "partial"
    NONE = "none"  # leave the field zero (tests, or a device that recomputes everything)


@dataclass(frozen=True, slots=True)
class ChecksumCaps:
    """L4 (ICMP/UDP/TCP) checksum duties of software for one device.

    The IPv4 *header* checksum is always filled and verified in software: it is
    20 bytes and no device here offloads it.
    """

    verify: bool = True
    tx: TxChecksum = TxChecksum.FULL

    @property
    def offloaded(self) -> bool:
        return self.tx is TxChecksum.PARTIAL


CHECKSUM_SOFTWARE = ChecksumCaps()
