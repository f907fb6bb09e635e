"""The event loop over the in-memory link, against a sans-IO peer interface.

The peer is an ``Interface`` on the link's other endpoint, pumped by a timer in the
same loop; it echoes UDP datagrams back. Runs on both bases (uvloop and asyncio).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

import pytest

import ethox_asyncio
import ethox_asyncio._transports
from ethox_asyncio.config import StackConfig
from ethox_asyncio.demo import EchoPeer
from ethox_asyncio.device.memory import MemoryLink
from ethox_asyncio.stack.wire.ethernet import EthernetAddress

PEER = IPv4Address("198.18.0.1")
OURS = "198.18.0.2"
PEER6 = IPv6Address("fd00::1")
OURS6 = "fd00::2"


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_and_peer(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[asyncio.AbstractEventLoop, EchoPeer]]:
    link = MemoryLink(2)
    config = StackConfig(addresses=(IPv4Interface(f"{OURS}/24"), IPv6Interface(f"{OURS6}/64")),
                         mac=EthernetAddress("02:00:00:00:00:02"))
    loop = ethox_asyncio.new_event_loop(config, device=link.endpoints[0], base=request.param)
    peer = EchoPeer(link.endpoints[1])

    def tick() -> None:
        peer.pump(loop.time())
        loop.call_later(0.002, tick)

    loop.call_soon(tick)
    yield loop, peer
    loop.close()
    link.close()


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.made = asyncio.Event()
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


def test_datagram_round_trip(loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer

    async def main() -> None:
        transport, protocol = await loop.create_datagram_endpoint(
            Collector, remote_addr=(str(PEER), 7))
        await asyncio.wait_for(protocol.made.wait(), 1)
        sockname = transport.get_extra_info("sockname")
        assert sockname[0] == OURS and sockname[1] > 0
        assert transport.get_extra_info("peername") == (str(PEER), 7)
        assert transport.get_extra_info("socket") is None
        transport.sendto(b"hello")
        data, addr = await asyncio.wait_for(protocol.datagrams.get(), 2)
        assert (data, addr) == (b"HELLO", (str(PEER), 7))
        transport.close()
        await asyncio.wait_for(protocol.lost.wait(), 1)

    loop.run_until_complete(main())


def test_ipv6_datagram_round_trip(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer

    async def main() -> None:
        transport, protocol = await loop.create_datagram_endpoint(
            Collector, remote_addr=(str(PEER6), 7))
        await asyncio.wait_for(protocol.made.wait(), 1)
        sockname = transport.get_extra_info("sockname")
        assert sockname[0] == OURS6 and sockname[1] > 0 and sockname[2:] == (0, 0)
        assert transport.get_extra_info("peername") == (str(PEER6), 7, 0, 0)
        transport.sendto(b"hello6")
        data, addr = await asyncio.wait_for(protocol.datagrams.get(), 2)
        assert (data, addr) == (b"HELLO6", (str(PEER6), 7, 0, 0))
        transport.close()
        server, server_protocol = await loop.create_datagram_endpoint(
            Collector, local_addr=("::", 0), family=socket.AF_INET6)
        assert server.get_extra_info("sockname")[0] == "::"
        server.sendto(b"x" * 3000, (str(PEER6), 7, 0, 0))  # fragmented both ways
        data, addr = await asyncio.wait_for(server_protocol.datagrams.get(), 2)
        assert (data, addr) == (b"X" * 3000, (str(PEER6), 7, 0, 0))
        server.close()

    loop.run_until_complete(main())


def test_ipv6_ping(loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer
    rtt = loop.run_until_complete(loop.ping(str(PEER6), timeout=2))  # type: ignore[attr-defined]
    assert 0 <= rtt < 2


def test_ping_measures_a_round_trip(loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]
                                    ) -> None:
    loop, _ = loop_and_peer
    rtt = loop.run_until_complete(loop.ping(str(PEER), timeout=2))  # type: ignore[attr-defined]
    assert 0 <= rtt < 2


def test_closed_port_reports_connection_refused(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer

    async def main() -> None:
        transport, protocol = await loop.create_datagram_endpoint(
            Collector, remote_addr=(str(PEER), 9))
        transport.sendto(b"anyone?")
        for _ in range(200):
            if protocol.errors:
                break
            await asyncio.sleep(0.01)
        assert protocol.errors and isinstance(protocol.errors[0], ConnectionRefusedError)
        transport.close()

    loop.run_until_complete(main())


def test_api_misuse_raises_clear_errors(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer

    async def main() -> None:
        transport, _ = await loop.create_datagram_endpoint(Collector, remote_addr=(str(PEER), 7))
        with pytest.raises(TypeError, match="bytes-like"):
            transport.sendto("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="Invalid address"):
            transport.sendto(b"x", ("198.18.0.9", 7))
        transport.close()
        with pytest.raises(OSError, match="not an address of the ethox interface"):
            await loop.create_datagram_endpoint(Collector, local_addr=("198.18.5.5", 0))
        with pytest.raises(ValueError, match="not a numeric IP address"):
            await loop.create_datagram_endpoint(Collector, remote_addr=("example.test", 7))
        first, _ = await loop.create_datagram_endpoint(Collector, local_addr=(OURS, 5000))
        with pytest.raises(OSError, match="5000"):
            await loop.create_datagram_endpoint(Collector, local_addr=(OURS, 5000))
        first.close()

    loop.run_until_complete(main())


def test_loopback_stays_on_the_kernel(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer

    async def main() -> None:
        transport, _ = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        assert transport.get_extra_info("socket") is not None  # a real kernel socket
        transport.close()

    loop.run_until_complete(main())


def test_inherited_loop_behaviour(loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]
                                  ) -> None:
    loop, _ = loop_and_peer

    async def main() -> int:
        fired = loop.create_future()
        loop.call_later(0.01, fired.set_result, 1)
        value = await fired
        value += await loop.run_in_executor(None, lambda: 41)
        return value

    assert loop.run_until_complete(main()) == 42


def test_run_and_runner_loop_factory() -> None:
    link = MemoryLink(2)
    config = StackConfig(addresses=(IPv4Interface(f"{OURS}/24"),))

    async def main() -> str:
        return type(asyncio.get_running_loop()).__name__

    name = ethox_asyncio.run(main(), config=config, device=link.endpoints[0])
    assert name.startswith("Ethox")
    link.close()


def test_inherited_signals_kernel_tcp_and_ordering(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    """What the loop inherits from its base works unchanged: signal handlers, kernel
    sockets (a TCP exchange over loopback), call_soon ordering."""
    import os
    import signal

    loop, _ = loop_and_peer

    async def main() -> tuple[bool, bytes, list[int]]:
        got_signal = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got_signal.set)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(got_signal.wait(), 2)
        loop.remove_signal_handler(signal.SIGUSR1)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"kernel tcp\n")
        answer = await asyncio.wait_for(reader.readline(), 2)
        writer.close()
        server.close()
        await server.wait_closed()

        order: list[int] = []
        done = loop.create_future()
        for index in range(5):
            loop.call_soon(order.append, index)
        loop.call_soon(done.set_result, None)
        await done
        return got_signal.is_set(), answer, order

    assert loop.run_until_complete(main()) == (True, b"KERNEL TCP\n", [0, 1, 2, 3, 4])


def test_broadcast_needs_allow_broadcast(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    loop, _ = loop_and_peer

    async def main() -> tuple[list[Exception], list[Exception]]:
        refused, refused_protocol = await loop.create_datagram_endpoint(
            Collector, local_addr=(OURS, 0))
        refused.sendto(b"to all", ("198.18.0.255", 7))
        allowed, allowed_protocol = await loop.create_datagram_endpoint(
            Collector, local_addr=(OURS, 0), allow_broadcast=True)
        allowed.sendto(b"to all", ("198.18.0.255", 7))
        await asyncio.sleep(0.05)
        refused.close()
        allowed.close()
        return refused_protocol.errors, allowed_protocol.errors

    refused_errors, allowed_errors = loop.run_until_complete(main())
    assert len(refused_errors) == 1 and isinstance(refused_errors[0], PermissionError)
    assert allowed_errors == []


def test_getaddrinfo_answers_numeric_hosts_like_the_kernel(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    loop, _ = loop_and_peer
    cases = [("198.18.0.1", 7, 0, socket.SOCK_DGRAM), ("fd00::1", "53", 0, 0),
             ("198.18.0.1", None, socket.AF_INET, socket.SOCK_STREAM)]
    expected = [sorted(socket.getaddrinfo(host, port, family, kind))
                for host, port, family, kind in cases]
    with pytest.raises(socket.gaierror) as kernel_says:
        socket.getaddrinfo("198.18.0.1", 7, socket.AF_INET6)

    def no_resolver(*args: object, **kwargs: object) -> None:
        raise AssertionError("the kernel resolver was asked about a numeric host")

    monkeypatch.setattr(socket, "getaddrinfo", no_resolver)
    results = [sorted(loop.run_until_complete(loop.getaddrinfo(host, port, family=family,
                                                               type=kind)))
               for host, port, family, kind in cases]
    assert results == expected
    with pytest.raises(socket.gaierror) as we_say:
        loop.run_until_complete(loop.getaddrinfo("198.18.0.1", 7, family=socket.AF_INET6))
    assert we_say.value.errno == kernel_says.value.errno


def test_a_loop_without_a_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETHOX_DEVICE", raising=False)
    for base in ("uvloop", "asyncio"):
        with pytest.raises(ValueError, match="needs a device"):
            ethox_asyncio.new_event_loop(StackConfig(), base=base)
    with pytest.raises(ValueError, match="base must be"):
        ethox_asyncio.new_event_loop(StackConfig(device="memory"), base="trio")


def test_policy_alone_configures_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that only sets the policy gets a loop configured from ETHOX_* variables."""
    monkeypatch.setenv("ETHOX_DEVICE", "memory")
    monkeypatch.setenv("ETHOX_ADDRESS", "198.18.0.2/24,fd00::2/64")
    monkeypatch.setenv("ETHOX_MAC", "02:00:00:00:00:42")
    loop = ethox_asyncio.EventLoopPolicy().new_event_loop()
    try:
        stack = loop._stack  # type: ignore[attr-defined]
        assert stack.mac == EthernetAddress("02:00:00:00:00:42")
        assert {str(a) for a in stack.local_addresses} >= {"198.18.0.2", "fd00::2"}

        async def sockname() -> tuple[str, int]:
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("198.18.0.2", 4242))
            name: tuple[str, int] = transport.get_extra_info("sockname")
            transport.close()
            return name

        assert loop.run_until_complete(sockname()) == ("198.18.0.2", 4242)
    finally:
        loop.close()


@pytest.fixture(params=["uvloop", "asyncio"])
def quiet_loop_and_peer(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[asyncio.AbstractEventLoop, EchoPeer]]:
    """Like ``loop_and_peer``, but the peer is pumped only when the test says so."""
    link = MemoryLink(2)
    config = StackConfig(addresses=(IPv4Interface(f"{OURS}/24"),),
                         mac=EthernetAddress("02:00:00:00:00:02"))
    loop = ethox_asyncio.new_event_loop(config, device=link.endpoints[0], base=request.param)
    peer = EchoPeer(link.endpoints[1])
    yield loop, peer
    loop.close()
    link.close()


class _Events(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.events: list[object] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.events.append(("data", data))

    def error_received(self, exc: Exception) -> None:
        self.events.append(("error", type(exc)))


async def _pumping_peer(loop: asyncio.AbstractEventLoop, peer: EchoPeer,
                        until: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = loop.time() + timeout
    while not until():
        assert loop.time() < deadline, "condition not reached in time"
        peer.pump(loop.time())
        await asyncio.sleep(0.001)


async def _early_arrivals(loop: asyncio.AbstractEventLoop, peer: EchoPeer, port: int,
                          datagrams: list[bytes], *, icmp_error: bool) -> None:
    """Put on the link, for OURS:port (not bound yet): an ICMP port unreachable about
    a datagram from that port (when ``icmp_error``), then ``datagrams``; and leave a
    pump queued (by a send elsewhere), so that it runs before anything created right
    after this returns gets its connection_made. Nothing here yields once the first
    frame is on its way to us."""
    ping = asyncio.ensure_future(loop.ping(str(PEER), timeout=2))  # type: ignore[attr-defined]
    await _pumping_peer(loop, peer, ping.done)  # ARP both ways
    await ping
    other, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                   local_addr=(OURS, 0))
    if icmp_error:
        probe, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(OURS, port), remote_addr=(str(PEER), 9))
        probe.sendto(b"probe")
        probe.close()
        for _ in range(1000):  # our pump puts the probe on the link
            if peer.device.pending():
                break
            await asyncio.sleep(0.001)
        peer.pump(loop.time())  # answers the probe: ICMP port unreachable
    sender = peer.stack.udp.bind(PEER, 4000, family=4)
    for data in datagrams:
        peer.stack.send_udp(sender, data, IPv4Address(OURS), port, loop.time())
    peer.pump(loop.time())
    other.sendto(b"queues a pump", (str(PEER), 4000))


def test_nothing_is_delivered_before_connection_made(
        quiet_loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    """A pump that runs between the bind and connection_made does not deliver: what
    it brings (an ICMP error, datagrams) is held and follows connection_made, in
    order, as a kernel socket's buffer would."""
    loop, peer = quiet_loop_and_peer

    async def main() -> tuple[list[object], list[object]]:
        await _early_arrivals(loop, peer, 5555, [b"early 1", b"early 2"], icmp_error=True)
        transport, protocol = await loop.create_datagram_endpoint(
            _Events, local_addr=(OURS, 5555))
        at_return = list(protocol.events)
        await _pumping_peer(loop, peer, lambda: len(protocol.events) >= 4)
        transport.close()
        return at_return, protocol.events

    at_return, events = loop.run_until_complete(asyncio.wait_for(main(), 10))
    assert events == ["made", ("error", ConnectionRefusedError), ("data", b"early 1"),
                      ("data", b"early 2")]
    assert at_return == ["made"]  # create_datagram_endpoint returns after connection_made


def test_early_arrivals_are_bounded_and_counted(
        quiet_loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop, peer = quiet_loop_and_peer
    monkeypatch.setattr(ethox_asyncio._transports, "EARLY_LIMIT", 2)

    async def main() -> list[object]:
        await _early_arrivals(loop, peer, 5556, [b"early %d" % i for i in range(5)],
                              icmp_error=False)
        transport, protocol = await loop.create_datagram_endpoint(
            _Events, local_addr=(OURS, 5556))
        peer.stack.send_udp(peer.stack.udp.bind(PEER, 4001, family=4), b"late",
                            IPv4Address(OURS), 5556, loop.time())
        await _pumping_peer(loop, peer, lambda: ("data", b"late") in protocol.events)
        transport.close()
        return protocol.events

    events = loop.run_until_complete(asyncio.wait_for(main(), 10))
    assert events == ["made", ("data", b"early 0"), ("data", b"early 1"), ("data", b"late")]
    assert loop._stack.stats["udp_drop_before_connection_made"] == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("when", ["cancelled-create", "close-in-first-callback"])
def test_held_arrivals_stop_at_close(
        quiet_loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer], when: str) -> None:
    """Held datagrams are dropped by close(): when create_datagram_endpoint is cancelled
    (it closes the transport before reading starts), or when the protocol closes while
    they are being delivered."""
    loop, peer = quiet_loop_and_peer
    creating: asyncio.Task[Any] | None = None

    class Closes(_Events):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.transport = transport
            if when == "cancelled-create":
                assert creating is not None
                creating.cancel()

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            super().datagram_received(data, addr)
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self.events.append("lost")

    async def main() -> list[object]:
        nonlocal creating
        creating = asyncio.current_task()
        await _early_arrivals(loop, peer, 5557, [b"early %d" % i for i in range(3)],
                              icmp_error=False)
        protocol = Closes()
        try:
            await loop.create_datagram_endpoint(lambda: protocol, local_addr=(OURS, 5557))
        except asyncio.CancelledError:
            assert when == "cancelled-create"
            creating.uncancel()
        await _pumping_peer(loop, peer, lambda: "lost" in protocol.events)
        await asyncio.sleep(0.02)
        return protocol.events

    events = loop.run_until_complete(asyncio.wait_for(main(), 10))
    assert events == (["made", "lost"] if when == "cancelled-create"
                      else ["made", ("data", b"early 0"), "lost"])


def test_sendto_misuse_raises_or_reports_clear_errors(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    """API misuse raises naming the problem (TypeError, ValueError) as CPython does;
    what the kernel would refuse in sendto() reaches error_received with its errno."""
    import errno

    loop, _ = loop_and_peer

    async def main() -> list[Exception]:
        unconnected, protocol = await loop.create_datagram_endpoint(
            Collector, local_addr=(OURS, 0))
        with pytest.raises(TypeError, match="bytes-like object, not 'str'"):
            unconnected.sendto("text", ("198.18.0.1", 7))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="needs an address on an unconnected transport"):
            unconnected.sendto(b"x")
        unconnected.sendto(b"x", ("fd00::1", 7))  # wrong family: EAFNOSUPPORT
        unconnected.sendto(b"x", ("198.18.0.255", 7))  # broadcast without permission
        connected, _ = await loop.create_datagram_endpoint(
            Collector, remote_addr=("198.18.0.1", 7))
        with pytest.raises(ValueError, match="Invalid address: must be None or"):
            connected.sendto(b"x", ("198.18.0.1", 8))  # right host, wrong port
        with pytest.raises(ValueError, match="Invalid address: must be None or"):
            connected.sendto(b"x", ("198.18.0.3", 7))  # wrong host, right port
        connected.sendto(b"x", ("198.18.0.1", 7))  # the peer itself is fine
        await asyncio.sleep(0.02)
        unconnected.close()
        connected.close()
        return protocol.errors

    errors = loop.run_until_complete(main())
    assert [(type(e), e.errno) for e in errors] == [
        (OSError, errno.EAFNOSUPPORT), (PermissionError, errno.EACCES)]
    assert "fd00::1 is not an IPv4 address" in str(errors[0])
    assert "broadcast needs allow_broadcast=True" in str(errors[1])


def test_frames_the_device_refuses_are_counted(
        loop_and_peer: tuple[asyncio.AbstractEventLoop, EchoPeer]) -> None:
    # A device whose queue is full takes only part of a batch (EAGAIN): the rest is
    # dropped as a full interface queue drops it, and counted, never silently.
    loop, _ = loop_and_peer
    device = loop._device  # type: ignore[attr-defined]
    transmit = device.transmit
    full = {"on": False}

    def refusing(frames: Any) -> int:
        if full["on"]:
            return transmit(frames[:1])  # type: ignore[no-any-return]
        return transmit(frames)  # type: ignore[no-any-return]

    device.transmit = refusing

    async def main() -> None:
        transport, protocol = await loop.create_datagram_endpoint(
            Collector, remote_addr=(str(PEER), 7))
        await asyncio.wait_for(protocol.made.wait(), 1)
        transport.sendto(b"warm")  # resolves the neighbour first
        await asyncio.wait_for(protocol.datagrams.get(), 2)
        full["on"] = True
        for _ in range(5):
            transport.sendto(b"x")
        await asyncio.sleep(0.05)
        transport.close()

    loop.run_until_complete(main())
    assert loop._stack.stats["tx_device_full"] == 4  # type: ignore[attr-defined]
