"""ethox_asyncio: a user-space TCP/IP stack for Python's asyncio.

What exists today (see docs/ for the feature table): the wire codecs of every
protocol the stack speaks (``ethox_asyncio.stack.wire``), classic pcap capture
and reading, and an in-memory link (``ethox_asyncio.device``). The event loop,
devices backed by TAP / AF_PACKET and the protocol state machines arrive with
the following issues; nothing here pretends to provide them before then.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
