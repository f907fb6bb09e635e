"""Frame paths: the link and IP headers every frame from one address to another starts with.

Contract:
- The IP layer makes a :class:`FramePath` (``IpHost.path``) for one source,
  destination and transport protocol once the next hop's link-layer address is
  known. It is good for the frames built in the same ``egress`` call: routes and
  neighbour entries may change between calls, so a transport asks again per
  call, never keeps one (the IP layer keeps them, and hands the same one out
  again while route and neighbour are unchanged). A path is never modified.
- ``template`` is the Ethernet header followed by the IP header with its length
  fields (and, IPv4, identification and header checksum) zero; ``l4_offset`` is
  its length, where the transport header starts. ``pseudo`` is the unfolded
  pseudo-header sum without the length (RFC 9293 §3.1, RFC 8200 §8.1), so a
  segment's is ``pseudo + length``. ``header_sum`` is the IPv4 header's ones'
  sum with the zeroed fields (RFC 1071: adding the length and identification
  to it and folding gives the header checksum without reading the header again);
  0 for IPv6, which has no header checksum.
- A transport builds a frame with :func:`start_frame` (the template, then room
  for its header), writes its header and checksum at ``l4_offset``, and gives the
  frame and the payload to ``IpHost.send_on``, which fills the lengths and queues
  the frame *gathered*: ``(headers, payload)``, the payload still the caller's
  buffer, so no payload byte is copied between the application's ``write`` and
  the device (:data:`OutFrame`). A frame without payload is queued as ``bytes``.
  With ``gso_size`` (TSO) the packet may exceed the MTU, up to the IP length
  fields' limit; it is queued as ``(headers, payload, gso_size)`` for the loop to
  mark (virtio-net GSO) and the device to cut into ``gso_size``-byte segments.

Why: per segment this replaces a route lookup, a neighbour lookup, two header
objects and three concatenations of the payload (TCP behind its header, IP behind
its header, Ethernet behind its header) with one small allocation and a few
integer operations (docs/design.md, "The hot path").
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["FramePath", "OutFrame", "Payload", "start_frame"]

#: A payload referenced by an outgoing frame: immutable application bytes or a view of them.
Payload: TypeAlias = bytes | memoryview
#: A frame the stack emits: contiguous, gathered as ``(headers, payload)``, or a TCP
#: super-segment ``(headers, payload, gso_size)`` for a device that segments (TSO).
OutFrame: TypeAlias = bytes | tuple[bytearray, Payload] | tuple[bytearray, Payload, int]


class FramePath:
    """See the module contract."""

    __slots__ = ("header_sum", "l4_offset", "pseudo", "template")

    def __init__(self, template: bytes, pseudo: int, header_sum: int = 0) -> None:
        self.template = template
        self.l4_offset = len(template)
        self.pseudo = pseudo
        self.header_sum = header_sum

    def __repr__(self) -> str:
        return f"FramePath({self.template.hex()}, l4_offset={self.l4_offset})"


def start_frame(path: FramePath, header_len: int) -> bytearray:
    """A new frame buffer: the path's headers, then ``header_len`` zero bytes."""
    frame = bytearray(path.l4_offset + header_len)
    frame[:path.l4_offset] = path.template
    return frame
