"""TCP (RFC 9293) for the sans-IO stack, split by concern.

Contract: like the rest of ``stack``, no module here performs I/O, reads a clock
or imports asyncio/socket/os/time; time comes in as ``now`` (seconds, float) and
secrets come in as arguments. Sequence numbers are plain ints modulo 2**32
(:mod:`.seq`). The standalone parts (:mod:`.seq`, :mod:`.buffers`, :mod:`.rtt`,
:mod:`.congestion`, :mod:`.isn`, :mod:`.ports`, :mod:`.config`) know nothing of
connections; :mod:`.connection` composes them into the state machine.
"""
