"""ethox_asyncio: a user-space TCP/IP stack for Python's asyncio.

What exists today (see docs/features.md): the wire codecs of every protocol
the stack speaks (``ethox_asyncio.stack.wire``) and the devices
(``ethox_asyncio.device``: TAP via io_uring or plain I/O, AF_PACKET, an
in-memory link, pcap capture, fault injection). The event loop and the
protocol state machines arrive with the following issues; nothing here
pretends to provide them before then.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
