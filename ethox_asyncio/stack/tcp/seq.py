"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4).

Contract:
- Sequence numbers are plain ``int`` in ``0 .. 2**32 - 1``. :func:`seq_add`
  always returns a value in that range; every other function accepts any ints
  (they are reduced modulo 2**32 first), so a caller never needs to pre-mask.
- Comparison is by *signed distance*: ``seq_sub(a, b)`` is ``a - b`` folded into
  ``-2**31 .. 2**31 - 1``, and ``seq_lt(a, b)`` is ``seq_sub(a, b) < 0`` (as
  Linux's ``before()``: ``(s32)(a - b) < 0``). The four comparisons are mutually
  consistent (``lt == not ge``, ``le == not gt``, ``le == lt or a == b``), and
  ``seq_lt(a, b) == seq_gt(b, a)`` for every pair *except* two numbers exactly
  2**31 apart, where each is "before" the other. That ambiguity is inherent in a
  32-bit space; TCP keeps windows below 2**30 (RFC 7323 §2.3) so it never
  arises for numbers a connection compares.
- ``seq_in_window(x, start, length)`` is ``start <= x < start + length`` on the
  circle, i.e. ``0 <= (x - start) mod 2**32 < length``; a window of length 0
  (or negative) contains nothing.

These are hot-path helpers: one or two integer operations each, no allocation.
A compiled build may inline them.
"""

from __future__ import annotations

__all__ = [
    "SEQ_MOD",
    "seq_add",
    "seq_ge",
    "seq_gt",
    "seq_in_window",
    "seq_le",
    "seq_lt",
    "seq_max",
    "seq_min",
    "seq_sub",
]

# RFC 9293 §3.4: "the sequence number space ranges from 0 to 2**32 - 1" and all
# arithmetic on sequence numbers "must be performed modulo 2**32".
SEQ_MOD = 1 << 32
_MASK = SEQ_MOD - 1
_HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (``n`` may be negative)."""
    return (a + n) & _MASK


def seq_sub(a: int, b: int) -> int:
    """Signed distance ``a - b`` in ``-2**31 .. 2**31 - 1``."""
    return ((a - b + _HALF) & _MASK) - _HALF


# With x = (a - b) mod 2**32 the signed distance is negative exactly when
# x >= 2**31; with y = (b - a) mod 2**32 it is <= 0 exactly when y <= 2**31.
# One subtraction, one mask, one comparison each.


def seq_lt(a: int, b: int) -> bool:
    """``a`` is before ``b`` (RFC 9293 §3.4 "<", Linux ``before(a, b)``)."""
    return ((a - b) & _MASK) >= _HALF


def seq_ge(a: int, b: int) -> bool:
    """``a`` is ``b`` or after it: ``not seq_lt(a, b)``."""
    return ((a - b) & _MASK) < _HALF


def seq_le(a: int, b: int) -> bool:
    """``a`` is ``b`` or before it: ``seq_sub(a, b) <= 0``."""
    return ((b - a) & _MASK) <= _HALF


def seq_gt(a: int, b: int) -> bool:
    """``a`` is after ``b``: ``not seq_le(a, b)`` (Linux ``after(a, b)``)."""
    return ((b - a) & _MASK) > _HALF


def seq_in_window(x: int, start: int, length: int) -> bool:
    """``start <= x < start + length`` modulo 2**32 (RFC 9293 §3.4, §3.10.7.4).

    Used for the segment acceptability test: "RCV.NXT =< SEG.SEQ < RCV.NXT +
    RCV.WND". A zero-length window contains no sequence number (the RFC's
    zero-window cases are decided by the caller, as the RFC's table does).
    """
    return ((x - start) & _MASK) < length


def seq_max(a: int, b: int) -> int:
    """The later of ``a`` and ``b`` (``a`` when equal), reduced modulo 2**32."""
    return (a if ((a - b) & _MASK) < _HALF else b) & _MASK


def seq_min(a: int, b: int) -> int:
    """The earlier of ``a`` and ``b`` (``a`` when equal), reduced modulo 2**32."""
    return (a if ((b - a) & _MASK) <= _HALF else b) & _MASK
