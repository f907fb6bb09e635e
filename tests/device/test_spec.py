"""Device strings: every accepted form, every error message, and open_device()."""

from __future__ import annotations

import importlib
import select
import struct
import time
from typing import Any

import pytest

from ethox_asyncio.device.base import Device
from ethox_asyncio.device.memory import MemoryEndpoint
from ethox_asyncio.device.spec import (
    DEVICE_KINDS,
    DeviceSpec,
    DeviceSpecError,
    memory_peer,
    open_device,
    parse_device_spec,
)
from ethox_asyncio.device.vnet import NO_OFFLOAD
from ethox_asyncio.netns import KERNEL_IPV4, STACK_IPV4, topology

STACK_MAC = bytes.fromhex("020000000002")
ETH_P_ARP = 0x0806


@pytest.mark.parametrize(
    ("text", "kind", "name", "options"),
    [
        ("tap:tap0", "tap", "tap0", {}),
        ("  tap:tap0  ", "tap", "tap0", {}),
        (
            "tap:tap0,netns=ethox-a,engine=plain,offload=off,mtu=9000,txqueuelen=10000",
            "tap",
            "tap0",
            {"netns": "ethox-a", "engine": "plain", "offload": "off", "mtu": "9000",
             "txqueuelen": "10000"},
        ),
        ("tap:t,engine=uring,max_batch=32,rx_buffers=256", "tap", "t",
         {"engine": "uring", "max_batch": "32", "rx_buffers": "256"}),
        ("tap:t,engine=auto", "tap", "t", {"engine": "auto"}),
        ("tap:t,engine=uring,uring_impl=python", "tap", "t",
         {"engine": "uring", "uring_impl": "python"}),
        ("packet:veth1,netns=ns,mode=ring,offload=on", "packet", "veth1",
         {"netns": "ns", "mode": "ring", "offload": "on"}),
        ("packet:eth0,mode=socket,max_batch=8", "packet", "eth0",
         {"mode": "socket", "max_batch": "8"}),
        ("packet:eth0,mode=auto", "packet", "eth0", {"mode": "auto"}),
        ("packet:eth0,mode=ring,ring_blocks=8,block_timeout_ms=2,socket_buffer_len=65536",
         "packet", "eth0", {"mode": "ring", "ring_blocks": "8", "block_timeout_ms": "2",
                            "socket_buffer_len": "65536"}),
        ("memory", "memory", None, {}),
        ("memory,mtu=9000,max_batch=4,rx_queue_len=16", "memory", None,
         {"mtu": "9000", "max_batch": "4", "rx_queue_len": "16"}),
        ("tap:abcdefghijklmno", "tap", "abcdefghijklmno", {}),  # 15 characters: the limit
    ],
)
def test_accepted_forms(text: str, kind: str, name: str | None, options: dict[str, str]) -> None:
    spec = parse_device_spec(text)
    assert (spec.kind, spec.name, spec.options) == (kind, name, options)
    assert str(spec) == text.strip()
    assert parse_device_spec(str(spec)) == spec


@pytest.mark.parametrize(
    ("word", "canonical"),
    [("on", "on"), ("true", "on"), ("1", "on"), ("ON", "on"), ("True", "on"),
     ("off", "off"), ("false", "off"), ("0", "off"), ("OFF", "off")],
)
def test_offload_spellings_are_canonicalised(word: str, canonical: str) -> None:
    spec = parse_device_spec(f"tap:tap0,offload={word}")
    assert spec.options == {"offload": canonical}
    assert str(spec) == f"tap:tap0,offload={canonical}"


def test_integers_and_spaces_are_canonicalised() -> None:
    spec = parse_device_spec("tap:tap0, mtu = 09000 ,txqueuelen=+10")
    assert spec.options == {"mtu": "9000", "txqueuelen": "10"}
    assert str(spec) == "tap:tap0,mtu=9000,txqueuelen=10"


def test_constructor_kwargs_are_typed() -> None:
    spec = parse_device_spec("tap:tap0,netns=a,engine=plain,offload=off,mtu=9000")
    assert spec.constructor_kwargs() == {"netns": "a", "engine": "plain", "offload": False,
                                         "mtu": 9000}
    assert parse_device_spec("packet:p,offload=1").constructor_kwargs() == {"offload": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty device string; expected one of tap:NAME, packet:IFNAME, memory"),
        ("   ", "empty device string"),
        ("tun:tap0", "unknown device kind 'tun' in 'tun:tap0'; known kinds: tap, packet, memory"),
        ("TAP:tap0", "unknown device kind 'TAP'"),
        (",mtu=1", "unknown device kind ''"),
        ("tap", "tap needs an interface name, e.g. tap:tap0"),
        ("tap:", "tap needs an interface name, e.g. tap:tap0"),
        ("packet", "packet needs an interface name, e.g. packet:veth1"),
        ("packet:,mode=ring", "packet needs an interface name"),
        ("memory:m0", "memory takes no name, got 'm0' (write just 'memory')"),
        ("tap:abcdefghijklmnop", "interface names have at most 15 characters, this one has 16"),
        ("tap:a/b", "not a valid interface name"),
        ("tap:a:b", "not a valid interface name"),
        ("tap:a b", "not a valid interface name"),
        ("tap:..", "not a valid interface name"),
        ("tap:tap0,mode=ring",
         "unknown option 'mode' for tap; valid options: engine, max_batch, mtu, netns, offload, "
         "rx_buffers, txqueuelen, uring_impl"),
        ("packet:p,engine=plain",
         "unknown option 'engine' for packet; valid options: block_timeout_ms, max_batch, mode, "
         "netns, offload, ring_blocks, socket_buffer_len"),
        ("memory,netns=x",
         "unknown option 'netns' for memory; valid options: max_batch, mtu, rx_queue_len"),
        ("tap:tap0,offload", "option 'offload' needs a value (offload=VALUE)"),
        ("tap:tap0,offload=", "option 'offload' needs a value"),
        ("tap:tap0,", "empty option in 'tap:tap0,' (stray comma?)"),
        ("tap:tap0,,mtu=1", "empty option"),
        ("tap:tap0,=on", "empty option"),
        ("tap:tap0,mtu=1,mtu=2", "option 'mtu' given twice"),
        ("tap:tap0,offload=yes", "offload='yes': must be on/off/true/false/1/0"),
        ("tap:tap0,engine=io_uring", "engine='io_uring': must be one of auto|uring|plain"),
        ("packet:p,mode=mmap", "mode='mmap': must be one of auto|socket|ring"),
        ("tap:tap0,mtu=0", "mtu='0': must be a positive integer"),
        ("tap:tap0,mtu=-5", "mtu='-5': must be a positive integer"),
        ("tap:tap0,mtu=1.5", "mtu='1.5': must be a positive integer"),
        ("tap:tap0,txqueuelen=lots", "txqueuelen='lots': must be a positive integer"),
        ("memory,rx_queue_len=0", "rx_queue_len='0': must be a positive integer"),
        ("tap:tap0,netns=a/b", "netns='a/b': must be a network namespace name"),
        ("tap:tap0,netns=..", "must be a network namespace name"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(DeviceSpecError) as info:
        parse_device_spec(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_known_kinds() -> None:
    assert DEVICE_KINDS == ("tap", "packet", "memory")


def test_hand_built_spec_is_validated_and_round_trips() -> None:
    spec = DeviceSpec("packet", "veth1", {"netns": "ns", "offload": "off"})
    assert str(spec) == "packet:veth1,netns=ns,offload=off"
    assert parse_device_spec(str(spec)) == spec
    with pytest.raises(DeviceSpecError, match="not in canonical form"):
        DeviceSpec("tap", "tap0", {"offload": "true"})
    with pytest.raises(DeviceSpecError, match="unknown option 'speed' for tap"):
        DeviceSpec("tap", "tap0", {"speed": "fast"})
    with pytest.raises(DeviceSpecError, match="not a valid interface name"):
        DeviceSpec("tap", "a,b")
    with pytest.raises(DeviceSpecError, match="unknown device kind 'tun'"):
        DeviceSpec("tun", "tun0")


def test_open_memory_gives_endpoint_zero_of_a_fresh_pair() -> None:
    device = open_device("memory,mtu=9000,max_batch=4")
    assert isinstance(device, MemoryEndpoint)
    peer = memory_peer(device)
    try:
        assert (device.index, peer.index) == (0, 1)
        assert memory_peer(peer) is device
        assert device.capabilities.mtu == 9000 and device.capabilities.max_batch == 4
        assert device.transmit([b"\x02" * 60]) == 1
        assert [bytes(frame) for frame in peer.receive(8)] == [b"\x02" * 60]
        other = open_device(parse_device_spec("memory"))
        assert isinstance(other, MemoryEndpoint)
        assert memory_peer(other) is not peer  # every open makes a new link
        other.close()
    finally:
        device.close()
        peer.close()


@pytest.mark.parametrize(
    ("text", "module", "class_name", "args", "kwargs"),
    [
        ("tap:tap9,netns=ns,engine=plain,offload=off,mtu=9000,txqueuelen=5",
         "ethox_asyncio.device.tap", "TapDevice", ("tap9",),
         {"netns": "ns", "engine": "plain", "offload": False, "mtu": 9000, "txqueuelen": 5}),
        ("packet:veth1,mode=ring,offload=on,max_batch=16,ring_blocks=4",
         "ethox_asyncio.device.packet", "PacketDevice", ("veth1",),
         {"mode": "ring", "offload": True, "max_batch": 16, "ring_blocks": 4}),
    ],
)
def test_open_device_passes_options_to_the_constructor(
    monkeypatch: pytest.MonkeyPatch, text: str, module: str, class_name: str,
    args: tuple[str, ...], kwargs: dict[str, Any],
) -> None:
    """The arguments open_device() builds, checked without opening anything."""
    imported = importlib.import_module(module)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    sentinel = object()

    def record(*call_args: Any, **call_kwargs: Any) -> object:
        calls.append((call_args, call_kwargs))
        return sentinel

    monkeypatch.setattr(imported, class_name, record)
    assert open_device(text) is sentinel
    assert calls == [(args, kwargs)]


def kernel_answers_arp(device: Device) -> bool:
    """Ask the kernel peer for 198.18.0.1's MAC through ``device``; True if it answers
    within 5 s. The request is repeated every 0.3 s, as ARP does: right after a TAP
    gets its carrier, the kernel drops its own transmissions until link-watch
    activates the queue (up to about a second)."""
    vnet = NO_OFFLOAD if device.capabilities.vnet_header else b""
    request = (vnet + b"\xff" * 6 + STACK_MAC + struct.pack("!H", ETH_P_ARP)
               + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, STACK_MAC,
                             STACK_IPV4.ip.packed, bytes(6), KERNEL_IPV4.ip.packed))
    deadline = time.monotonic() + 5.0
    resend_at = 0.0
    while (remaining := deadline - time.monotonic()) > 0:
        if time.monotonic() >= resend_at:
            assert device.transmit([request]) == 1
            resend_at = time.monotonic() + 0.3
        select.select([device.fileno()], [], [], min(remaining, 0.05))
        for frame in device.receive(64):
            ethernet = bytes(frame[len(vnet):])
            ethertype, operation = struct.unpack_from("!H6xH", ethernet, 12)
            if (ethertype, operation) == (ETH_P_ARP, 2) and ethernet[:6] == STACK_MAC:
                return ethernet[28:32] == KERNEL_IPV4.ip.packed
    return False


@pytest.mark.netns
@pytest.mark.parametrize("extra_options", ["", ",offload=off,engine=plain"])
def test_open_device_tap_in_a_topology(extra_options: str) -> None:
    from ethox_asyncio.device.tap import TapDevice

    with topology("tap") as topo:
        device = open_device(topo.device_spec + extra_options)
        try:
            assert isinstance(device, TapDevice)
            assert device.capabilities.vnet_header == (not extra_options)
            assert kernel_answers_arp(device)
        finally:
            device.close()


@pytest.mark.netns
@pytest.mark.parametrize("extra_options", ["", ",offload=off,mode=ring"])
def test_open_device_packet_in_a_topology(extra_options: str) -> None:
    from ethox_asyncio.device.packet import PacketDevice

    with topology("veth") as topo:
        device = open_device(topo.device_spec + extra_options)
        try:
            assert isinstance(device, PacketDevice)
            assert device.capabilities.vnet_header == (not extra_options)
            assert kernel_answers_arp(device)
        finally:
            device.close()
