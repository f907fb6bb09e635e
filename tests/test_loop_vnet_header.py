"""loop._with_vnet_header's shortcut for the usual segment (TCP in IPv4 without
options) gives what the general computation (partial_checksum_span, then the header
for that span) gives, for every frame shape, offload on and off."""

from __future__ import annotations

import random
from typing import Any

from ethox_asyncio import loop
from ethox_asyncio.stack.tcp.host import partial_checksum_span


def _general(frame: Any, offload: bool) -> Any:
    head = frame[0] if type(frame) is tuple else frame
    span = partial_checksum_span(head) if offload else None
    header = loop.NO_OFFLOAD if span is None else loop._needs_csum(span)
    return (header, *frame) if type(frame) is tuple else (header, frame)


def test_the_shortcut_matches_the_general_computation() -> None:
    rng = random.Random(8)
    ipv4 = bytearray(b"\0" * 12 + b"\x08\x00\x45" + b"\0" * 8 + b"\x06" + b"\0" * 40)
    ipv6 = bytearray(b"\0" * 12 + b"\x86\xdd\x60" + b"\0" * 5 + b"\x06" + b"\0" * 60)
    shortcut = 0
    for _ in range(5000):
        head = bytearray(rng.choice([ipv4, ipv6]))
        for _ in range(rng.randrange(3)):
            head[rng.choice([12, 13, 14, 20, 23])] = rng.choice([0, 6, 8, 0x45, 0x46, 0x86,
                                                                 0xDD, 17])
        del head[rng.randrange(20, len(head) + 1):]
        for frame in (bytes(head), (head, b"payload")):
            for offload in (True, False):
                assert loop._with_vnet_header(frame, offload) == _general(frame, offload)
        shortcut += loop._with_vnet_header(bytes(head), True)[0] is loop._NEEDS_CSUM_TCPV4
    assert shortcut > 200  # the shortcut was taken (284 times with this seed)
    assert loop._needs_csum((34, 16)) == loop._NEEDS_CSUM_TCPV4
