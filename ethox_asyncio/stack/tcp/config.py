"""Per-stack TCP settings (:class:`TcpConfig`), defaults as Linux where it has one.

Contract:
- ``TcpConfig`` is a frozen, slotted dataclass; construction validates every
  field and raises ``ValueError`` naming the field (``TcpConfig.rto_min must
  be ...``). Integer fields refuse ``bool`` and floats; float fields accept ints.
  Use ``dataclasses.replace(config, field=...)`` for variants (it re-validates).
- Times are seconds (floats), sizes bytes. Each default cites the Linux sysctl
  or constant it mirrors; where our default differs from Linux the comment
  says why.
- :meth:`TcpConfig.window_shift` is the window-scale shift we offer (RFC 7323
  §2.2-2.3): the smallest shift with ``recv_buffer >> shift <= 65535``, never
  more than 14. It is meaningful only if ``window_scaling`` is on and the peer
  agrees; otherwise the advertised window is capped at 65535.
"""

from __future__ import annotations

from dataclasses import dataclass

from .congestion import CONTROLLERS

__all__ = ["MAX_MSS", "MAX_RECV_BUFFER", "MIN_MSS", "TcpConfig"]

MIN_MSS = 88  # Linux TCP_MIN_MSS
MAX_MSS = 65495  # 65535 - 20 (IPv4) - 20 (TCP): the largest that fits an IP packet
_MAX_WINDOW_SHIFT = 14  # RFC 7323 §2.3
# The largest window a 16-bit field scaled by 14 can advertise (RFC 7323 §2.3).
MAX_RECV_BUFFER = 0xFFFF << _MAX_WINDOW_SHIFT


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """TCP settings; see the module docstring for validation and units."""

    # MSS we announce; None: derived from the interface MTU (MTU - 40 for IPv4,
    # MTU - 60 for IPv6), as Linux does without TCP_MAXSEG (RFC 9293 §3.7.1).
    mss: int | None = None
    # Receive buffer = the most we advertise. Linux's tcp_rmem default is
    # 131072 but autotunes up to tcp_rmem[2] = 6 MiB; we do not autotune, so we
    # start near where Linux ends up on a fast path: 4 MiB (a 256 KiB window held
    # bulk receive from the kernel at 6 Gbit/s, 4 MiB reaches 8.5). Nothing is
    # allocated up front: it bounds data held out of order or not yet read. It also
    # fixes the window-scale shift (window_shift(): 7).
    recv_buffer: int = 4 << 20
    # Send buffer (unacknowledged + unsent bytes). Linux tcp_wmem default 16384,
    # autotuned up to 4 MiB; same reasoning as recv_buffer.
    send_buffer: int = 262144
    # RFC 6298 §2.1 initial RTO, Linux TCP_TIMEOUT_INIT = 1 s.
    rto_initial: float = 1.0
    # Linux TCP_RTO_MIN = 200 ms (RFC 6298 §2.4 would say 1 s).
    rto_min: float = 0.2
    # Linux TCP_RTO_MAX = 120 s (RFC 6298 §2.5: at least 60 s).
    rto_max: float = 120.0
    # net.ipv4.tcp_retries2 = 15 (RFC 9293 §3.8.3 R2; ~924.6 s with backoff).
    retries2: int = 15
    # net.ipv4.tcp_syn_retries = 6 (127 s before connect() gives up).
    syn_retries: int = 6
    # net.ipv4.tcp_synack_retries = 5.
    synack_retries: int = 5
    # TIME-WAIT = 2·MSL (RFC 9293 §3.6.1); Linux TCP_TIMEWAIT_LEN = 60 s, i.e.
    # an MSL of 30 s (RFC 9293 suggests 2 minutes).
    time_wait: float = 60.0
    # net.ipv4.tcp_fin_timeout = 60 s: how long an orphaned connection waits
    # in FIN-WAIT-2 for the peer's FIN.
    fin_timeout: float = 60.0
    # Delayed ACK timeout. Linux's ACK timeout (icsk_ack.ato) starts at
    # TCP_ATO_MIN = 40 ms and adapts towards the RTT, capped by TCP_DELACK_MAX =
    # 200 ms; a typical delayed ACK on a LAN is therefore 40 ms, not 200 ms.
    # We use the fixed typical value and keep the cap for adaptive schemes.
    delayed_ack: float = 0.04
    # Upper bound of any delayed ACK: Linux TCP_DELACK_MAX = 200 ms; RFC 5681
    # §4.2 / RFC 1122 §4.2.3.2: an ACK MUST be generated within 500 ms.
    delayed_ack_max: float = 0.2
    # Quick-ACK mode (Linux TCP_MAX_QUICKACKS = 16): the first in-order data segments
    # of a connection, and the first after an idle gap longer than the RTO, are ACKed
    # at once — min(quickack, RCV.WND / (2·RCV.MSS)) of them (Linux tcp_incr_quickack)
    # — so the peer's slow start is not slowed by delayed ACKs. Not while the
    # connection is interactive (Linux pingpong mode: it sent data within
    # ``delayed_ack`` of the last data received, until a delayed ACK times out). 0: off,
    # every in-order segment follows RFC 5681 §4.2's delayed ACK.
    quickack: int = 16
    # Nagle (RFC 896, RFC 9293 §3.7.4). Linux defaults to on, but asyncio sets
    # TCP_NODELAY on every TCP transport (selector_events, base_events
    # _set_nodelay), and we match asyncio.
    nagle: bool = False
    # SO_KEEPALIVE is off by default on Linux sockets (RFC 9293 §3.8.4: off by default).
    keepalive: bool = False
    # net.ipv4.tcp_keepalive_time = 7200 s (RFC 9293 §3.8.4: >= 2 hours).
    keepalive_idle: float = 7200.0
    # net.ipv4.tcp_keepalive_intvl = 75 s.
    keepalive_interval: float = 75.0
    # net.ipv4.tcp_keepalive_probes = 9.
    keepalive_probes: int = 9
    # net.ipv4.tcp_sack = 1 (RFC 2018).
    sack: bool = True
    # net.ipv4.tcp_timestamps = 1 (RFC 7323 §3).
    timestamps: bool = True
    # net.ipv4.tcp_window_scaling = 1 (RFC 7323 §2).
    window_scaling: bool = True
    # Initial congestion window in segments: Linux TCP_INIT_CWND = 10 (RFC 6928).
    initial_window: int = 10
    # net.ipv4.tcp_congestion_control: "cubic" (RFC 9438, Linux's default) or
    # "newreno" (RFC 5681 / RFC 6582).
    congestion_control: str = "cubic"
    # HyStart++ (RFC 9406) in slow start: leave it early (Conservative Slow Start)
    # when the RTT rises by a round. Linux tcp_cubic hystart=1 (its own HyStart).
    hystart: bool = True
    # Loss detection (net.ipv4.tcp_recovery = 1): RACK (RFC 8985) marks a segment
    # lost once a later-sent one is delivered and a reordering window has passed;
    # False: the classic DupThresh rule only (RFC 6675 IsLost with three SACKed
    # segments above, RFC 5681 three duplicate ACKs without SACK).
    rack: bool = True
    # Tail loss probes (RFC 8985 §7, net.ipv4.tcp_early_retrans = 3): a probe one
    # PTO (about 2·SRTT) after the last send, so a lost tail is repaired by fast
    # recovery instead of a retransmission timeout. Needs ``rack``.
    tlp: bool = True
    # Proportional Rate Reduction (RFC 6937) sets cwnd in fast recovery, with SACK
    # and without, as Linux does (tcp_cwnd_reduction); without SACK each duplicate
    # ACK counts as a segment that left the network (Linux's SACK emulation for
    # Reno peers, which also lets new data go on the first two, RFC 3042). False:
    # the RFCs' classic windows, cwnd = ssthresh in SACK recovery (RFC 6675 §5
    # step 4.2) and NewReno's window inflation without SACK (RFC 5681 §3.2,
    # RFC 6582 §3.2).
    prr: bool = True
    # Spurious retransmission timeouts (net.ipv4.tcp_frto = 2): after a timeout, an
    # ACK that echoes a timestamp older than the retransmission (Eifel detection,
    # RFC 3522) or that covers data never retransmitted (F-RTO, RFC 5682, SACK-enhanced
    # with SACK: new data goes after the first ACK instead of more retransmissions) shows
    # that nothing was lost, and the timeout's reduction is undone (Linux
    # tcp_try_undo_loss). False: every timeout is go-back-N in slow start.
    frto: bool = True
    # RFC 5961 §7 challenge ACKs per second, net.ipv4.tcp_challenge_ack_limit.
    # 1000 is Linux 4.7-5.19's default; since 6.0 the host-wide limit defaults
    # to INT_MAX (disabled: it was a side channel, CVE-2016-5696) and only the
    # per-socket net.ipv4.tcp_invalid_ratelimit (500 ms) applies.
    challenge_ack_limit: int = 1000
    # Half-open connections per listener, net.ipv4.tcp_max_syn_backlog (Linux
    # scales it with memory: max(128, ehash buckets / 128), commonly 4096 on
    # hosts with several GB; 128..1024 on small ones).
    syn_backlog: int = 4096
    # Cap of the zero-window probe backoff: Linux uses TCP_RTO_MAX (120 s).
    persist_max: float = 120.0
    # PMTU black-hole fallback (a path that drops full-sized segments and the ICMP
    # that would say why): after ``blackhole_timeouts`` timeouts in a row with data in
    # flight, segments are cut to at most ``blackhole_mss`` bytes — Linux
    # tcp_mtu_probing=1's reaction, at its net.ipv4.tcp_retries1 = 3 and
    # tcp_base_mss = 1024 (RFC 4821 §7.7 without the probing back up). 0: off.
    blackhole_mss: int = 1024
    blackhole_timeouts: int = 3
    # How long the black-hole clamp holds before full-sized segments are tried again
    # (Linux net.ipv4.tcp_probe_interval = 600 s; RFC 4821 §7.7 asks to raise the size
    # again): a path that was only lossy gets its MSS back, a real black hole is found
    # again by the same timeouts. 0: the clamp is kept for good.
    blackhole_retry: float = 600.0

    def __post_init__(self) -> None:
        if self.mss is not None:
            _int(self, "mss", MIN_MSS, MAX_MSS)
        _int(self, "recv_buffer", 1, MAX_RECV_BUFFER)
        _int(self, "send_buffer", 1, None)
        _float(self, "rto_min", 0.0, None, low_open=True)
        _float(self, "rto_max", self.rto_min, None)
        _float(self, "rto_initial", self.rto_min, self.rto_max)
        _int(self, "retries2", 1, 255)
        _int(self, "quickack", 0, 255)  # Linux keeps icsk_ack.quick in a u8
        _int(self, "syn_retries", 1, 127)  # Linux MAX_TCP_SYNCNT
        _int(self, "synack_retries", 0, 255)
        _float(self, "time_wait", 0.0, None)
        _float(self, "fin_timeout", 0.0, None)
        _float(self, "delayed_ack_max", 0.0, 0.5, low_open=True)  # RFC 5681 §4.2
        _float(self, "delayed_ack", 0.0, self.delayed_ack_max, low_open=True)
        for name in ("nagle", "keepalive", "sack", "timestamps", "window_scaling", "hystart",
                     "rack", "tlp", "prr", "frto"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TcpConfig.{name} must be a bool, got {getattr(self, name)!r}")
        # Linux MAX_TCP_KEEPIDLE / MAX_TCP_KEEPINTVL = 32767 s, MAX_TCP_KEEPCNT = 127.
        _float(self, "keepalive_idle", 1.0, 32767.0)
        _float(self, "keepalive_interval", 1.0, 32767.0)
        _int(self, "keepalive_probes", 1, 127)
        _int(self, "initial_window", 1, None)
        if self.congestion_control not in CONTROLLERS:
            raise ValueError(f"TcpConfig.congestion_control must be one of "
                             f"{', '.join(sorted(CONTROLLERS))}, got {self.congestion_control!r}")
        _int(self, "challenge_ack_limit", 1, None)
        _int(self, "syn_backlog", 1, None)
        _float(self, "persist_max", 0.0, None, low_open=True)
        if self.blackhole_mss:
            _int(self, "blackhole_mss", MIN_MSS, MAX_MSS)
        _int(self, "blackhole_timeouts", 1, 255)
        _float(self, "blackhole_retry", 0.0, None)

    def window_shift(self) -> int:
        """Smallest shift with ``recv_buffer >> shift <= 65535`` (RFC 7323 §2.3)."""
        shift = 0
        window = self.recv_buffer
        while (window >> shift) > 0xFFFF and shift < _MAX_WINDOW_SHIFT:
            shift += 1
        return shift


def _int(config: TcpConfig, name: str, low: int, high: int | None) -> None:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"TcpConfig.{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"TcpConfig.{name} must be {bound}, got {value!r}")


def _float(
    config: TcpConfig, name: str, low: float, high: float | None, *, low_open: bool = False
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"TcpConfig.{name} must be a number of seconds, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high) or value == float("inf"):
        lower = f"> {low}" if low_open else f">= {low}"
        bound = lower if high is None else f"{lower} and <= {high}"
        raise ValueError(f"TcpConfig.{name} must be {bound}, got {value!r}")
