"""describe_frame: one line per frame, every layer decoded, never an exception."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.describe import describe_frame
from tests import golden


@pytest.mark.parametrize("name", golden.names())
def test_every_golden_frame_decodes_without_error(name: str) -> None:
    for frame in golden.load(name):
        line = describe_frame(frame)
        assert re.search(r"\[\w+: \w+: ", line) is None, line  # no "[layer: Error: ...]"


def test_layers_are_joined_in_order() -> None:
    syn = golden.load("tcp4_session")[0]
    layers = describe_frame(syn).split(" | ")
    assert layers[0].endswith("ethertype IPv4 (0x0800)")
    assert layers[1].startswith("IP 198.18.0.1 > 198.18.0.2: proto tcp (6)")
    assert layers[2].startswith("TCP ") and "[S]" in layers[2] and "mss 1460" in layers[2]


def test_bad_checksum_is_named() -> None:
    frame = bytearray(golden.load("udp4_echo")[0])
    frame[-1] ^= 0xFF
    assert describe_frame(frame).endswith("]")
    assert "BadChecksum" in describe_frame(frame)


def test_truncated_frame_is_named() -> None:
    frame = golden.load("tcp6_session")[0]
    assert "[ipv6: Truncated" in describe_frame(frame[:40])


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(describe_frame(data), str)


@settings(max_examples=300)
@given(st.sampled_from([f for n in golden.names() for f in golden.load(n)]),
       st.integers(0, 1500), st.integers(0, 255))
def test_never_raises_on_mutated_golden_frames(frame: bytes, position: int, value: int) -> None:
    mutated = bytearray(frame)
    mutated[position % len(mutated)] = value
    assert isinstance(describe_frame(mutated), str)
