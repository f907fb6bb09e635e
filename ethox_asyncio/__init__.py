"""ethox_asyncio: a user-space TCP/IP stack for Python's asyncio.

Select the loop and an unmodified asyncio application runs over the stack::

    ethox_asyncio.run(main())                      # config from ETHOX_* variables
    asyncio.run(main(), loop_factory=ethox_asyncio.new_event_loop)   # 3.12+
    asyncio.set_event_loop_policy(ethox_asyncio.EventLoopPolicy())  # 3.11-3.15

What exists today (see docs/features.md): the wire codecs, the devices (TAP via
io_uring or plain I/O, AF_PACKET, in-memory link, pcap, fault injection) and the
network layer of the stack (ARP, NDP, IPv4/IPv6 with fragmentation, ICMP, UDP)
with ``create_datagram_endpoint`` and ``loop.ping``, and TCP with
``create_connection``, ``create_server`` and asyncio streams (TLS included).
"""

from __future__ import annotations

from .config import StackConfig
from .loop import EthoxEventLoop, EventLoopPolicy, new_event_loop, run

__version__ = "0.1.0"

__all__ = ["EthoxEventLoop", "EventLoopPolicy", "StackConfig", "__version__", "new_event_loop",
           "run"]
