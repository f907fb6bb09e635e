"""Test topologies (ethox_asyncio/netns.py) and the `netns` CLI, against the real kernel.

Every namespace here is made by the code under test and must be gone afterwards; the
autouse fixture checks that no test leaves one behind. Every name a test makes contains
this process's pid, so namespaces that other programs create meanwhile do not count.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

import pytest

from ethox_asyncio import cli
from ethox_asyncio.device.nsenter import in_netns
from ethox_asyncio.device.spec import parse_device_spec
from ethox_asyncio.netns import (
    KERNEL_IPV4,
    KERNEL_IPV6,
    STACK_IPV4,
    STACK_IPV6,
    Topology,
    TopologyError,
    create_topology,
    destroy_topology,
    topology,
)

OUR_IFNAMES = {"ethox-t0", "ethox-k0", "ethox-s0"}
STACK_MAC = bytes.fromhex("020000000002")
SIOCGIFFLAGS = 0x8913
IFF_RUNNING = 0x40
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x4000, 0x0100
ETH_P_ALL, ETH_P_ARP = 0x0003, 0x0806


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    return {entry["name"] for entry in json.loads(listing or "[]")}


def root_ifnames() -> set[str]:
    listing = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    return {link["ifname"] for link in json.loads(listing)}


def links(topo: Topology) -> dict[str, dict[str, Any]]:
    result = topo.run("ip", "-j", "-d", "address", "show", capture_output=True, text=True,
                      check=True)
    return {link["ifname"]: link for link in json.loads(result.stdout)}


def addresses(link: dict[str, Any]) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["scope"] == "global"}


def ours(names: set[str]) -> set[str]:
    return {name for name in names if str(os.getpid()) in name.split("-")}


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before_ns, before_links = namespaces(), root_ifnames()
    yield
    assert ours(namespaces()) == ours(before_ns)
    assert root_ifnames() & OUR_IFNAMES <= before_links & OUR_IFNAMES


# --- the kernel's answers, seen from the stack's side -------------------------------------

def arp_request(target: IPv4Address) -> bytes:
    """Who has ``target``? Tell 198.18.0.2 (the stack's address, RFC 826)."""
    ethernet = b"\xff" * 6 + STACK_MAC + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, STACK_MAC,
                      STACK_IPV4.ip.packed, bytes(6), target.packed)
    return ethernet + arp


def arp_replies(fd: int, *, within: float) -> set[IPv4Address]:
    """Sender addresses of the ARP replies read from ``fd`` until ``within`` seconds pass."""
    senders: set[IPv4Address] = set()
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], remaining)[0]:
            break
        frame = os.read(fd, 65536)
        ethertype, operation = struct.unpack_from("!H6xH", frame, 12)
        if ethertype == ETH_P_ARP and operation == 2 and frame[:6] == STACK_MAC:
            senders.add(IPv4Address(frame[28:32]))
    return senders


def wait_until_running(ifname: str) -> None:
    """Attaching gives the TAP carrier, but the kernel's transmit queue works only once
    link-watch has run (IFF_RUNNING); before that the kernel's ARP replies are lost."""
    deadline = time.monotonic() + 2.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        while time.monotonic() < deadline:
            request = struct.pack("16sH22x", ifname.encode(), 0)
            flags = struct.unpack_from("16xH", fcntl.ioctl(control, SIOCGIFFLAGS, request))[0]
            if flags & IFF_RUNNING:
                return
            time.sleep(0.005)
    raise AssertionError(f"{ifname} never became operationally up")


def open_stack_side(topo: Topology) -> int:
    """A raw descriptor on the stack's interface, opened inside the namespace."""
    with in_netns(topo.netns):
        if topo.kind == "tap":
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", topo.stack_ifname.encode(),
                                                   IFF_TAP | IFF_NO_PI))
            wait_until_running(topo.stack_ifname)
            return fd
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((topo.stack_ifname, 0))
        sock.setblocking(False)
        return sock.detach()


@pytest.mark.netns
@pytest.mark.parametrize("kind", ["tap", "veth"])
def test_the_kernel_answers_for_its_address_and_not_for_the_stacks(kind: str) -> None:
    with topology(kind) as topo:
        fd = open_stack_side(topo)
        try:
            os.write(fd, arp_request(KERNEL_IPV4.ip))
            assert arp_replies(fd, within=2.0) == {KERNEL_IPV4.ip}
            os.write(fd, arp_request(STACK_IPV4.ip))
            assert arp_replies(fd, within=0.5) == set()
        finally:
            os.close(fd)
        for address in (STACK_IPV4.ip, STACK_IPV6.ip):
            ping = topo.run("ping", "-c", "1", "-W", "1", str(address), capture_output=True)
            assert ping.returncode != 0  # nobody owns it until a stack runs


# --- what a topology contains -------------------------------------------------------------

@pytest.mark.netns
def test_tap_topology_layout() -> None:
    with topology("tap") as topo:
        assert topo.kind == "tap"
        assert topo.netns.startswith(f"ethox-{os.getpid()}-")
        assert topo.netns in namespaces()
        assert topo.stack_ifname == topo.kernel_ifname == "ethox-t0"
        assert topo.kernel_addresses == (KERNEL_IPV4, KERNEL_IPV6)
        assert topo.stack_addresses == (STACK_IPV4, STACK_IPV6)
        assert str(KERNEL_IPV4) == "198.18.0.1/24" and str(KERNEL_IPV6) == "fd00::1/64"
        assert str(STACK_IPV4) == "198.18.0.2/24" and str(STACK_IPV6) == "fd00::2/64"
        by_name = links(topo)
        assert set(by_name) == {"lo", "ethox-t0"}
        tap = by_name["ethox-t0"]
        assert addresses(tap) == {"198.18.0.1/24", "fd00::1/64"}
        assert tap["linkinfo"]["info_kind"] == "tun"
        assert tap["linkinfo"]["info_data"]["type"] == "tap"
        assert tap["txqlen"] == 10000 and tap["mtu"] == 1500
        assert "UP" in tap["flags"]
        spec = parse_device_spec(topo.device_spec)
        assert (spec.kind, spec.name, spec.options) == ("tap", "ethox-t0", {"netns": topo.netns})
        assert topo.environment() == {"ETHOX_DEVICE": f"tap:ethox-t0,netns={topo.netns}",
                                      "ETHOX_ADDRESS": "198.18.0.2/24,fd00::2/64"}
    assert topo.netns not in namespaces()


@pytest.mark.netns
def test_veth_topology_layout() -> None:
    with topology("veth", mtu=9000, txqueuelen=2000) as topo:
        assert (topo.kernel_ifname, topo.stack_ifname) == ("ethox-k0", "ethox-s0")
        by_name = links(topo)
        assert set(by_name) == {"lo", "ethox-k0", "ethox-s0"}
        kernel, stack = by_name["ethox-k0"], by_name["ethox-s0"]
        assert addresses(kernel) == {"198.18.0.1/24", "fd00::1/64"}
        assert stack["addr_info"] == []  # not even an IPv6 link-local address
        assert "NOARP" in stack["flags"] and "UP" in stack["flags"]
        assert kernel["mtu"] == stack["mtu"] == 9000
        assert kernel["txqlen"] == 2000
        disabled = topo.run("cat", "/proc/sys/net/ipv6/conf/ethox-s0/disable_ipv6",
                            capture_output=True, text=True, check=True).stdout
        assert disabled.strip() == "1"
        assert topo.device_spec == f"packet:ethox-s0,netns={topo.netns}"
        assert topo.environment()["ETHOX_MTU"] == "9000"


@pytest.mark.netns
def test_tap_mtu_travels_in_the_device_string() -> None:
    with topology("tap", mtu=9000) as topo:
        assert parse_device_spec(topo.device_spec).options["mtu"] == "9000"
        assert links(topo)["ethox-t0"]["mtu"] == 9000


@pytest.mark.netns
def test_the_persistent_tap_accepts_either_vnet_header_setting_but_not_multi_queue() -> None:
    """What the module doc promises TapDevice: IFF_VNET_HDR may differ, multi-queue not."""
    with topology("tap") as topo, in_netns(topo.netns):
        for flags in (IFF_TAP | IFF_NO_PI, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", b"ethox-t0", flags))
            finally:
                os.close(fd)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            with pytest.raises(OSError) as info:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", b"ethox-t0",
                                                       IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE))
            assert info.value.errno == 22  # EINVAL
        finally:
            os.close(fd)


# --- naming -------------------------------------------------------------------------------

@pytest.mark.netns
def test_explicit_names_and_their_errors() -> None:
    name = f"ethox-test-{os.getpid()}"
    with topology("veth", name) as topo:
        assert topo.netns == name
        with pytest.raises(TopologyError, match=f"network namespace '{name}' already exists"):
            create_topology("tap", name)
        assert name in namespaces()  # the failed attempt did not remove the existing one
    for bad in ("a/b", "..", "x,y", ""):
        with pytest.raises(TopologyError, match="not a usable namespace name"):
            create_topology("tap", bad)
    with pytest.raises(TopologyError, match="unknown topology kind 'bridge'; known: tap, veth"):
        create_topology("bridge")


@pytest.mark.netns
def test_auto_names_are_distinct() -> None:
    with topology("tap") as first, topology("tap") as second:
        assert first.netns != second.netns
        assert {first.netns, second.netns} <= namespaces()


# --- removal ------------------------------------------------------------------------------

@pytest.mark.netns
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_removed_when_the_body_raises(error: type[BaseException]) -> None:
    with pytest.raises(error), topology("veth") as topo:
        name = topo.netns
        raise error("boom")
    assert name not in namespaces()


@pytest.mark.netns
def test_a_half_built_topology_is_removed() -> None:
    name = f"ethox-half-{os.getpid()}"
    with pytest.raises(TopologyError, match="mtu"):
        create_topology("tap", name, mtu=70000)  # `ip link set … mtu 70000` fails
    assert name not in namespaces()


@pytest.mark.netns
def test_destroy_of_a_missing_namespace_is_a_no_op() -> None:
    assert destroy_topology(f"ethox-missing-{os.getpid()}") is False


@pytest.mark.netns
def test_links_go_even_while_a_process_holds_the_namespace() -> None:
    with topology("veth") as topo:
        holder = topo.popen("sleep", "30")
        time.sleep(0.2)  # let `ip netns exec` enter the namespace and exec sleep
        assert destroy_topology(topo.netns) is True
        inside = subprocess.run(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "ip", "-j",
                                 "link", "show"], capture_output=True, text=True, check=True,
                                timeout=10).stdout
        assert {link["ifname"] for link in json.loads(inside)} == {"lo"}
    assert holder.returncode is not None  # destroy() ended what popen() started


# --- permissions and the CLI --------------------------------------------------------------

def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TopologyError, match=r"^network namespaces need root \(CAP_SYS_ADMIN\)$"):
        create_topology("tap")
    with pytest.raises(TopologyError, match="need root"):
        destroy_topology(f"ethox-missing-{os.getpid()}")
    for argv in (["netns", "up"], ["netns", "down", "--name", f"ethox-missing-{os.getpid()}"]):
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == ("ethox-asyncio netns: network namespaces need root "
                                "(CAP_SYS_ADMIN)\n")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ethox_asyncio", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.netns
@pytest.mark.parametrize("kind", ["tap", "veth"])
def test_cli_up_down_round_trip(kind: str) -> None:
    name = f"ethox-cli-{os.getpid()}-{kind}"
    up = run_cli("netns", "up", "--kind", kind, "--name", name)
    assert up.returncode == 0, up.stderr
    settings = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
    spec = parse_device_spec(settings["ETHOX_DEVICE"])
    try:
        assert spec.options["netns"] == name
        assert name in namespaces()
        assert f"netns   {name} ({kind})" in up.stdout
        assert "198.18.0.1/24 fd00::1/64" in up.stdout
        assert settings["ETHOX_ADDRESS"] == "198.18.0.2/24,fd00::2/64"
        assert spec.name == ("ethox-t0" if kind == "tap" else "ethox-s0")
        assert f"netns down --name {name}" in up.stdout
    finally:
        down = run_cli("netns", "down", "--name", name)
    assert (down.returncode, down.stdout) == (0, f"removed netns {name}\n")
    assert name not in namespaces()
    again = run_cli("netns", "down", "--name", name)
    assert (again.returncode, again.stdout) == (0, f"no netns {name}: nothing to remove\n")


@pytest.mark.netns
def test_cli_errors_are_one_line() -> None:
    name = f"ethox-cli-{os.getpid()}"
    assert run_cli("netns", "up", "--name", name).returncode == 0
    try:
        clash = run_cli("netns", "up", "--name", name)
        assert clash.returncode == 2
        assert clash.stderr.count("\n") == 1 and "already exists" in clash.stderr
    finally:
        assert run_cli("netns", "down", "--name", name).returncode == 0
