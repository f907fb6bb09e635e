"""The 8-octet header ICMPv4 (RFC 792) and ICMPv6 (RFC 4443 §2.1) share.

Contract: :class:`IcmpHeaderView` gives field access and in-place edits to
type, code, checksum and the echo identifier/sequence number; the version
subclasses add what differs (checksum scope, type-specific fields). It checks
nothing itself: subclasses' ``checked()`` validate the length.
"""

from __future__ import annotations

import struct

__all__ = ["HEADER_LEN", "IcmpHeaderView"]

HEADER_LEN = 8
_U16 = struct.Struct("!H")
_TYPE_OFFSET = 0
_CODE_OFFSET = 1
_CHECKSUM_OFFSET = 2
_ECHO_IDENT_OFFSET = 4  # RFC 792 Echo / RFC 4443 §4.1: identifier
_ECHO_SEQ_NO_OFFSET = 6  # RFC 792 Echo / RFC 4443 §4.1: sequence number


class IcmpHeaderView:
    """Fields common to ICMPv4 and ICMPv6 messages, over a ``memoryview``."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(buf)

    @property
    def msg_type(self) -> int:
        return self.buf[_TYPE_OFFSET]

    @msg_type.setter
    def msg_type(self, value: int) -> None:
        self.buf[_TYPE_OFFSET] = value

    @property
    def code(self) -> int:
        return self.buf[_CODE_OFFSET]

    @code.setter
    def code(self, value: int) -> None:
        self.buf[_CODE_OFFSET] = value

    @property
    def checksum(self) -> int:
        value: int = _U16.unpack_from(self.buf, _CHECKSUM_OFFSET)[0]
        return value

    @checksum.setter
    def checksum(self, value: int) -> None:
        _U16.pack_into(self.buf, _CHECKSUM_OFFSET, value)

    @property
    def echo_ident(self) -> int:
        value: int = _U16.unpack_from(self.buf, _ECHO_IDENT_OFFSET)[0]
        return value

    @echo_ident.setter
    def echo_ident(self, value: int) -> None:
        _U16.pack_into(self.buf, _ECHO_IDENT_OFFSET, value)

    @property
    def echo_seq_no(self) -> int:
        value: int = _U16.unpack_from(self.buf, _ECHO_SEQ_NO_OFFSET)[0]
        return value

    @echo_seq_no.setter
    def echo_seq_no(self, value: int) -> None:
        _U16.pack_into(self.buf, _ECHO_SEQ_NO_OFFSET, value)

    @property
    def payload(self) -> memoryview:
        """Echo data, or the quoted packet of an error message."""
        return self.buf[HEADER_LEN:]
