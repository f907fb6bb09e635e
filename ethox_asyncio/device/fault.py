"""FaultInjector: a Device wrapper that drops, corrupts, reorders, duplicates and delays frames.

The kernel here cannot emulate a bad link (no netem, docs/PLATFORM.md), so loss and
reordering tests wrap any device in this, seeded so that every run is the same.

Contract:

- ``FaultInjector(inner, drop=…, duplicate=…, reorder=…, delay=…, jitter=…,
  corrupt=…, burst_enter=…, burst_exit=…, drop_if=…, seed=…, direction=…)`` is a
  Device with ``inner``'s capabilities.
  ``direction`` picks which frames suffer: ``"rx"`` (what ``receive()`` returns),
  ``"tx"`` (what ``transmit()`` hands to ``inner``) or ``"both"``. A direction with no
  faults passes straight through, without copying (a gathered frame stays a tuple of
  buffers); a transmit direction with faults joins each gathered frame (one copy, with
  ``frame_bytes``) before the steps below, and hands ``inner`` contiguous frames.
- Each frame goes, in this order, through:

  1. **drop**, for three reasons, looked at in this order (a frame dropped for one
     counts for that one only, and once in ``dropped``):

     a. ``drop_if(lane, index, frame)`` returns true: a deterministic choice of the
        caller's, called for *every* frame of a faulty direction before anything else
        happens to it, with ``lane`` ``"rx"`` or ``"tx"``, ``index`` the frame's
        number in that direction (0, 1, 2, … in arrival order, dropped frames
        included) and ``frame`` its bytes (contiguous; only valid during the call,
        not to be modified). Counted in ``targeted``. Tail loss, a lost SYN, "the
        third ACK": the caller parses what it needs;
     b. a **burst**: a Gilbert–Elliott channel with loss 1 in its bad state and 0 in
        its good one. Before each frame the channel moves from good to bad with
        probability ``burst_enter`` (a burst begins: ``bursts``) or from bad to good
        with ``burst_exit``; every frame seen in the bad state is lost
        (``burst_dropped``). Bursts are therefore geometric, ``1 / burst_exit``
        frames long on average, at least one good frame apart, and the long-run
        fraction lost is ``burst_enter / (burst_enter + burst_exit)``
        (:func:`gilbert_elliott` turns a loss rate and a mean burst length into the
        two). Together with ``drop`` (independent loss on top) this is the
        Gilbert–Elliott model with loss 1 in the bad state and ``drop`` in the good;
     c. with probability ``drop``, independently of every other frame;
  2. **corrupt** with probability ``corrupt``: one random bit of one random byte is
     flipped, never in the first 14 bytes (Ethernet header; 18 with an 802.1Q/802.1ad
     tag) nor in the 10-byte virtio-net header in front of them when
     ``capabilities.vnet_header``. The frame still reaches its station and the IPv4
     header or L4 checksum has to catch the damage — unless checksums are offloaded,
     where the receiver trusts the device and nobody checks;
  3. **reorder** with probability ``reorder``: the frame is held back and leaves
     right *after* the next frame of the same direction (or after ``reorder_timeout``
     seconds if none comes). A frame arriving while another is held is never held
     itself, so the held fraction is ``reorder / (1 + reorder)``;
  4. **duplicate** with probability ``duplicate``: a copy (its own buffer) follows it;
  5. **delay** by ``delay`` plus a uniform ``[0, jitter)`` seconds. Jitter reorders
     naturally; without it the delay line keeps order.

- Determinism: every direction has its own ``random.Random`` seeded from ``seed`` and
  draws the same six numbers for every frame, used or not. Frame *k* of a direction
  therefore meets the same fate for the same seed whatever the other direction does
  and whatever the other probabilities are (the held-frame rule of step 3 aside).
  The burst channel draws one number per frame from a second generator of its own
  per direction (also seeded from ``seed``), and ``drop_if`` draws nothing: adding
  either changes nothing the six draws decide, so the frames lost with them are
  exactly those lost without them plus those they drop.
- Held frames (reorder, delay, and frames that did not fit into the batch) are
  copied: the inner device's views die at its next ``receive()``, and a caller may
  reuse its transmit buffers. Frames damaged on transmit are copies too: a
  retransmission queue must never see its own data change.
- **Readiness.** ``fileno()`` is ``inner``'s and stays level-correct for frames
  ``inner`` holds. Frames *this* wrapper holds are announced by ``poll_at()``: the
  monotonic (``clock()``) time the earliest can leave, a time already passed if some
  are ready now, None if nothing is held. The caller's rule: **call ``receive()``
  when ``fileno()`` is readable or ``poll_at()`` has passed.** ``receive()`` also
  releases due transmit frames to ``inner``. ``poll_at()`` includes ``inner``'s own
  ``poll_at()`` when it has one.
- ``transmit()`` accepts the whole batch (dropped frames count as accepted, like a
  lossy wire). Frames ``inner`` refuses are kept, in order, and retried first; while
  any are kept, ``transmit()`` accepts nothing new (returns 0) and ``poll_at()``
  asks for a retry after :data:`TX_RETRY_INTERVAL`.
- ``stats`` is a :class:`FaultStats` snapshot of per-direction counters.
  ``close()`` discards held frames and closes ``inner``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .base import (
    ETHERNET_HEADER_LEN,
    VLAN_TAG_LEN,
    Buffer,
    Device,
    DeviceCapabilities,
    DeviceClosed,
    Frame,
    frame_bytes,
)
from .vnet import VNET_HDR_LEN

__all__ = ["DIRECTIONS", "TX_RETRY_INTERVAL", "DropIf", "FaultInjector", "FaultStats",
           "gilbert_elliott"]

log = logging.getLogger("ethox_asyncio.device")

DIRECTIONS = ("rx", "tx", "both")
#: Seconds before frames the inner device refused are offered to it again.
TX_RETRY_INTERVAL = 0.001
_ETHERTYPE_OFFSET = 12
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")

#: ``drop_if(lane, index, frame)``: drop this frame? ``lane`` is ``"rx"`` or ``"tx"``,
#: ``index`` the frame's number in that direction (from 0), ``frame`` its bytes.
DropIf = Callable[[str, int, Buffer], bool]


def gilbert_elliott(loss: float, mean_burst: float) -> tuple[float, float]:
    """``(burst_enter, burst_exit)`` for bursts of ``mean_burst`` frames on average that
    lose the fraction ``loss`` of all frames in the long run."""
    if not 0.0 < loss < 1.0:
        raise ValueError(f"loss is a fraction in (0, 1), got {loss}")
    if mean_burst < 1.0:
        raise ValueError(f"mean_burst is a number of frames >= 1, got {mean_burst}")
    burst_exit = 1.0 / mean_burst
    burst_enter = loss * burst_exit / (1.0 - loss)
    if burst_enter > 1.0:
        raise ValueError(f"loss {loss} in bursts of {mean_burst} frames needs "
                         f"burst_enter > 1: mean_burst must be >= {loss / (1.0 - loss):g}")
    return burst_enter, burst_exit


@dataclass(slots=True)
class FaultStats:
    """Counters per direction. ``*_frames`` counts frames entering the wrapper (taken
    from ``inner`` on rx, accepted from the caller on tx); ``*_reordered`` counts frames
    that really left after their successor; ``*_delayed`` frames put in the delay line.
    ``*_dropped`` counts every frame dropped, whatever the reason; of those,
    ``*_targeted`` were chosen by ``drop_if`` and ``*_burst_dropped`` lost in a burst
    (``*_bursts`` is the number of bursts begun); the rest fell to ``drop``."""

    rx_frames: int = 0
    rx_dropped: int = 0
    rx_corrupted: int = 0
    rx_reordered: int = 0
    rx_duplicated: int = 0
    rx_delayed: int = 0
    rx_targeted: int = 0
    rx_burst_dropped: int = 0
    rx_bursts: int = 0
    tx_frames: int = 0
    tx_dropped: int = 0
    tx_corrupted: int = 0
    tx_reordered: int = 0
    tx_duplicated: int = 0
    tx_delayed: int = 0
    tx_targeted: int = 0
    tx_burst_dropped: int = 0
    tx_bursts: int = 0


@dataclass(slots=True)
class _LaneCounters:
    frames: int = 0
    dropped: int = 0
    corrupted: int = 0
    reordered: int = 0
    duplicated: int = 0
    delayed: int = 0
    targeted: int = 0
    burst_dropped: int = 0
    bursts: int = 0


@dataclass(frozen=True, slots=True)
class _Faults:
    drop: float
    corrupt: float
    reorder: float
    duplicate: float
    delay: float
    jitter: float
    reorder_timeout: float
    burst_enter: float = 0.0
    burst_exit: float = 1.0
    drop_if: DropIf | None = None

    @property
    def enabled(self) -> bool:
        return any((self.drop, self.corrupt, self.reorder, self.duplicate, self.delay,
                    self.jitter, self.burst_enter, self.drop_if is not None))


class _Lane:
    """The fault pipeline of one direction (see the module doc for the steps)."""

    def __init__(self, name: str, faults: _Faults, rng: random.Random,
                 burst_rng: random.Random, protected_len: int) -> None:
        self.name = name
        self.faults = faults
        self.active = faults.enabled
        self.counters = _LaneCounters()
        #: Owned frames that may leave now, oldest first.
        self.ready: deque[bytearray] = deque()
        #: When ``ready`` should next be looked at (passed if it may leave now).
        self.ready_at = 0.0
        self._rng = rng
        self._burst_rng = burst_rng
        self._in_burst = False  # the Gilbert–Elliott channel's state: bad
        self._protected_len = protected_len
        self._delay_line: list[tuple[float, int, bytearray]] = []  # heap: release_at, order
        self._delay_order = itertools.count()
        # The frame held back for reordering, with its own duplicate/jitter draws.
        self._held: tuple[bytearray, float, float] | None = None
        self._held_until = 0.0

    def push(self, frame: Buffer, now: float, out: list[Buffer]) -> None:
        """Run one new frame through the faults; whatever leaves at once goes to ``out``."""
        faults = self.faults
        draw = self._rng.random
        # Six draws per frame, used or not: frame k's fate depends only on seed and k.
        drop_draw, corrupt_draw, bit_draw = draw(), draw(), draw()
        reorder_draw, duplicate_draw, jitter_draw = draw(), draw(), draw()
        counters = self.counters
        index = counters.frames
        counters.frames += 1
        # The burst channel moves on every frame (its own generator), dropped or not.
        in_burst = self._burst_step() if faults.burst_enter else False
        if faults.drop_if is not None and faults.drop_if(self.name, index, frame):
            counters.dropped += 1
            counters.targeted += 1
            return
        if in_burst:
            counters.dropped += 1
            counters.burst_dropped += 1
            return
        if drop_draw < faults.drop:
            counters.dropped += 1
            return
        if corrupt_draw < faults.corrupt:
            corrupted = self._corrupt(frame, bit_draw)
            if corrupted is not None:
                frame = corrupted
                self.counters.corrupted += 1
        if self._held is not None:
            held, self._held = self._held, None
            self._forward(frame, duplicate_draw, jitter_draw, now, out)
            self._forward(*held, now, out)
            self.counters.reordered += 1
        elif reorder_draw < faults.reorder:
            self._held = (bytearray(frame), duplicate_draw, jitter_draw)
            self._held_until = now + faults.reorder_timeout
        else:
            self._forward(frame, duplicate_draw, jitter_draw, now, out)

    def _burst_step(self) -> bool:
        """Move the Gilbert–Elliott channel on by one frame; is it in a burst now?"""
        draw = self._burst_rng.random()
        if self._in_burst:
            if draw < self.faults.burst_exit:
                self._in_burst = False
        elif draw < self.faults.burst_enter:
            self._in_burst = True
            self.counters.bursts += 1
        return self._in_burst

    def release_due(self, now: float) -> None:
        """Move held frames whose time has come to ``ready``."""
        if self._held is not None and now >= self._held_until:
            held, self._held = self._held, None
            released: list[Buffer] = []
            self._forward(*held, now, released)
            if released:
                self.keep(released, now)
        line = self._delay_line
        while line and line[0][0] <= now:
            self.ready.append(heapq.heappop(line)[2])
            self.ready_at = now

    def poll_at(self) -> float | None:
        deadlines = []
        if self.ready:
            deadlines.append(self.ready_at)
        if self._held is not None:
            deadlines.append(self._held_until)
        if self._delay_line:
            deadlines.append(self._delay_line[0][0])
        return min(deadlines, default=None)

    def keep(self, frames: Sequence[Buffer], ready_at: float) -> None:
        """Take copies of frames that could not leave in this call."""
        self.ready.extend(bytearray(frame) for frame in frames)
        self.ready_at = ready_at

    def clear(self) -> None:
        self.ready.clear()
        self._delay_line.clear()
        self._held = None

    def _forward(self, frame: Buffer, duplicate_draw: float, jitter_draw: float, now: float,
                 out: list[Buffer]) -> None:
        """Steps 4 and 5: duplicate, then delay or send on."""
        faults = self.faults
        copies = [frame]
        if duplicate_draw < faults.duplicate:
            copies.append(bytearray(frame))
            self.counters.duplicated += 1
        if not (faults.delay or faults.jitter):
            out.extend(copies)
            return
        release_at = now + faults.delay + jitter_draw * faults.jitter
        for copy in copies:
            # Always a copy: a bytearray may be the caller's, reused after transmit().
            owned = bytearray(copy)
            heapq.heappush(self._delay_line, (release_at, next(self._delay_order), owned))
            self.counters.delayed += 1

    def _corrupt(self, frame: Buffer, bit_draw: float) -> bytearray | None:
        """A copy of ``frame`` with one bit flipped past the protected headers, or None
        if the frame has nothing past them."""
        protected = self._protected_len
        ethertype_at = protected - 2
        if bytes(frame[ethertype_at:protected]) in _VLAN_TPIDS:
            protected += VLAN_TAG_LEN
        corruptible_bits = (len(frame) - protected) * 8
        if corruptible_bits <= 0:
            return None
        bit = protected * 8 + int(bit_draw * corruptible_bits)
        corrupted = bytearray(frame)
        corrupted[bit // 8] ^= 1 << (bit % 8)
        return corrupted


class FaultInjector:
    """A Device that applies seeded faults to ``inner``'s traffic (see the module doc)."""

    def __init__(
        self,
        inner: Device,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        corrupt: float = 0.0,
        burst_enter: float = 0.0,
        burst_exit: float = 1.0,
        drop_if: DropIf | None = None,
        reorder_timeout: float = 0.1,
        seed: int = 0,
        direction: str = "both",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, probability in (("drop", drop), ("duplicate", duplicate),
                                  ("reorder", reorder), ("corrupt", corrupt),
                                  ("burst_enter", burst_enter), ("burst_exit", burst_exit)):
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {probability}")
        if burst_enter and not burst_exit:
            raise ValueError(f"burst_exit must be > 0 when burst_enter is (a burst would "
                             f"never end), got {burst_exit}")
        if drop_if is not None and not callable(drop_if):
            raise TypeError(f"drop_if must be a callable (lane, index, frame) -> bool, "
                            f"got {drop_if!r}")
        for name, seconds in (("delay", delay), ("jitter", jitter)):
            if seconds < 0:
                raise ValueError(f"{name} is a duration in seconds >= 0, got {seconds}")
        if reorder_timeout <= 0:
            raise ValueError(f"reorder_timeout must be positive, got {reorder_timeout}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, "
                             f"got {direction!r}")
        self.inner = inner
        self._clock = clock
        self._direction = direction
        self._closed = False
        faults = _Faults(drop=drop, corrupt=corrupt, reorder=reorder, duplicate=duplicate,
                         delay=delay, jitter=jitter, reorder_timeout=reorder_timeout,
                         burst_enter=burst_enter, burst_exit=burst_exit, drop_if=drop_if)
        self._faults = faults
        no_faults = _Faults(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, reorder_timeout)
        protected_len = ETHERNET_HEADER_LEN
        if inner.capabilities.vnet_header:
            protected_len += VNET_HDR_LEN
        # One generator per direction, so each direction's decisions are reproducible
        # on their own (str seeds are hashed with SHA-512: stable across runs), and one
        # more per direction for the burst channel, so that it changes none of them.
        self._rx = _Lane("rx", faults if direction in ("rx", "both") else no_faults,
                         random.Random(f"{seed}:rx"), random.Random(f"{seed}:rx:burst"),
                         protected_len)
        self._tx = _Lane("tx", faults if direction in ("tx", "both") else no_faults,
                         random.Random(f"{seed}:tx"), random.Random(f"{seed}:tx:burst"),
                         protected_len)
        self._inner_poll_at: Callable[[], float | None] | None = getattr(inner, "poll_at", None)
        log.debug("fault injector on %r: %s, seed %d, direction %s", inner, faults, seed,
                  direction)

    def __repr__(self) -> str:
        return f"<FaultInjector {self._direction} {self._faults} on {self.inner!r}>"

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self.inner.capabilities

    @property
    def stats(self) -> FaultStats:
        rx, tx = self._rx.counters, self._tx.counters
        return FaultStats(
            rx_frames=rx.frames, rx_dropped=rx.dropped, rx_corrupted=rx.corrupted,
            rx_reordered=rx.reordered, rx_duplicated=rx.duplicated, rx_delayed=rx.delayed,
            rx_targeted=rx.targeted, rx_burst_dropped=rx.burst_dropped, rx_bursts=rx.bursts,
            tx_frames=tx.frames, tx_dropped=tx.dropped, tx_corrupted=tx.corrupted,
            tx_reordered=tx.reordered, tx_duplicated=tx.duplicated, tx_delayed=tx.delayed,
            tx_targeted=tx.targeted, tx_burst_dropped=tx.burst_dropped, tx_bursts=tx.bursts,
        )

    def fileno(self) -> int:
        self._check_open()
        return self.inner.fileno()

    def poll_at(self) -> float | None:
        """When ``receive()`` should be called even if ``fileno()`` is not readable."""
        deadlines = [self._rx.poll_at(), self._tx.poll_at()]
        if self._inner_poll_at is not None:
            deadlines.append(self._inner_poll_at())
        return min((deadline for deadline in deadlines if deadline is not None), default=None)

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        self._check_open()
        rx = self._rx
        if not (rx.active or self._tx.active):
            return self.inner.receive(max_frames)
        now = self._clock()
        if self._tx.active:
            self._flush_tx(now)
        if not rx.active:
            return self.inner.receive(max_frames)
        limit = min(max_frames, self.capabilities.max_batch)
        if limit < 1:
            return []
        rx.release_due(now)
        fresh: list[Buffer] = []
        if len(rx.ready) < limit:
            for frame in self.inner.receive(limit - len(rx.ready)):
                rx.push(frame, now, fresh)
        # Frames released from holding are older than anything fresh: they go first.
        frames = [memoryview(rx.ready.popleft()) for _ in range(min(limit, len(rx.ready)))]
        room = limit - len(frames)
        frames.extend(frame if isinstance(frame, memoryview) else memoryview(frame)
                      for frame in fresh[:room])
        if len(fresh) > room:  # duplicates overflowed the batch: next call, in order
            rx.keep(fresh[room:], now)
        return frames

    def transmit(self, frames: Sequence[Frame]) -> int:
        self._check_open()
        tx = self._tx
        if not tx.active:
            return self.inner.transmit(frames)
        now = self._clock()
        self._flush_tx(now)
        if tx.ready:  # inner still refuses older frames: new ones must not overtake them
            return 0
        out: list[Buffer] = []
        for frame in frames:
            # Faults work on bytes: a gathered frame is joined first (the caller's pieces
            # stay untouched, and a held frame owns its data).
            tx.push(frame_bytes(frame) if isinstance(frame, tuple) else frame, now, out)
        if out:
            sent = self.inner.transmit(out)
            if sent < len(out):
                tx.keep(out[sent:], now + TX_RETRY_INTERVAL)
        return len(frames)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rx.clear()
        self._tx.clear()
        self.inner.close()

    def _flush_tx(self, now: float) -> None:
        """Offer due held transmit frames, oldest first, to ``inner``."""
        tx = self._tx
        tx.release_due(now)
        if not tx.ready or now < tx.ready_at:
            return
        sent = self.inner.transmit(list(tx.ready))
        for _ in range(sent):
            tx.ready.popleft()
        if tx.ready:
            tx.ready_at = now + TX_RETRY_INTERVAL

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed("fault injector")
