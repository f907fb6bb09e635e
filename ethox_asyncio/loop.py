"""The asyncio event loop that drives the user-space stack.

Contract (when built, issue "Network layer and the event loop"): ``EthoxEventLoop``
subclasses uvloop's loop (or ``asyncio.SelectorEventLoop``), owns the devices and
the stack's ``Interface``, and runs one pump per stimulus: receive batch →
ingress → dispatch events → egress → transmit batch → re-arm one deadline timer.

Nothing is defined here yet: the loop does not exist, and this module does not
pretend otherwise.
"""

from __future__ import annotations
