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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
