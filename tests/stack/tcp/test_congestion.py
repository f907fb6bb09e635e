"""Congestion-window arithmetic: NewReno (RFC 5681, RFC 6582, RFC 6928, RFC 3465) and
CUBIC (RFC 9438)."""

from __future__ import annotations

import pytest

from ethox_asyncio.stack.tcp.congestion import (
    INFINITE_SSTHRESH,
    CongestionControl,
    Cubic,
    NewReno,
    RecoveryState,
    initial_window,
)
from ethox_asyncio.stack.tcp.seq import SEQ_MOD, seq_add

MSS = 1000


def test_initial_window_rfc6928() -> None:
    assert initial_window(1460) == 14600
    assert initial_window(1000) == 10000
    assert initial_window(536) == 5360
    assert initial_window(9000) == 18000  # max(2*MSS, 14600) caps jumbo frames
    assert initial_window(1460, 4) == 4 * 1460
    assert initial_window(1000, 1) == 1000


def test_new_reno_starts_in_slow_start() -> None:
    cc = NewReno(1460)
    assert cc.cwnd == 14600 and cc.initial_window == 14600
    assert cc.ssthresh == INFINITE_SSTHRESH == 0x7FFFFFFF
    assert cc.mss == 1460 and cc.in_slow_start
    assert NewReno(1000, initial_window_segments=4).cwnd == 4000


def test_satisfies_the_protocol() -> None:
    cc: CongestionControl = NewReno(MSS)
    cc.on_ack(MSS, 0.0)
    assert cc.cwnd == 11 * MSS


def test_slow_start_adds_min_acked_mss_per_ack() -> None:
    # RFC 5681 §3.1 eq. 2: cwnd += min(N, SMSS).
    cc = NewReno(MSS)
    cc.on_ack(300, 0.0)
    assert cc.cwnd == 10300
    cc.on_ack(5000, 0.0)  # a stretch ACK still adds one SMSS (RFC 3465 L = 1)
    assert cc.cwnd == 11300
    cc.on_ack(0, 0.0)
    cc.on_ack(-5, 0.0)
    assert cc.cwnd == 11300


def test_abc_limit_two() -> None:
    cc = NewReno(MSS, abc_limit=2)
    cc.on_ack(5000, 0.0)
    assert cc.cwnd == 12000


def test_congestion_avoidance_one_mss_per_window_acked() -> None:
    cc = NewReno(MSS)
    cc.ssthresh = 10000  # cwnd == ssthresh: congestion avoidance
    assert not cc.in_slow_start
    for _ in range(9):
        cc.on_ack(MSS, 0.0)
    assert cc.cwnd == 10000  # 9000 < cwnd bytes acked
    cc.on_ack(MSS, 0.0)
    assert cc.cwnd == 11000
    # Byte counting carries the remainder: 11000 more bytes for the next SMSS.
    cc.on_ack(10999, 0.0)
    assert cc.cwnd == 11000
    cc.on_ack(1, 0.0)
    assert cc.cwnd == 12000


def test_congestion_avoidance_does_not_stall_at_large_windows() -> None:
    # eq. 3 in integers (SMSS*SMSS // cwnd) would be 0 here.
    cc = NewReno(100)
    cc.cwnd = cc.ssthresh = 50_000
    for _ in range(500):
        cc.on_ack(100, 0.0)
    assert cc.cwnd == 50_100


def test_stretch_ack_grows_at_most_one_mss() -> None:
    cc = NewReno(MSS)
    cc.ssthresh = cc.cwnd = 10000
    cc.on_ack(50_000, 0.0)
    assert cc.cwnd == 11000
    # The leftover was capped at one (old) window: 10000 counted of the next 11000.
    cc.on_ack(999, 0.0)
    assert cc.cwnd == 11000
    cc.on_ack(1, 0.0)
    assert cc.cwnd == 12000
    cc.on_ack(11000, 0.0)
    assert cc.cwnd == 12000


def trajectory(cc: NewReno, rtts: int) -> list[int]:
    """cwnd after each RTT when every segment of the window is acked separately."""
    out = []
    for _ in range(rtts):
        for _ in range(cc.cwnd // cc.mss):
            cc.on_ack(cc.mss, 0.0)
        out.append(cc.cwnd)
    return out


def test_slow_start_then_congestion_avoidance_trajectory() -> None:
    cc = NewReno(MSS)
    cc.ssthresh = 50_000
    # Slow start doubles per RTT (one ACK per segment) until ssthresh, then +1 MSS/RTT.
    assert trajectory(cc, 6) == [20000, 40000, 50000, 51000, 52000, 53000]


def test_enter_recovery() -> None:
    # RFC 5681 §3.2 steps 2-3: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = ssthresh + 3*SMSS.
    cc = NewReno(MSS)
    cc.cwnd = 40000
    cc.enter_recovery(30000)
    assert cc.ssthresh == 15000 and cc.cwnd == 18000
    cc.on_dupack_in_recovery()
    cc.on_dupack_in_recovery()
    assert cc.cwnd == 20000
    cc = NewReno(MSS)
    cc.enter_recovery(3000)  # floor of 2*SMSS
    assert cc.ssthresh == 2000 and cc.cwnd == 5000


def test_partial_ack_deflates() -> None:
    # RFC 6582 §3.2 step 5.
    cc = NewReno(MSS)
    cc.enter_recovery(30000)  # cwnd 18000
    cc.on_partial_ack(4000)  # deflate by 4000, add back SMSS
    assert cc.cwnd == 15000
    cc.on_partial_ack(500)  # less than SMSS: no add-back
    assert cc.cwnd == 14500
    cc.on_partial_ack(100_000)  # never below one SMSS
    assert cc.cwnd == MSS


def test_exit_recovery_rfc6582_option_one() -> None:
    # RFC 6582 §3.2 step 6: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
    cc = NewReno(MSS)
    cc.enter_recovery(30000)  # ssthresh 15000
    cc.exit_recovery(20000)
    assert cc.cwnd == 15000
    cc.enter_recovery(30000)
    cc.exit_recovery(4000)
    assert cc.cwnd == 5000
    cc.enter_recovery(30000)
    cc.exit_recovery(0)
    assert cc.cwnd == 2000  # max(0, SMSS) + SMSS
    assert cc.in_slow_start  # little in flight: slow start back up to ssthresh


def test_rto() -> None:
    # RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = LW = 1 SMSS.
    cc = NewReno(MSS)
    cc.cwnd = 64000
    cc.on_rto(40000)
    assert cc.ssthresh == 20000 and cc.cwnd == MSS and cc.in_slow_start
    # The retransmission timed out again: ssthresh is held constant.
    cc.on_rto(MSS, repeated=True)
    assert cc.ssthresh == 20000 and cc.cwnd == MSS
    cc.on_rto(MSS)
    assert cc.ssthresh == 2000


def test_rto_then_slow_start_to_new_ssthresh() -> None:
    cc = NewReno(MSS)
    cc.on_rto(16000)  # ssthresh 8000
    assert trajectory(cc, 5) == [2000, 4000, 8000, 9000, 10000]


def test_restart_after_idle() -> None:
    # RFC 5681 §4.1: idle longer than RTO: cwnd = min(IW, cwnd).
    cc = NewReno(MSS)
    cc.cwnd = 50000
    cc.on_idle(0.5, 1.0)
    assert cc.cwnd == 50000
    cc.on_idle(1.5, 1.0)
    assert cc.cwnd == 10000
    cc.cwnd = 4000
    cc.on_idle(10.0, 1.0)
    assert cc.cwnd == 4000


def test_set_mss_before_any_ack_resets_the_initial_window() -> None:
    cc = NewReno(536)
    assert cc.cwnd == 5360
    cc.set_mss(1460)
    assert cc.mss == 1460 and cc.cwnd == 14600 and cc.initial_window == 14600
    cc.on_ack(100, 0.0)
    assert cc.cwnd == 14700


def test_set_mss_later_keeps_the_window_in_segments() -> None:
    cc = NewReno(1000)
    cc.on_rto(40000)  # ssthresh 20000, cwnd 1000
    cc.on_ack(1000, 0.0)
    cc.on_ack(1000, 0.0)  # cwnd 3000
    cc.set_mss(500)
    assert cc.cwnd == 1500 and cc.ssthresh == 10000 and cc.initial_window == 5000
    cc.set_mss(500)
    assert cc.cwnd == 1500
    with pytest.raises(ValueError):
        cc.set_mss(0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        NewReno(0)
    with pytest.raises(ValueError):
        NewReno(MSS, initial_window_segments=0)
    with pytest.raises(ValueError):
        NewReno(MSS, abc_limit=0)


# --- RecoveryState -----------------------------------------------------------------------

def test_recovery_state_fields() -> None:
    iss = SEQ_MOD - 5
    state = RecoveryState(iss)
    assert state.in_recovery is False and state.recover == iss and state.dupacks == 0
    assert RecoveryState.dupack_threshold == 3
    with pytest.raises(AttributeError):
        state.other = 1  # type: ignore[attr-defined]


def test_recovery_state_new_reno_walkthrough() -> None:
    # A loss after the wrap: snd_una = 2**32 - 3000, snd_nxt = 7000 when it is noticed.
    snd_una = SEQ_MOD - 3000
    snd_nxt = 7000
    state = RecoveryState(seq_add(snd_una, -1000))
    cc = NewReno(MSS)
    cc.cwnd = 10000
    for _ in range(RecoveryState.dupack_threshold):
        state.dupacks += 1
    assert state.covers(snd_una)  # beyond the previous recover point: may enter
    state.enter(snd_nxt)
    cc.enter_recovery(flight_size=10000)
    assert state.in_recovery and state.recover == 7000 and state.dupacks == 3
    assert cc.cwnd == 8000
    # A partial ACK (does not cover recover) then the full ACK.
    partial = seq_add(snd_una, 4000)
    assert not state.covers(partial)
    cc.on_partial_ack(4000)
    assert state.covers(7000) and state.covers(7001) and not state.covers(6999)
    state.exit()
    cc.exit_recovery(flight_size=0)
    assert not state.in_recovery and state.recover == 7000 and state.dupacks == 0
    # Dupacks caused by our own retransmissions (ACK below recover) must not re-enter.
    assert not state.covers(6000)
    state.on_rto(9000)
    assert not state.in_recovery and state.recover == 9000


# --- CUBIC (RFC 9438) ------------------------------------------------------------------


def cubic_after_loss(cwnd_segments: int, *, mss: int = MSS) -> Cubic:
    """A CUBIC window of ``cwnd_segments`` that just went through one congestion event
    (fast retransmit, then the full ACK) and is in congestion avoidance."""
    cc = Cubic(mss)
    cc.cwnd = cwnd_segments * mss
    cc.ssthresh = 1  # congestion avoidance
    cc.enter_recovery(cc.cwnd)
    cc.exit_recovery(cwnd_segments * mss)
    return cc


def test_cubic_reduces_by_beta_and_remembers_w_max() -> None:
    """RFC 9438 §4.6: ssthresh = cwnd·β_cubic (0.7); W_max = cwnd before the reduction."""
    cc = cubic_after_loss(100)
    assert cc.ssthresh == 70 * MSS and cc.cwnd == 70 * MSS
    assert cc._w_max == pytest.approx(100.0)


def test_cubic_follows_the_cubic_function_with_k_from_eq2() -> None:
    """RFC 9438 eq. 1-2: K = cbrt(W_max·(1 − β)/C); W(t) = C·(t − K)³ + W_max, so the
    window is back at W_max after K seconds (with a negligible RTT)."""
    cc = cubic_after_loss(100)
    cc.on_ack(MSS, 10.0)  # the first ACK starts the epoch at t = 10
    k = (100 * (1 - 0.7) / 0.4) ** (1 / 3)
    assert cc._k == pytest.approx(k)  # ~4.2172 s
    assert cc.w_cubic(0.0) == pytest.approx(70.0)
    assert cc.w_cubic(k) == pytest.approx(100.0)
    assert cc.w_cubic(k + 1.0) == pytest.approx(100.4)
    # ACKs a window's worth at a time with a 200 ms RTT (long enough that the cubic
    # curve, not the Reno-friendly line, leads: §4.3): cwnd tracks W(t + RTT).
    now, rtt = 10.0, 0.2
    while now < 10.0 + k:
        cc.on_ack(cc.cwnd, now, rtt)
        now += rtt
    assert cc._w_est < cc.w_cubic(now - 10.0)
    assert cc.cwnd / MSS == pytest.approx(cc.w_cubic(now - 10.0), rel=0.03)
    assert 97 * MSS < cc.cwnd <= 101 * MSS


def test_cubic_grows_at_most_half_the_window_per_rtt() -> None:
    """RFC 9438 §4.4: the target is clamped to 1.5·cwnd, whatever W(t + RTT) says."""
    cc = cubic_after_loss(100)
    cc.on_ack(MSS, 0.0)
    cc.on_ack(cc.cwnd, 100.0, 0.01)  # far beyond K: W(t) is huge
    assert cc.cwnd <= int(1.5 * 70 * MSS) + MSS


def test_cubic_fast_convergence_lowers_w_max_on_a_second_loss_below_it() -> None:
    """RFC 9438 §4.7: a loss before reaching the previous W_max releases bandwidth:
    W_max = cwnd·(1 + β)/2."""
    cc = cubic_after_loss(100)  # W_max 100, cwnd 70
    cc.enter_recovery(cc.cwnd)  # a second loss at 70 < 100
    assert cc._w_max == pytest.approx(70 * (1 + 0.7) / 2)
    assert cc.ssthresh == int(70 * MSS * 0.7)


def test_cubic_uses_the_reno_friendly_window_when_it_is_larger() -> None:
    """RFC 9438 §4.3: W_est grows by α = 3(1 − β)/(1 + β) segments per window of ACKs;
    with a short RTT and K far away CUBIC's curve is flat and Reno's line leads."""
    cc = cubic_after_loss(10)  # W_max 10, cwnd 7, K ~ 1.3 s
    cc.on_ack(MSS, 0.0)
    alpha = 3 * (1 - 0.7) / (1 + 0.7)
    for step in range(1, 6):
        cc.on_ack(cc.cwnd, step * 0.001, 0.001)  # one window per 1 ms RTT
    assert cc._w_est > cc.w_cubic(0.006)
    assert cc.cwnd / MSS == pytest.approx(cc._w_est, rel=0.02)
    assert cc._w_est == pytest.approx(7 + 5 * alpha + 1 / 7 * alpha, rel=0.05)


def test_cubic_slow_start_and_timeout_are_reno_s() -> None:
    """RFC 9438 §4.10 (slow start unchanged) and §4.8 (a timeout: β, then one MSS)."""
    cc = Cubic(MSS)
    cc.on_ack(MSS, 0.0)
    assert cc.cwnd == 11 * MSS  # slow start: one MSS per ACK (RFC 5681 eq. 2)
    cc.on_rto(cc.cwnd)
    assert cc.cwnd == MSS and cc.ssthresh == int(11 * MSS * 0.7)
    assert cc._w_max == pytest.approx(11.0)


def test_cubic_is_the_default_and_newreno_selectable() -> None:
    from ethox_asyncio.stack.tcp.config import TcpConfig
    from tests.stack.tcp.harness import established

    assert isinstance(established(TcpConfig()).cc, Cubic)
    reno = established(TcpConfig(congestion_control="newreno")).cc
    assert type(reno) is NewReno
    with pytest.raises(ValueError, match="congestion_control"):
        TcpConfig(congestion_control="bbr")


@pytest.mark.parametrize("recover", [0, 1, 0x7FFFFFFF, 0x80000000, SEQ_MOD - 1, SEQ_MOD - 5])
def test_covers_is_seq_ge_across_the_wrap(recover: int) -> None:
    # RecoveryState.covers inlines seq_ge (it runs on every ACK).
    from ethox_asyncio.stack.tcp.seq import seq_ge

    state = RecoveryState(recover)
    for delta in (0, 1, 2, 1000, 0x7FFFFFFE, 0x7FFFFFFF, 0x80000000, 0x80000001,
                  SEQ_MOD - 1, SEQ_MOD - 1000):
        ack = (recover + delta) % SEQ_MOD
        assert state.covers(ack) == seq_ge(ack, recover), (recover, delta)
