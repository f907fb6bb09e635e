"""The transmission control block (RFC 9293 §3.3.1): one connection's variables.

Contract: :class:`Tcb` holds every field of a connection as plain ints, floats,
bools and a few buffers, in ``__slots__``, so the hot path reads attributes and
nothing else. It has no behaviour beyond small helpers shared by the receive
side (:mod:`.receiver`), the send side (:mod:`.sender`) and the state machine
(:mod:`.connection`), which build on it in that order (a linear class chain:
``Tcb`` ← ``Receiver`` ← ``Sender`` ← ``TcpConnection``).

Sequence variables follow RFC 9293 names, with one addition from BSD/Linux:
``snd_max`` is the highest sequence number ever sent (plus one), while
``snd_nxt`` is where the next transmission starts and is rewound to
``snd_una`` on a retransmission timeout (go-back-N). ACKs are validated
against ``snd_max``. The send buffer's byte 0 is at ``buf_seq`` (ISS + 1 before
any data is acknowledged, then SND.UNA), so SYN and FIN occupy sequence space
but no buffer space.

Sequence comparisons on the hot path are inlined forms of :mod:`.seq`:
``seq_gt(a, b)`` is ``((a - b - 1) & MASK32) < HALF32 - 1`` and ``seq_ge(a, b)`` is
``((a - b) & MASK32) < HALF32``.

What most connections never need is made on first use, and ``None`` until then
(an idle connection's memory, docs/performance.md): ``prr`` (a :class:`~.prr.Prr`)
on entering the first fast recovery, before ``recovery.in_recovery`` can be true;
``_ooo`` (an :class:`~.buffers.OutOfOrderQueue` of ``recv_buffer`` bytes) for the
first out-of-order text; ``_held`` (data held while not reading) for the first such
data, and again ``None`` once delivered; ``_ctl_out`` (the queued control segments:
pure ACKs, RSTs) for the first one, and again ``None`` once all were taken.

Timers are data (DESIGN.md "TCP"): ``rto_at``, ``ack_at``, ``persist_at``,
``keepalive_at``, ``time_wait_at``, ``fin_wait2_at`` are absolute times or
``None``.

Events are tuples ``(kind, connection, arg)`` appended to the ``events`` deque;
the kinds are the ``EV_*`` strings below (re-exported by :mod:`.connection`).
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Protocol

from .buffers import SendBuffer
from .config import TcpConfig
from .congestion import CONTROLLERS, RecoveryState
from .rtt import RttEstimator
from .scoreboard import Scoreboard
from .state import TcpState

if TYPE_CHECKING:
    from .buffers import OutOfOrderQueue
    from .prr import Prr
    from .segment import Segment

__all__ = [
    "DEFAULT_MSS",
    "EV_ACCEPT",
    "EV_CLOSED",
    "EV_DATA",
    "EV_EOF",
    "EV_ESTABLISHED",
    "EV_SENT",
    "TIMER_REORDER",
    "TIMER_RTO",
    "TIMER_TLP",
    "ListenerHooks",
    "Tcb",
]

EV_ESTABLISHED = "established"  # arg None: an active open completed
EV_DATA = "data"  # arg: bytes | memoryview of in-order payload
EV_EOF = "eof"  # arg None: the peer's FIN arrived in order (after all its data)
EV_SENT = "sent"  # arg: int, bytes newly acknowledged
EV_CLOSED = "closed"  # arg: None (orderly) or the exception; exactly once
EV_ACCEPT = "accept"  # (listener) arg: the connection, now in the accept queue

# RFC 9293 §3.7.1 / RFC 1122 §4.2.2.6: the MSS to assume when the peer sent none.
DEFAULT_MSS = 536
# Linux tcp_min_snd_mss: a peer cannot make us send segments smaller than this.
MIN_SND_MSS = 48
# TS option with its two NOPs (RFC 7323 Appendix A), subtracted from the MSS.
TS_OPTION_LEN = 12
# Linux net.ipv4.tcp_invalid_ratelimit: at most one dup-ACK per 500 ms in answer
# to out-of-window pure ACKs / SYNs (tcp_oow_rate_limited), against ACK loops.
OOW_RATE_INTERVAL = 0.5
# RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness.
PAWS_IDLE = 24 * 86400.0

MASK32 = 0xFFFFFFFF
HALF32 = 0x80000000

# What the retransmission timer slot (``rto_at``) is armed for.
TIMER_RTO = 0
TIMER_TLP = 1  # RFC 8985 §7.2 probe timeout
TIMER_REORDER = 2  # RFC 8985 §6.3 reordering timeout

_S = TcpState


class ListenerHooks(Protocol):
    """What a connection created by a listener tells it (see :mod:`.listener`)."""

    def _child_established(self, conn: Any, now: float) -> bool: ...

    def _child_closed(self, conn: Any) -> None: ...


class Tcb:
    """Connection variables; see the module docstring."""

    __slots__ = (
        "_ack_now",
        "_blackhole_at",
        "_blackhole_limit",
        "_challenge_count",
        "_challenge_start",
        "_ctl_out",
        "_data_at",
        "_delack_due",
        "_dsack",
        "_dsack_round",
        "_eof_pending",
        "_ever_established",
        "_fast_rtx",
        "_fin_queued",
        "_fin_received",
        "_fin_seq",
        "_frto",
        "_frto_high",
        "_frto_ts",
        "_held",
        "_held_len",
        "_ka_due",
        "_last_recv_at",
        "_last_send_at",
        "_listener",
        "_ooo",
        "_ooo_fin",
        "_oow_at",
        "_orphan",
        "_partial_seen",
        "_passive",
        "_persist_backoff",
        "_pingpong",
        "_prior_cwnd",
        "_prior_ssthresh",
        "_probe_due",
        "_probes_out",
        "_quick",
        "_reading",
        "_recv_buffer",
        "_reo_wnd_mult",
        "_reo_wnd_persist",
        "_reported",
        "_retries",
        "_rst_pending",
        "_rtt_at",
        "_rtt_seq",
        "_sndbuf",
        "_soft_error",
        "_state",
        "_sws_threshold",
        "_synack_due",
        "_timer_kind",
        "_tlp_due",
        "_tlp_high",
        "_tlp_retrans",
        "_unconsumed",
        "_undo_retrans",
        "ack_at",
        "adv_mss",
        "buf_seq",
        "cc",
        "config",
        "error",
        "events",
        "fin_wait2_at",
        "irs",
        "iss",
        "keepalive_at",
        "last_ack_sent",
        "local_port",
        "max_snd_wnd",
        "mss_limit",
        "owner",
        "peer_mss",
        "persist_at",
        "prr",
        "rcv_adv",
        "rcv_mss",
        "rcv_nxt",
        "rcv_wscale",
        "recovery",
        "remote_port",
        "rto_at",
        "rtt",
        "sack_ok",
        "sb",
        "smss",
        "snd_max",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "stats",
        "time_wait_at",
        "ts_offset",
        "ts_ok",
        "ts_recent",
        "ts_recent_at",
        "tso_max",
        "ws_ok",
    )

    def __init__(self, config: TcpConfig, *, local_port: int, remote_port: int, iss: int,
                 mss_limit: int, now: float, events: deque[tuple[str, Any, Any]],
                 ts_offset: int = 0, owner: object = None,
                 stats: Counter[str] | None = None) -> None:
        self.config = config
        self.local_port = local_port
        self.remote_port = remote_port
        self.events = events
        self.owner = owner
        self.stats: Counter[str] = Counter() if stats is None else stats
        self._listener: ListenerHooks | None = None
        self._passive = False
        self._state = _S.CLOSED
        self._ever_established = False
        self.error: BaseException | None = None
        self._reported = False
        self._soft_error: OSError | None = None

        iss &= MASK32
        self.iss = iss
        self.irs = 0
        # Send sequence space (RFC 9293 §3.3.1).
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = iss
        self.max_snd_wnd = 0
        # Receive sequence space.
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised (never moves left)
        self.last_ack_sent = 0  # RFC 7323 §4.3 Last.ACK.sent

        # Options (RFC 9293 §3.7.1, RFC 7323, RFC 2018).
        self.mss_limit = mss_limit
        # (Conditional expressions rather than min(): this runs once per connection.)
        mss = config.mss
        adv_mss = mss if mss is not None and mss < mss_limit else mss_limit
        self.adv_mss = adv_mss
        self.peer_mss = DEFAULT_MSS
        smss = DEFAULT_MSS if mss_limit > DEFAULT_MSS else mss_limit
        self.smss = smss  # payload bytes per data segment
        # Payload bytes one segment may carry for the device to cut into MSS-sized ones
        # (TSO); 0: no TSO. Set by the host from the device's capabilities.
        self.tso_max = 0
        # An estimate of the peer's segments.
        self.rcv_mss = DEFAULT_MSS if adv_mss > DEFAULT_MSS else adv_mss
        self.ws_ok = False
        self.snd_wscale = 0  # the peer's shift, applied to windows it sends
        self.rcv_wscale = 0  # our shift, applied to windows we send
        self.sack_ok = False
        self.ts_ok = False
        self.ts_offset = ts_offset & MASK32
        self.ts_recent = 0
        self.ts_recent_at = now

        # Send side.
        self._sndbuf = SendBuffer()
        self.buf_seq = buf_seq = (iss + 1) & MASK32
        self._fin_queued = False
        self._fin_seq = 0
        self._orphan = False
        self._rst_pending = False
        self._ctl_out: list[Segment] | None = None  # (made on first use: the module docstring)
        self._fast_rtx = False
        self._probe_due = False  # a zero-window probe (persist timer) is to be sent
        self._ka_due = False  # a keep-alive probe is to be sent
        self._synack_due = False  # resend the SYN-ACK (duplicate SYN in SYN-RECEIVED)
        self._last_send_at = now
        self._retries = 0
        self._probes_out = 0
        self._persist_backoff = 0
        self._rtt_seq: int | None = None  # Karn timing without timestamps
        self._rtt_at = 0.0
        self._partial_seen = False
        self.rtt = RttEstimator(rto_initial=config.rto_initial, rto_min=config.rto_min,
                                rto_max=config.rto_max, clock_granularity=0.001)
        self.cc = CONTROLLERS[config.congestion_control](
            smss if smss > 1 else 1, initial_window_segments=config.initial_window,
            hystart=config.hystart)
        self.recovery = RecoveryState(iss)
        # Loss recovery (sender.py): the scoreboard of what is in flight, PRR during
        # fast recovery, tail loss probes, RACK's reordering window, D-SACK undo.
        self.sb = Scoreboard(buf_seq)
        self.prr: Prr | None = None  # made on entering the first recovery (docstring)
        self._tlp_due = False  # the probe timeout fired: send a probe
        self._blackhole_limit = 0  # mss_limit before a black-hole clamp; 0: none
        self._blackhole_at = 0.0
        self._tlp_high: int | None = None  # TLP.end_seq of the outstanding probe
        self._tlp_retrans = False  # that probe was a retransmission
        self._reo_wnd_mult = 1  # RFC 8985 §6.2 step 4
        self._reo_wnd_persist = 0
        self._dsack_round: int | None = None
        self._undo_retrans = -1  # retransmissions of the episode not D-SACKed; -1: no undo
        self._prior_cwnd = 0
        self._prior_ssthresh = 0
        # F-RTO (RFC 5682) after a timeout: 0 off, 1 awaiting the first ACK, 2 new data
        # sent instead of retransmissions, awaiting the second; SND.MAX at the timeout
        # ("recover") and the TSval of its retransmission (Eifel, RFC 3522).
        self._frto = 0
        self._frto_high = 0
        self._frto_ts: int | None = None
        # Quick-ACK mode (receiver.py): ACKs left to send at once, the interactive
        # (pingpong) flag that suspends it, and when in-order data last arrived (-1: not
        # yet).
        self._quick = 0
        self._pingpong = False
        self._data_at = -1.0

        # Receive side.
        recv_buffer = self._recv_buffer = config.recv_buffer
        # RFC 9293 §3.8.6.2.2: advance the right edge by at least min(RCV.BUFF/2, MSS).
        half = recv_buffer // 2
        self._sws_threshold = half if half < adv_mss else adv_mss
        self._ooo: OutOfOrderQueue | None = None  # made for the first hole (module docstring)
        # RFC 2883: a duplicate range to report as the first SACK block of the next ACK.
        self._dsack: tuple[int, int] | None = None
        self._ooo_fin: int | None = None  # sequence number of a FIN seen out of order
        self._fin_received = False
        self._unconsumed = 0  # delivered to the application, not yet consumed()
        self._held: list[bytes] | None = None  # in-order data kept while not reading
        self._held_len = 0
        self._reading = True
        self._eof_pending = False
        self._ack_now = False
        self._delack_due = False
        self._last_recv_at = now
        self._oow_at = -1e18
        self._challenge_start = -1e18
        self._challenge_count = 0

        # Timers. ``rto_at`` is the retransmission timer's slot, shared as Linux shares
        # it (icsk_pending) by the tail loss probe and RACK's reorder timer:
        # ``_timer_kind`` says which is armed (TIMER_RTO, TIMER_TLP, TIMER_REORDER).
        self.rto_at: float | None = None
        self._timer_kind = TIMER_RTO
        self.ack_at: float | None = None
        self.persist_at: float | None = None
        self.keepalive_at: float | None = None
        self.time_wait_at: float | None = None
        self.fin_wait2_at: float | None = None

    # -- small shared helpers ------------------------------------------------------------

    def _ts_now(self, now: float) -> int:
        """Our TS clock: milliseconds of ``now`` plus the connection's offset (RFC 7323 §5.4)."""
        return (int(now * 1000.0) + self.ts_offset) & MASK32

    def _event(self, kind: str, arg: Any = None) -> None:
        self.events.append((kind, self, arg))

    def _queue_ctl(self, seg: Segment) -> None:
        """Queue a control segment (sent first by the next ``output``)."""
        ctl_out = self._ctl_out
        if ctl_out is None:
            self._ctl_out = [seg]
        else:
            ctl_out.append(seg)

    def _flight(self) -> int:
        """Bytes (and SYN/FIN) sent and not acknowledged, as of the last transmission."""
        return (self.snd_max - self.snd_una) & MASK32
