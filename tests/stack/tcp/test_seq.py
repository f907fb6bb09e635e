"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4), near the wrap."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from ethox_asyncio.stack.tcp.seq import (
    SEQ_MOD,
    seq_add,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
    seq_sub,
)

NEAR_WRAP = SEQ_MOD - 5
u32 = st.integers(0, SEQ_MOD - 1)
distance = st.integers(-(2**31) + 1, 2**31 - 1)


def test_modulus() -> None:
    assert SEQ_MOD == 2**32


def test_add_wraps() -> None:
    assert seq_add(NEAR_WRAP, 5) == 0
    assert seq_add(NEAR_WRAP, 10) == 5
    assert seq_add(3, -5) == SEQ_MOD - 2
    assert seq_add(NEAR_WRAP, 0) == NEAR_WRAP
    assert seq_add(0, SEQ_MOD) == 0


def test_sub_is_signed_across_the_wrap() -> None:
    assert seq_sub(5, NEAR_WRAP) == 10
    assert seq_sub(NEAR_WRAP, 5) == -10
    assert seq_sub(7, 7) == 0
    assert seq_sub(2**31 - 1, 0) == 2**31 - 1
    assert seq_sub(2**31, 0) == -(2**31)  # the ambiguous half-way point


def test_comparisons_across_the_wrap() -> None:
    a, b = NEAR_WRAP, seq_add(NEAR_WRAP, 10)  # b == 5, after a
    assert seq_lt(a, b) and seq_le(a, b) and not seq_gt(a, b) and not seq_ge(a, b)
    assert seq_gt(b, a) and seq_ge(b, a) and not seq_lt(b, a) and not seq_le(b, a)
    assert seq_le(a, a) and seq_ge(a, a) and not seq_lt(a, a) and not seq_gt(a, a)
    assert seq_max(a, b) == b and seq_max(b, a) == b
    assert seq_min(a, b) == a and seq_min(b, a) == a


def test_half_way_point_is_before_both_ways() -> None:
    # As Linux's before(): (s32)(a - b) < 0 holds both ways at exactly 2**31.
    a, b = 0, 2**31
    assert seq_lt(a, b) and seq_lt(b, a)
    assert not seq_ge(a, b) and not seq_ge(b, a)


def test_unmasked_inputs_are_reduced() -> None:
    assert seq_lt(SEQ_MOD - 1, SEQ_MOD + 1)  # == seq_lt(2**32 - 1, 1)
    assert seq_sub(SEQ_MOD + 3, 1) == 2
    assert seq_max(SEQ_MOD + 3, 1) == 3


def test_in_window_near_the_wrap() -> None:
    start = NEAR_WRAP
    assert seq_in_window(NEAR_WRAP, start, 10)
    assert seq_in_window(SEQ_MOD - 1, start, 10)
    assert seq_in_window(0, start, 10)
    assert seq_in_window(4, start, 10)
    assert not seq_in_window(5, start, 10)  # start + length is outside
    assert not seq_in_window(NEAR_WRAP - 1, start, 10)
    assert seq_in_window(start, start, 1) and not seq_in_window(seq_add(start, 1), start, 1)


def test_in_window_length_zero_is_empty() -> None:
    assert not seq_in_window(NEAR_WRAP, NEAR_WRAP, 0)
    assert not seq_in_window(0, 0, 0)
    assert not seq_in_window(0, 0, -1)


@given(u32, distance)
def test_sub_inverts_add(a: int, n: int) -> None:
    assert seq_sub(seq_add(a, n), a) == n
    assert 0 <= seq_add(a, n) < SEQ_MOD


@given(u32, u32)
def test_comparisons_agree_with_signed_distance(a: int, b: int) -> None:
    d = seq_sub(a, b)
    assert -(2**31) <= d < 2**31
    assert seq_lt(a, b) == (d < 0)
    assert seq_le(a, b) == (d <= 0)
    assert seq_gt(a, b) == (d > 0)
    assert seq_ge(a, b) == (d >= 0)
    assert seq_lt(a, b) != seq_ge(a, b)
    assert seq_le(a, b) != seq_gt(a, b)
    assert seq_le(a, b) == (seq_lt(a, b) or a == b)


@given(u32, u32)
def test_duality_except_half_way(a: int, b: int) -> None:
    assume(seq_sub(a, b) != -(2**31))
    assert seq_lt(a, b) == seq_gt(b, a)
    assert seq_le(a, b) == seq_ge(b, a)
    assert seq_max(a, b) == seq_max(b, a)
    assert seq_min(a, b) == seq_min(b, a)
    assert {seq_max(a, b), seq_min(a, b)} == {a, b}
    assert seq_le(seq_min(a, b), seq_max(a, b))


@given(u32, st.integers(0, 2**31 - 1), st.integers(0, 2**31))
def test_in_window_matches_offset(start: int, offset: int, length: int) -> None:
    x = seq_add(start, offset)
    assert seq_in_window(x, start, length) == (offset < length)


@given(u32, distance, distance)
def test_translation_invariance(base: int, i: int, j: int) -> None:
    assume(abs(i - j) < 2**31)  # comparable: closer than half the space
    a, b = seq_add(base, i), seq_add(base, j)
    assert seq_lt(a, b) == (i < j)
    assert seq_sub(a, b) == i - j
