"""The one exception family raised by the wire codecs.

Contract: a codec given remote bytes either returns a parsed value or raises a
subclass of :class:`WireError`. It never lets ``IndexError``, ``struct.error`` or
``ValueError`` escape. The interface layer catches ``WireError``, drops the frame
and counts the reason (``type(exc).__name__``), so garbage from the wire never
reaches the event loop as an exception.
"""

from __future__ import annotations

__all__ = ["BadChecksum", "Malformed", "Truncated", "Unsupported", "WireError"]


class WireError(Exception):
    """Base class: the bytes are not a frame/packet/segment we can accept."""


class Truncated(WireError):
    """The buffer ends before the header, an option or the stated length does."""


class Malformed(WireError):
    """A field holds a value the protocol forbids (bad version, bad option length...)."""


class BadChecksum(WireError):
    """The checksum does not verify. Reported apart from Malformed on purpose."""


class Unsupported(WireError):
    """Well-formed, but a variant we do not implement (e.g. ARP for non-Ethernet)."""
