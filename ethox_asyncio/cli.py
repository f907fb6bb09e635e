"""Command-line interface: ``python -m ethox_asyncio`` / ``ethox-asyncio``.

Contract: each subcommand is a function ``cmd_<name>(args) -> int`` returning the
process exit status; user errors print one line to stderr and return 2, never a
traceback or a warning (a device that fails to open included). Ctrl-C ends ``ping``
with its statistics and ``echo`` quietly. ``ping``, ``echo`` (UDP and TCP) and
``connect`` (a netcat-like TCP client: stdin to the connection, the replies to
stdout, a half-close at the end of stdin, exit at the peer's EOF) run the stack on
the ethox loop (IPv4 and IPv6); ``run`` and ``bench`` come with the issues that
build them.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import signal
import sys
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from . import __version__
from .config import ConfigError, StackConfig, parse_gateways, parse_interfaces
from .device.base import DeviceError
from .netns import TOPOLOGY_KINDS
from .stack.wire.ethernet import EthernetAddress


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(pcap_path=args.pcap, out=sys.stdout)


def cmd_decode(args: argparse.Namespace) -> int:
    from .device.pcap import PcapFormatError, read_pcap
    from .stack.wire.describe import describe_frame

    try:
        for index, record in enumerate(read_pcap(args.pcap), start=1):
            if args.count is not None and index > args.count:
                break
            print(f"{index:5d} {record.timestamp:.6f} {describe_frame(record.data)}")
    except BrokenPipeError:  # `| head`: main() silences stdout (before OSError: a subclass)
        raise
    except (OSError, PcapFormatError) as exc:
        print(f"ethox-asyncio decode: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_netns(args: argparse.Namespace) -> int:
    from .netns import TopologyError, create_topology, destroy_topology

    try:
        if args.netns_command == "down":
            removed = destroy_topology(args.name)
            print(f"removed netns {args.name}" if removed
                  else f"no netns {args.name}: nothing to remove")
            return 0
        topo = create_topology(args.kind, args.name)
    except TopologyError as exc:
        print(f"ethox-asyncio netns: {exc}", file=sys.stderr)
        return 2
    kernel = " ".join(str(address) for address in topo.kernel_addresses)
    stack = " ".join(str(address) for address in topo.stack_addresses)
    print(f"netns   {topo.netns} ({topo.kind})")
    print(f"kernel  {topo.kernel_ifname}  {kernel}")
    print(f"stack   {topo.stack_ifname}  {stack}  (for the user-space stack only)")
    for variable, value in topo.environment().items():
        print(f"{variable}={value}")
    print(f"remove with: python -m ethox_asyncio netns down --name {topo.netns}")
    return 0


def _stack_config(args: argparse.Namespace) -> StackConfig:
    """StackConfig from device options, falling back to ETHOX_* for what is not given."""
    env = StackConfig.from_env()
    kwargs: dict[str, Any] = {
        "device": args.device or env.device,
        "addresses": parse_interfaces(args.address, setting="--address") if args.address
        else env.addresses,
        "gateways": parse_gateways(args.gateway, setting="--gateway") if args.gateway
        else env.gateways,
        "mtu": args.mtu or env.mtu,
        "pcap": args.pcap or env.pcap,
        "mac": EthernetAddress(args.mac) if args.mac else env.mac,
    }
    if kwargs["device"] is None:
        raise ConfigError("--device (or ETHOX_DEVICE) is required, e.g. tap:tap0")
    if not kwargs["addresses"]:
        raise ConfigError("--address (or ETHOX_ADDRESS) is required, e.g. 198.18.0.2/24")
    return StackConfig(**kwargs)


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device options (default: ETHOX_* variables)")
    group.add_argument("--device", help="tap:NAME, packet:IFNAME or memory, with options")
    group.add_argument("--address", action="append", help="CIDR, repeatable (IPv4 and IPv6)")
    group.add_argument("--gateway", action="append", help="default gateway, repeatable")
    group.add_argument("--mac", help="interface MAC (default: random, locally administered)")
    group.add_argument("--mtu", type=int, help="IP MTU (default 1500)")
    group.add_argument("--pcap", metavar="FILE", help="capture every frame to FILE")
    group.add_argument("--base", choices=("uvloop", "asyncio"), default="uvloop",
                       help="the event loop the stack runs on")


def _run_on_stack(main: Coroutine[Any, Any, int], config: StackConfig,
                  args: argparse.Namespace) -> int:
    """``loop.run(main)``; if the loop or its device fails to open, ``main`` never started.

    It is closed then, so the error is the one line :func:`main` prints, without a
    "coroutine ... was never awaited" RuntimeWarning after it.
    """
    from .loop import run

    try:
        return run(main, config=config, base=args.base)
    finally:
        if inspect.getcoroutinestate(main) == inspect.CORO_CREATED:
            main.close()


def _print_ping_statistics(host: str, transmitted: int, rtts: list[float]) -> None:
    loss = 100 * (transmitted - len(rtts)) / transmitted if transmitted else 0
    print(f"--- {host} ping statistics ---")
    print(f"{transmitted} packets transmitted, {len(rtts)} received, {loss:.0f}% packet loss")
    if rtts:
        print(f"rtt min/avg/max = {min(rtts):.3f}/{sum(rtts) / len(rtts):.3f}/"
              f"{max(rtts):.3f} ms")


def cmd_ping(args: argparse.Namespace) -> int:
    config = _stack_config(args)
    rtts: list[float] = []  # milliseconds, one per reply

    async def main() -> int:
        loop = asyncio.get_running_loop()
        data = bytes(range(56 % 256))  # ping(8)'s default 56 data bytes
        print(f"PING {args.host}: {len(data)} data bytes", flush=True)
        transmitted = 0
        try:
            for seq_no in range(1, args.count + 1):
                transmitted = seq_no
                try:
                    rtt = await loop.ping(args.host, seq_no=seq_no, data=data,  # type: ignore[attr-defined]
                                          timeout=args.timeout)
                except TimeoutError:
                    print(f"no reply from {args.host}: icmp_seq={seq_no}", flush=True)
                else:
                    rtts.append(rtt * 1000)
                    print(f"{len(data) + 8} bytes from {args.host}: icmp_seq={seq_no} "
                          f"time={rtt * 1000:.3f} ms", flush=True)
                if seq_no < args.count:
                    await asyncio.sleep(args.interval)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.Runner cancels us; ping(8) sums up
            _print_ping_statistics(args.host, transmitted, rtts)
            raise
        _print_ping_statistics(args.host, transmitted, rtts)
        return 0 if rtts else 1

    try:
        return _run_on_stack(main(), config, args)
    except KeyboardInterrupt:
        return 0 if rtts else 1


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class _TcpEcho(asyncio.Protocol):
    """Echo with back-pressure: stop reading while the peer does not read our replies."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close once the echo is sent

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def cmd_echo(args: argparse.Namespace) -> int:
    config = _stack_config(args)
    udp, tcp = (args.udp, args.tcp) if args.udp or args.tcp else (True, True)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        closers: list[Any] = []
        for proto, wanted in (("UDP", udp), ("TCP", tcp)):
            if not wanted:
                continue
            for address in config.addresses:
                if proto == "UDP":
                    transport, _ = await loop.create_datagram_endpoint(
                        _UdpEcho, local_addr=(str(address.ip), args.port))
                    closers.append(transport)
                else:
                    closers.append(await loop.create_server(_TcpEcho, str(address.ip),
                                                            args.port))
                shown = f"[{address.ip}]" if address.version == 6 else str(address.ip)
                print(f"{proto} echo on {shown}:{args.port}", flush=True)
        stop = asyncio.Event()
        # Ctrl-C arrives as KeyboardInterrupt through asyncio.Runner; SIGTERM (service
        # managers, and background jobs, which start with SIGINT ignored) stops us too.
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await stop.wait()
        finally:
            for closer in closers:
                closer.close()
        print("stopped", flush=True)
        return 0

    try:
        return _run_on_stack(main(), config, args)
    except KeyboardInterrupt:
        print("stopped (interrupted)", flush=True)
        return 0


def _read_stdin(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
    """In a daemon thread (stdin may be a terminal, a pipe or a file): b"" at the end."""
    fd = sys.stdin.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        try:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
        except RuntimeError:  # the loop is closed: we are exiting
            return
        if not chunk:
            return


def cmd_connect(args: argparse.Namespace) -> int:
    config = _stack_config(args)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), args.timeout)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            print(f"ethox-asyncio connect: {args.host} port {args.port}: {reason}",
                  file=sys.stderr)
            return 1
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        threading.Thread(target=_read_stdin, args=(loop, queue), daemon=True,
                         name="ethox-stdin").start()

        async def upload() -> None:
            try:
                while chunk := await queue.get():
                    writer.write(chunk)
                    await writer.drain()
                writer.write_eof()  # end of stdin: half-close, keep reading the replies
            except ConnectionError:
                pass  # reported by the reading side

        sender = asyncio.ensure_future(upload())
        out = sys.stdout.buffer
        try:
            while chunk := await reader.read(65536):
                out.write(chunk)
                out.flush()
        except ConnectionError as exc:
            print(f"ethox-asyncio connect: {exc}", file=sys.stderr)
            return 1
        finally:
            sender.cancel()
            writer.close()
        return 0

    try:
        return _run_on_stack(main(), config, args)
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ethox-asyncio",
        description="A user-space TCP/IP stack for asyncio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="show what works so far, with no privileges needed")
    demo.add_argument("--pcap", metavar="FILE", help="also write the demo's frames to FILE")
    demo.set_defaults(func=cmd_demo)

    decode = sub.add_parser("decode", help="print a pcap file one tcpdump-like line per frame, "
                                           "decoded by our own codecs")
    decode.add_argument("pcap", metavar="FILE")
    decode.add_argument("-c", "--count", type=int, help="stop after N frames")
    decode.set_defaults(func=cmd_decode)

    ping = sub.add_parser("ping", help="ICMP echo through the user-space stack, like ping(8)")
    _add_device_options(ping)
    ping.add_argument("host", help="numeric IPv4 or IPv6 address")
    ping.add_argument("-c", "--count", type=int, default=4)
    ping.add_argument("-i", "--interval", type=float, default=1.0)
    ping.add_argument("-W", "--timeout", type=float, default=1.0)
    ping.set_defaults(func=cmd_ping)

    echo = sub.add_parser("echo", help="serve UDP and TCP echo over the stack until "
                                       "interrupted")
    _add_device_options(echo)
    echo.add_argument("--port", type=int, default=7)
    echo.add_argument("--udp", action="store_true", help="serve UDP (without --tcp: only UDP)")
    echo.add_argument("--tcp", action="store_true", help="serve TCP (without --udp: only TCP)")
    echo.set_defaults(func=cmd_echo)

    connect = sub.add_parser("connect", help="netcat-like: a TCP connection over the stack, "
                                             "stdin to it and its replies to stdout")
    _add_device_options(connect)
    connect.add_argument("host", help="numeric IPv4 or IPv6 address")
    connect.add_argument("port", type=int)
    connect.add_argument("-w", "--timeout", type=float, default=10.0,
                         help="seconds to wait for the connection (default 10)")
    connect.set_defaults(func=cmd_connect)

    netns = sub.add_parser("netns", help="create or remove a network namespace where the Linux "
                                         "kernel is the stack's peer (root)")
    netns_sub = netns.add_subparsers(dest="netns_command", metavar="ACTION", required=True)
    up = netns_sub.add_parser("up", help="create it and print the ETHOX_* settings to use")
    up.add_argument("--kind", choices=TOPOLOGY_KINDS, default="tap",
                    help="tap: the stack opens a TAP; veth: an AF_PACKET socket on a veth end "
                         "(default: tap)")
    up.add_argument("--name", help="namespace name (default: ethox-<pid>-<n>)")
    down = netns_sub.add_parser("down", help="remove it (and its interfaces)")
    down.add_argument("--name", required=True)
    netns.set_defaults(func=cmd_netns)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except BrokenPipeError:  # output piped into `head` and so on (before OSError: a subclass)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ConfigError, DeviceError, ValueError, OSError) as exc:
        # OSError: e.g. a --pcap file that cannot be created, raised while the loop opens.
        print(f"ethox-asyncio {args.command}: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    raise SystemExit(main())
