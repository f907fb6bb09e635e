"""RttEstimator against hand-computed RFC 6298 values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethox_asyncio.stack.tcp.rtt import RttEstimator


def test_initial_state() -> None:
    est = RttEstimator()
    assert est.srtt is None and est.rttvar is None
    assert est.rto == 1.0 and est.base_rto == 1.0 and est.backoffs == 0


def test_first_sample() -> None:
    # RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR).
    est = RttEstimator()
    est.sample(0.1)
    assert est.srtt == pytest.approx(0.1)
    assert est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.3)


def test_subsequent_samples() -> None:
    # RFC 6298 §2.3 with alpha = 1/8, beta = 1/4, RTTVAR updated with the old SRTT.
    est = RttEstimator()
    est.sample(0.1)
    est.sample(0.2)
    # RTTVAR = 3/4 * 0.05 + 1/4 * |0.1 - 0.2| = 0.0625
    # SRTT   = 7/8 * 0.1 + 1/8 * 0.2 = 0.1125; RTO = 0.1125 + 0.25
    assert est.rttvar == pytest.approx(0.0625)
    assert est.srtt == pytest.approx(0.1125)
    assert est.rto == pytest.approx(0.3625)
    est.sample(0.1)
    # RTTVAR = 3/4 * 0.0625 + 1/4 * 0.0125 = 0.05; SRTT = 0.0984375 + 0.0125
    assert est.rttvar == pytest.approx(0.05)
    assert est.srtt == pytest.approx(0.1109375)
    assert est.rto == pytest.approx(0.3109375)


def test_rto_min_is_a_floor_on_the_rto() -> None:
    est = RttEstimator()
    est.sample(0.01)  # 0.01 + 4 * 0.005 = 0.03
    assert est.rto == 0.2


def test_rto_min_on_variance_as_linux() -> None:
    est = RttEstimator(rto_min_on_variance=True)
    est.sample(0.01)  # 0.01 + max(0.02, 0.2)
    assert est.rto == pytest.approx(0.21)
    est = RttEstimator(rto_min_on_variance=True)
    est.sample(0.1)  # 0.1 + max(0.2, 0.2)
    assert est.rto == pytest.approx(0.3)
    est = RttEstimator(rto_min_on_variance=True)
    est.sample(1.0)  # variance dominates: 1.0 + 2.0
    assert est.rto == pytest.approx(3.0)


def test_clock_granularity_bounds_the_variance_term() -> None:
    est = RttEstimator(rto_min=0.001, clock_granularity=0.01)
    for _ in range(200):
        est.sample(0.05)
    assert est.rttvar is not None and est.rttvar < 1e-6
    assert est.rto == pytest.approx(0.06)


def test_rto_max_clamps() -> None:
    est = RttEstimator()
    est.sample(100.0)  # 100 + 200
    assert est.rto == 120.0


def test_backoff_doubles_and_caps() -> None:
    est = RttEstimator()
    expected = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 120.0, 120.0]
    for count, rto in enumerate(expected, 1):
        est.backoff()
        assert est.rto == rto and est.backoffs == count
    assert est.base_rto == 1.0
    est.reset_backoff()
    assert est.rto == 1.0 and est.backoffs == 0


def test_sample_collapses_the_backoff() -> None:
    est = RttEstimator()
    est.sample(0.1)
    est.backoff()
    est.backoff()
    assert est.rto == pytest.approx(1.2) and est.backoffs == 2
    est.sample(0.1)  # RTTVAR = 0.0375, RTO = 0.1 + 0.15
    assert est.backoffs == 0 and est.rto == pytest.approx(0.25)


def test_negative_sample_is_ignored() -> None:
    est = RttEstimator()
    est.sample(-0.5)
    assert est.srtt is None and est.rto == 1.0


def test_fallback_after_syn_timeout() -> None:
    # RFC 6298 §5.7: SYN timed out, no sample: RTO = 3 s when data begins.
    est = RttEstimator()
    est.backoff()
    est.fallback()
    assert est.rto == 3.0 and est.base_rto == 3.0 and est.backoffs == 0
    # With a sample (e.g. from a timestamp echo) the estimate stands.
    est = RttEstimator()
    est.sample(0.1)
    est.fallback()
    assert est.rto == pytest.approx(0.3)


def test_custom_bounds() -> None:
    est = RttEstimator(rto_initial=3.0, rto_min=1.0, rto_max=60.0)
    assert est.rto == 3.0
    est.sample(0.01)
    assert est.rto == 1.0
    for _ in range(10):
        est.backoff()
    assert est.rto == 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rto_min": 0.0},
        {"rto_min": 2.0, "rto_max": 1.0},
        {"rto_initial": 0.0},
        {"clock_granularity": -1.0},
    ],
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RttEstimator(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=50))
def test_rto_stays_within_bounds(samples: list[float]) -> None:
    est = RttEstimator()
    for rtt in samples:
        est.sample(rtt)
        assert 0.2 <= est.rto <= 120.0
        assert est.srtt is not None and est.rttvar is not None
        assert min(samples) - 1e-9 <= est.srtt <= max(samples) + 1e-9
        assert est.rto >= min(est.srtt, 120.0)


def test_min_rtt_is_the_minimum_of_the_last_five_minutes() -> None:
    # RACK.min_RTT (RFC 8985 §6.2 step 1) as Linux keeps it (tcp_min_rtt_wlen = 300 s).
    est = RttEstimator()
    assert est.min_rtt == float("inf")
    est.sample(0.100, 0.0)
    est.sample(0.200, 100.0)
    assert est.min_rtt == 0.100
    est.sample(0.150, 200.0)
    assert est.min_rtt == 0.100  # still inside the window
    est.sample(0.300, 350.0)
    assert est.min_rtt == 0.150  # 0.100 expired; the best sample of the window is next
    est.sample(0.300, 900.0)
    assert est.min_rtt == 0.300  # nothing left in the window: the new sample
    est.sample(0.050, 901.0)
    assert est.min_rtt == 0.050  # a new best at once
