"""Test topologies: a network namespace with the Linux kernel as the stack's peer.

Contract:

- :func:`create_topology` makes a new network namespace (default name
  ``ethox-<pid>-<n>``) holding one link between the kernel and the user-space stack,
  and returns a :class:`Topology` describing it; :func:`destroy_topology` removes it
  again; ``with topology(...) as topo:`` does both, and removes it even when the body
  raises (``KeyboardInterrupt`` included). Nothing is created outside the namespace.
- ``kind="tap"``: a persistent TAP ``ethox-t0``. Its kernel side carries the kernel
  addresses; the stack opens the same interface through ``/dev/net/tun``
  (``device_spec`` = ``tap:ethox-t0,netns=NS``). The TAP is created single-queue and
  without ``vnet_hdr``: ``TUNSETIFF`` on a persistent TAP replaces ``IFF_VNET_HDR``
  with whatever the attaching device asks for (so ``offload=on`` and ``off`` both
  attach), but refuses an ``IFF_MULTI_QUEUE`` mismatch with EINVAL — a device opening
  it must not ask for multi-queue.
- ``kind="veth"``: a veth pair; ``ethox-k0`` is the kernel's end (addressed),
  ``ethox-s0`` the stack's end for an AF_PACKET socket (``device_spec`` =
  ``packet:ethox-s0,netns=NS``). The stack's end is up, has no address, IPv6 disabled
  and ARP off, so the kernel neither chatters on it nor answers for anything there.
- Addresses: the kernel has :data:`KERNEL_IPV4` (198.18.0.1/24) and :data:`KERNEL_IPV6`
  (fd00::1/64, no DAD). :data:`STACK_IPV4` (198.18.0.2/24) and :data:`STACK_IPV6`
  (fd00::2/64) are for the user-space stack and are assigned to no kernel interface:
  a kernel owning the stack's address would answer or reset the stack's traffic.
- ``txqueuelen`` (default 10000) is raised on the kernel-facing interfaces because a
  TAP drops bursts beyond its queue (docs/PLATFORM.md); ``mtu`` is set on every
  interface created.
- Removal deletes the interfaces explicitly, then the namespace, so they vanish even
  if some process still holds the namespace open. It copes with a half-created
  topology, and removing a namespace that does not exist is a no-op.
  ``Topology.destroy()`` also ends the processes started with ``Topology.popen()``.
- Needs root; otherwise :class:`TopologyError` says so. Every command runs with a
  timeout, so nothing here waits forever.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Interface, IPv6Interface
from types import TracebackType
from typing import Any

from .device.nsenter import NETNS_RUN_DIR, in_netns
from .device.spec import DeviceSpec

__all__ = [
    "KERNEL_IPV4",
    "KERNEL_IPV6",
    "STACK_IPV4",
    "STACK_IPV6",
    "TOPOLOGY_KINDS",
    "Topology",
    "TopologyError",
    "create_topology",
    "destroy_topology",
    "topology",
]

log = logging.getLogger("ethox_asyncio.netns")

KERNEL_IPV4 = IPv4Interface("198.18.0.1/24")
KERNEL_IPV6 = IPv6Interface("fd00::1/64")
STACK_IPV4 = IPv4Interface("198.18.0.2/24")
STACK_IPV6 = IPv6Interface("fd00::2/64")

TOPOLOGY_KINDS = ("tap", "veth")
TAP_IFNAME = "ethox-t0"
VETH_KERNEL_IFNAME = "ethox-k0"
VETH_STACK_IFNAME = "ethox-s0"

#: Seconds any one command may take; `ip` itself answers in milliseconds.
COMMAND_TIMEOUT = 30.0
_PROCESS_EXIT_TIMEOUT = 5.0
_MAX_NAME_ATTEMPTS = 1000
_names = itertools.count()


class TopologyError(RuntimeError):
    """A topology could not be created or removed; the message says which step failed."""


class Topology:
    """One namespace with a kernel-to-stack link (see the module doc for what is in it)."""

    def __init__(self, netns: str, kind: str, *, mtu: int, txqueuelen: int) -> None:
        self.netns = netns
        self.kind = kind
        self.mtu = mtu
        self.txqueuelen = txqueuelen
        if kind == "tap":
            self.kernel_ifname = self.stack_ifname = TAP_IFNAME
        else:
            self.kernel_ifname = VETH_KERNEL_IFNAME
            self.stack_ifname = VETH_STACK_IFNAME
        self.kernel_ipv4 = KERNEL_IPV4
        self.kernel_ipv6 = KERNEL_IPV6
        self.stack_ipv4 = STACK_IPV4
        self.stack_ipv6 = STACK_IPV6
        self._processes: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"<Topology {self.kind} netns={self.netns} stack_ifname={self.stack_ifname}>"

    @property
    def kernel_addresses(self) -> tuple[IPv4Interface, IPv6Interface]:
        return (self.kernel_ipv4, self.kernel_ipv6)

    @property
    def stack_addresses(self) -> tuple[IPv4Interface, IPv6Interface]:
        return (self.stack_ipv4, self.stack_ipv6)

    @property
    def device_spec(self) -> str:
        """The device string that opens the stack's side (for ``ETHOX_DEVICE``)."""
        if self.kind == "tap":
            options = {"netns": self.netns}
            if self.mtu != 1500:  # TapDevice would otherwise assume the default MTU
                options["mtu"] = str(self.mtu)
            return str(DeviceSpec("tap", self.stack_ifname, options))
        return str(DeviceSpec("packet", self.stack_ifname, {"netns": self.netns}))

    def environment(self) -> dict[str, str]:
        """``ETHOX_*`` variables that point a stack at this topology."""
        env = {
            "ETHOX_DEVICE": self.device_spec,
            "ETHOX_ADDRESS": ",".join(str(address) for address in self.stack_addresses),
        }
        if self.mtu != 1500:
            env["ETHOX_MTU"] = str(self.mtu)
        return env

    def run(self, *cmd: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run(cmd, **kwargs)`` inside the namespace (timeout defaults to
        :data:`COMMAND_TIMEOUT`)."""
        kwargs.setdefault("timeout", COMMAND_TIMEOUT)
        return subprocess.run(["ip", "netns", "exec", self.netns, *cmd], **kwargs)

    def popen(self, *cmd: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen(cmd, **kwargs)`` inside the namespace; ``destroy()`` ends
        it if it is still running then."""
        process = subprocess.Popen(["ip", "netns", "exec", self.netns, *cmd], **kwargs)
        self._processes.append(process)
        return process

    def destroy(self) -> None:
        """End the processes ``popen()`` started, then remove the namespace. Idempotent."""
        processes, self._processes = self._processes, []
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=_PROCESS_EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait(timeout=_PROCESS_EXIT_TIMEOUT)
        destroy_topology(self.netns)

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.destroy()


def _check_privileges() -> None:
    if os.geteuid() != 0:
        raise TopologyError("network namespaces need root (CAP_SYS_ADMIN)")
    if shutil.which("ip") is None:
        raise TopologyError("test topologies need iproute2's `ip` command on PATH")


def _ip(*args: str) -> None:
    """Run one ``ip`` command; raise ``TopologyError`` quoting it and its message on failure."""
    cmd = ["ip", *args]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise TopologyError(f"`{' '.join(cmd)}` did not finish in {COMMAND_TIMEOUT} s") from None
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        raise TopologyError(f"`{' '.join(cmd)}` failed: {message}")


def _netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_RUN_DIR, name))


def _check_name(name: str) -> None:
    # `ip netns` stores a namespace as the file /run/netns/<name>.
    if not name or "/" in name or name in (".", "..") or "," in name or "=" in name:
        raise TopologyError(f"{name!r} is not a usable namespace name "
                            "(one path component, without ',' or '=')")


def _new_name() -> str:
    for _ in range(_MAX_NAME_ATTEMPTS):
        name = f"ethox-{os.getpid()}-{next(_names)}"
        if not _netns_exists(name):  # a leftover of an earlier process with our pid
            return name
    raise TopologyError(f"no free namespace name ethox-{os.getpid()}-N "
                        f"after {_MAX_NAME_ATTEMPTS} tries")


def _disable_ipv6(netns: str, ifname: str) -> None:
    # /proc/sys/net shows the namespace of the thread that opens it.
    with in_netns(netns), open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as knob:
        knob.write("1")


def _build_tap(topo: Topology) -> None:
    ns, ifname = topo.netns, topo.kernel_ifname
    _ip("-n", ns, "tuntap", "add", "dev", ifname, "mode", "tap")
    _ip("-n", ns, "link", "set", "dev", ifname, "mtu", str(topo.mtu),
        "txqueuelen", str(topo.txqueuelen), "up")


def _build_veth(topo: Topology) -> None:
    ns = topo.netns
    _ip("-n", ns, "link", "add", topo.kernel_ifname, "mtu", str(topo.mtu),
        "txqueuelen", str(topo.txqueuelen), "type", "veth",
        "peer", "name", topo.stack_ifname, "mtu", str(topo.mtu))
    # Before the link comes up, so the kernel never sends a router or multicast
    # listener solicitation from the stack's end.
    _disable_ipv6(ns, topo.stack_ifname)
    _ip("-n", ns, "link", "set", "dev", topo.stack_ifname, "arp", "off", "up")
    _ip("-n", ns, "link", "set", "dev", topo.kernel_ifname, "up")


def create_topology(
    kind: str = "tap", name: str | None = None, *, txqueuelen: int = 10000, mtu: int = 1500
) -> Topology:
    """Create a namespace with a kernel-to-stack link of ``kind`` (see the module doc)."""
    if kind not in TOPOLOGY_KINDS:
        raise TopologyError(f"unknown topology kind {kind!r}; known: {', '.join(TOPOLOGY_KINDS)}")
    for option, value in (("txqueuelen", txqueuelen), ("mtu", mtu)):
        if value < 1:
            raise TopologyError(f"{option} must be positive, got {value}")
    _check_privileges()
    if name is None:
        name = _new_name()
    else:
        _check_name(name)
        if _netns_exists(name):
            raise TopologyError(f"network namespace {name!r} already exists (remove it with "
                                f"`python -m ethox_asyncio netns down --name {name}`)")
    _ip("netns", "add", name)
    topo = Topology(name, kind, mtu=mtu, txqueuelen=txqueuelen)
    try:
        _ip("-n", name, "link", "set", "dev", "lo", "up")
        (_build_tap if kind == "tap" else _build_veth)(topo)
        _ip("-n", name, "address", "add", str(topo.kernel_ipv4), "dev", topo.kernel_ifname)
        _ip("-n", name, "address", "add", str(topo.kernel_ipv6), "dev", topo.kernel_ifname,
            "nodad")
    except BaseException:
        destroy_topology(name)
        raise
    log.info("created %s topology in netns %s", kind, name)
    return topo


def destroy_topology(name: str) -> bool:
    """Remove namespace ``name`` and the interfaces a topology puts in it; return False
    (and do nothing) if there is no such namespace."""
    _check_name(name)
    _check_privileges()
    if not _netns_exists(name):
        return False
    # Delete the links first: a process still inside the namespace would keep it, and
    # them, alive after `ip netns del`. Deleting one veth end removes its peer too.
    for ifname in (TAP_IFNAME, VETH_KERNEL_IFNAME):
        result = subprocess.run(["ip", "-n", name, "link", "del", "dev", ifname],
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        if result.returncode != 0 and "Cannot find device" not in result.stderr:
            log.warning("could not delete %s in netns %s: %s", ifname, name,
                        result.stderr.strip())
    _ip("netns", "del", name)
    log.info("removed netns %s", name)
    return True


@contextmanager
def topology(
    kind: str = "tap", name: str | None = None, *, txqueuelen: int = 10000, mtu: int = 1500
) -> Iterator[Topology]:
    """``create_topology(...)`` for the body of a ``with``; always destroyed afterwards."""
    topo = create_topology(kind, name, txqueuelen=txqueuelen, mtu=mtu)
    try:
        yield topo
    finally:
        topo.destroy()

