"""Command-line interface: ``python -m ethox_asyncio`` / ``ethox-asyncio``.

Contract: each subcommand is a function ``cmd_<name>(args) -> int`` returning the
process exit status; user errors print one line to stderr and return 2, never a
traceback. Subcommands that need the event loop (``echo``, ``ping``, ``run``,
``bench``) are added by the issues that build the loop; until then they are not
listed, rather than listed and failing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .netns import TOPOLOGY_KINDS


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
    except (OSError, PcapFormatError) as exc:
        print(f"ethox-asyncio decode: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        return 0
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
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
